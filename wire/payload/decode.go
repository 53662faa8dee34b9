package payload

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/myclerk/myclerk-bridge/wire"
)

// decoder reads one payload map with the msgpack library's primitives.
//
// The library decoder is lenient (it reads nil as an empty map, string or
// number, skips an ext header in front of a map, reads a negative integer
// as a huge uint64, and reads a declared length before checking that the
// input holds it), so every read here first peeks at the type code,
// dispatches on it, and checks that the input still holds what the code
// and any length field declare. Only then is a library primitive called.
// The bytes.Reader implements io.ByteScanner, so the library reads from it
// directly and r.Len() is exactly the input not yet consumed.
type decoder struct {
	what  string // the payload's CDDL name, for error messages
	in    []byte
	r     *bytes.Reader
	d     *msgpack.Decoder
	n     int                // members in the map
	i     int                // members read so far
	keys  [MaxEntries][]byte // keys read so far, slices of in
	depth int
	// maxEntries, when set, bounds every container's entries (Check).
	maxEntries int
}

// open starts decoding b, which must be exactly one map.
func (d *decoder) open(what string, b []byte) error {
	if len(b) > MaxPayload {
		return fmt.Errorf("%s: %w: %d bytes, limit %d", what, wire.ErrTooLarge, len(b), MaxPayload)
	}
	r := bytes.NewReader(b)
	*d = decoder{what: what, in: b, r: r, d: msgpack.NewDecoder(r)}
	c, err := d.peek("payload")
	if err != nil {
		return err
	}
	if !isMap(c) {
		return d.errf("top level is %s, want a map", typeName(c))
	}
	n, err := d.d.DecodeMapLen()
	if err != nil {
		return d.errf("map header: %v", err)
	}
	if n < 0 || n > MaxEntries {
		return d.errf("map has %d entries, limit %d", uint32(n), MaxEntries)
	}
	d.n = n
	return nil
}

// more reports whether a member remains to be read.
func (d *decoder) more() bool { return d.i < d.n }

// key reads the next member's key. It rejects a key that is not a str, is
// longer than MaxKeyLen, is not UTF-8, or repeats an earlier key. The
// result aliases the input.
func (d *decoder) key() ([]byte, error) {
	c, err := d.peek("key")
	if err != nil {
		return nil, err
	}
	if !msgpcode.IsString(c) {
		return nil, d.errf("key is %s, want str", typeName(c))
	}
	n, err := d.d.DecodeBytesLen()
	if err != nil {
		return nil, d.errf("key: %v", err)
	}
	if n < 0 || n > MaxKeyLen {
		return nil, d.errf("key of %d bytes, limit %d", uint32(n), MaxKeyLen)
	}
	k, err := d.take(n, "key")
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(k) {
		return nil, d.errf("key %q is not UTF-8", k)
	}
	for _, prev := range d.keys[:d.i] {
		if bytes.Equal(prev, k) {
			return nil, d.errf("duplicate key %q", k)
		}
	}
	d.keys[d.i] = k
	d.i++
	return k, nil
}

// end checks that the map was the whole input.
func (d *decoder) end() error {
	if n := d.r.Len(); n != 0 {
		return d.errf("%d trailing bytes after the map", n)
	}
	return nil
}

// member is one known member of a payload map: its key, whether it is
// required, and how its value is read.
type member struct {
	key      string
	required bool
	read     func(d *decoder, key string) error
}

// decodeMap decodes b as exactly one map of the payload named what: each
// known key is read by its member, unknown keys are skipped, and every
// required member must be present.
func decodeMap(what string, b []byte, members ...member) error {
	var d decoder
	if err := d.open(what, b); err != nil {
		return err
	}
	var seen [MaxEntries]bool
	for d.more() {
		k, err := d.key()
		if err != nil {
			return err
		}
		i := 0
		for i < len(members) && members[i].key != string(k) {
			i++
		}
		if i == len(members) {
			err = d.skip()
		} else {
			seen[i] = true
			err = members[i].read(&d, members[i].key)
		}
		if err != nil {
			return err
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	for i, m := range members {
		if m.required && !seen[i] {
			return d.missing(m.key)
		}
	}
	return nil
}

// uintInto reads an unsigned integer of at most max into dst.
func uintInto[T ~uint8 | ~uint16 | ~uint32 | ~uint64](dst *T, max uint64) func(*decoder, string) error {
	return func(d *decoder, key string) error {
		u, err := d.uint(key, max)
		*dst = T(u)
		return err
	}
}

// binInto reads a bin of exactly len(dst) bytes into dst, and sets present.
func binInto(dst []byte, present *bool) func(*decoder, string) error {
	return func(d *decoder, key string) error {
		if present != nil {
			*present = true
		}
		return d.bin(dst, key)
	}
}

// capsInto reads a capabilities array into dst.
func capsInto(dst *[]Capability) func(*decoder, string) error {
	return func(d *decoder, key string) (err error) {
		*dst, err = d.caps(key)
		return err
	}
}

// missing reports an absent required member.
func (d *decoder) missing(key string) error {
	return d.errf("missing required member %q", key)
}

func (d *decoder) errf(format string, args ...any) error {
	return fmt.Errorf("%s: %w: "+format, append([]any{d.what, wire.ErrMalformed}, args...)...)
}

// peek returns the next type code and checks that the input holds the
// code's fixed part: the code byte and any length, ext type or number
// bytes that follow it.
func (d *decoder) peek(name string) (byte, error) {
	c, err := d.d.PeekCode()
	if err != nil {
		return 0, d.errf("%s: truncated", name)
	}
	if d.r.Len() < headLen(c) {
		return 0, d.errf("%s: truncated %s", name, typeName(c))
	}
	return c, nil
}

// take consumes n bytes and returns them as a slice of the input, after
// checking that the input holds them.
func (d *decoder) take(n int, name string) ([]byte, error) {
	if n < 0 || n > d.r.Len() {
		return nil, d.errf("%s: length %d exceeds the %d bytes left", name, uint32(n), d.r.Len())
	}
	off := len(d.in) - d.r.Len()
	if _, err := d.r.Seek(int64(n), io.SeekCurrent); err != nil {
		return nil, d.errf("%s: %v", name, err)
	}
	return d.in[off : off+n : off+n], nil
}

// bin reads a bin member of exactly len(dst) bytes into dst.
func (d *decoder) bin(dst []byte, name string) error {
	c, err := d.peek(name)
	if err != nil {
		return err
	}
	if !msgpcode.IsBin(c) {
		return d.errf("%s is %s, want bin", name, typeName(c))
	}
	n, err := d.d.DecodeBytesLen()
	if err != nil {
		return d.errf("%s: %v", name, err)
	}
	if n != len(dst) {
		return d.errf("%s is %d bytes, want %d", name, uint32(n), len(dst))
	}
	if n > d.r.Len() {
		return d.errf("%s: length %d exceeds the %d bytes left", name, n, d.r.Len())
	}
	if err := d.d.ReadFull(dst); err != nil {
		return d.errf("%s: %v", name, err)
	}
	return nil
}

// uint reads a non-negative integer no larger than max.
func (d *decoder) uint(name string, max uint64) (uint64, error) {
	c, err := d.peek(name)
	if err != nil {
		return 0, err
	}
	var v uint64
	switch {
	case c <= msgpcode.PosFixedNumHigh || c == msgpcode.Uint8 || c == msgpcode.Uint16 ||
		c == msgpcode.Uint32 || c == msgpcode.Uint64:
		v, err = d.d.DecodeUint64()
	case c >= msgpcode.NegFixedNumLow || c == msgpcode.Int8 || c == msgpcode.Int16 ||
		c == msgpcode.Int32 || c == msgpcode.Int64:
		var s int64
		s, err = d.d.DecodeInt64()
		if err == nil && s < 0 {
			return 0, d.errf("%s is negative", name)
		}
		v = uint64(s)
	default:
		return 0, d.errf("%s is %s, want an unsigned integer", name, typeName(c))
	}
	if err != nil {
		return 0, d.errf("%s: %v", name, err)
	}
	if v > max {
		return 0, d.errf("%s is %d, limit %d", name, v, max)
	}
	return v, nil
}

// str reads a str member of at most max bytes of UTF-8.
func (d *decoder) str(name string, max int) (string, error) {
	c, err := d.peek(name)
	if err != nil {
		return "", err
	}
	if !msgpcode.IsString(c) {
		return "", d.errf("%s is %s, want str", name, typeName(c))
	}
	n, err := d.d.DecodeBytesLen()
	if err != nil {
		return "", d.errf("%s: %v", name, err)
	}
	if n < 0 || n > max {
		return "", d.errf("%s is %d bytes, limit %d", name, uint32(n), max)
	}
	s, err := d.take(n, name)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(s) {
		return "", d.errf("%s is not UTF-8", name)
	}
	return string(s), nil
}

// caps reads an array of at most MaxCapabilities capabilities. An empty
// array gives an empty, non-nil slice, so that it stays distinct from an
// absent member.
func (d *decoder) caps(name string) ([]Capability, error) {
	c, err := d.peek(name)
	if err != nil {
		return nil, err
	}
	if !isArray(c) {
		return nil, d.errf("%s is %s, want an array", name, typeName(c))
	}
	n, err := d.d.DecodeArrayLen()
	if err != nil {
		return nil, d.errf("%s: %v", name, err)
	}
	if n < 0 || n > MaxCapabilities {
		return nil, d.errf("%s has %d entries, limit %d", name, uint32(n), MaxCapabilities)
	}
	if n > d.r.Len() {
		return nil, d.errf("%s: %d entries exceed the %d bytes left", name, n, d.r.Len())
	}
	caps := make([]Capability, n)
	for i := range caps {
		v, err := d.uint(name, math.MaxUint8)
		if err != nil {
			return nil, err
		}
		caps[i] = Capability(v)
	}
	return caps, nil
}

// skip consumes the value of an unknown key.
// Check walks one MessagePack value, allocating nothing, and rejects what
// a general-purpose (reflection) decoder would turn into large allocations
// or deep recursion: a declared length beyond the input, a container with
// more than maxEntries entries, nesting deeper than MaxDepth, bytes after
// the value. Payloads decoded with the msgpack library's reflection (the
// device, routing and ACL payloads of node/ops) go through it first.
func Check(b []byte, maxEntries int) error {
	r := bytes.NewReader(b)
	d := decoder{what: "payload", in: b, r: r, d: msgpack.NewDecoder(r), maxEntries: maxEntries}
	if err := d.skipValue(1); err != nil {
		return err
	}
	return d.end()
}

func (d *decoder) skip() error {
	return d.skipValue(2)
}

// skipValue consumes one value of any type at the given depth, allocating
// nothing. Each element of a container takes at least one byte, so the
// declared counts are checked against the bytes left, and the work is
// linear in the input.
func (d *decoder) skipValue(depth int) error {
	c, err := d.peek("value")
	if err != nil {
		return err
	}
	switch {
	case isMap(c) || isArray(c):
		if depth > MaxDepth {
			return d.errf("containers nested deeper than %d", MaxDepth)
		}
		var n, per int
		if isMap(c) {
			n, err = d.d.DecodeMapLen()
			per = 2
		} else {
			n, err = d.d.DecodeArrayLen()
			per = 1
		}
		if err != nil {
			return d.errf("value: %v", err)
		}
		if n < 0 || n > d.r.Len()/per {
			return d.errf("%s of %d entries exceeds the %d bytes left", typeName(c), uint32(n), d.r.Len())
		}
		if d.maxEntries > 0 && n > d.maxEntries {
			return d.errf("%s of %d entries, limit %d", typeName(c), n, d.maxEntries)
		}
		for range n * per {
			if err := d.skipValue(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case msgpcode.IsString(c) || msgpcode.IsBin(c):
		n, err := d.d.DecodeBytesLen()
		if err != nil {
			return d.errf("value: %v", err)
		}
		_, err = d.take(n, typeName(c))
		return err
	case msgpcode.IsExt(c):
		_, n, err := d.d.DecodeExtHeader()
		if err != nil {
			return d.errf("value: %v", err)
		}
		_, err = d.take(n, "ext")
		return err
	case c == 0xc1:
		return d.errf("invalid type code 0xc1")
	}
	// Nil, booleans and numbers: the whole value is the fixed part peek
	// checked.
	_, err = d.take(headLen(c), typeName(c))
	return err
}

func isMap(c byte) bool {
	return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
}

func isArray(c byte) bool {
	return msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
}

// headLen returns the size of the fixed part of a value with type code c:
// the code, then any length, ext type or number bytes. For nil, booleans
// and numbers it is the whole value.
func headLen(c byte) int {
	switch c {
	case msgpcode.Uint8, msgpcode.Int8, msgpcode.Str8, msgpcode.Bin8,
		msgpcode.FixExt1, msgpcode.FixExt2, msgpcode.FixExt4, msgpcode.FixExt8, msgpcode.FixExt16:
		return 2
	case msgpcode.Uint16, msgpcode.Int16, msgpcode.Str16, msgpcode.Bin16,
		msgpcode.Array16, msgpcode.Map16, msgpcode.Ext8:
		return 3
	case msgpcode.Ext16:
		return 4
	case msgpcode.Uint32, msgpcode.Int32, msgpcode.Float, msgpcode.Str32, msgpcode.Bin32,
		msgpcode.Array32, msgpcode.Map32:
		return 5
	case msgpcode.Ext32:
		return 6
	case msgpcode.Uint64, msgpcode.Int64, msgpcode.Double:
		return 9
	}
	return 1
}

// typeName names the MessagePack type of code c, for error messages.
func typeName(c byte) string {
	switch {
	case c <= msgpcode.PosFixedNumHigh || c >= msgpcode.NegFixedNumLow:
		return "an integer"
	case isMap(c):
		return "a map"
	case isArray(c):
		return "an array"
	case msgpcode.IsString(c):
		return "a str"
	case msgpcode.IsBin(c):
		return "a bin"
	case msgpcode.IsExt(c):
		return "an ext"
	}
	switch c {
	case msgpcode.Nil:
		return "nil"
	case msgpcode.False, msgpcode.True:
		return "a bool"
	case msgpcode.Float, msgpcode.Double:
		return "a float"
	case msgpcode.Uint8, msgpcode.Uint16, msgpcode.Uint32, msgpcode.Uint64,
		msgpcode.Int8, msgpcode.Int16, msgpcode.Int32, msgpcode.Int64:
		return "an integer"
	}
	return fmt.Sprintf("invalid code 0x%02x", c)
}

// binVar reads a bin of 1 to max bytes and returns a copy.
func (d *decoder) binVar(name string, max int) ([]byte, error) {
	c, err := d.peek(name)
	if err != nil {
		return nil, err
	}
	if !msgpcode.IsBin(c) {
		return nil, d.errf("%s is %s, want bin", name, typeName(c))
	}
	n, err := d.d.DecodeBytesLen()
	if err != nil {
		return nil, d.errf("%s: %v", name, err)
	}
	if n < 1 || n > max {
		return nil, d.errf("%s is %d bytes, want 1 to %d", name, uint32(n), max)
	}
	b, err := d.take(n, name)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(b), nil
}

// binVarInto reads a bin of 1 to max bytes into dst.
func binVarInto(dst *[]byte, max int) func(*decoder, string) error {
	return func(d *decoder, key string) (err error) {
		*dst, err = d.binVar(key, max)
		return err
	}
}

// strInto reads a str of at most max bytes of UTF-8 into dst.
func strInto(dst *string, max int) func(*decoder, string) error {
	return func(d *decoder, key string) (err error) {
		*dst, err = d.str(key, max)
		return err
	}
}
