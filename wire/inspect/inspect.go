// Package inspect turns MyClerk frames into a JSON description and back. It
// is the format of the frame tool (myclerk-bridge frame decode|encode) and
// of the test vectors in testdata/vectors, so another implementation can
// check itself against this one field by field. It is pure: the clock is a
// parameter.
package inspect

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/myclerk/myclerk-bridge/wire"
)

// Hex is a byte string written as lowercase hex in JSON.
type Hex []byte

// MarshalJSON writes h as a hex string.
func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

// UnmarshalJSON reads a hex string (an optional 0x prefix and whitespace
// are allowed).
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := DecodeHex(s)
	if err != nil {
		return err
	}
	*h = d
	return nil
}

// DecodeHex decodes hex with an optional 0x prefix, ignoring whitespace.
func DecodeHex(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	return hex.DecodeString(s)
}

// KeyMaterial is what opening or sealing frames of one session needs: the
// §5.1 session key, the transcript hash, both ephemeral public keys and
// the session's AEAD (absent: chacha20-poly1305, PROFILE.md §P23).
type KeyMaterial struct {
	SessionKey     Hex    `json:"session_key"`
	TranscriptHash Hex    `json:"transcript_hash"`
	InitiatorKey   Hex    `json:"initiator_key"`
	ResponderKey   Hex    `json:"responder_key"`
	AEAD           string `json:"aead,omitempty"`
}

// FromSecrets returns the key material of s.
func FromSecrets(s *wire.SessionSecrets) *KeyMaterial {
	k := &KeyMaterial{
		SessionKey:     Hex(s.SessionKey[:]),
		TranscriptHash: Hex(s.TranscriptHash[:]),
		InitiatorKey:   Hex(s.InitiatorKey[:]),
		ResponderKey:   Hex(s.ResponderKey[:]),
	}
	if s.AEAD != wire.ChaCha20Poly1305 {
		k.AEAD = s.AEAD.String()
	}
	return k
}

// Secrets checks the sizes and returns the session secrets.
func (k *KeyMaterial) Secrets() (*wire.SessionSecrets, error) {
	var s wire.SessionSecrets
	for _, f := range []struct {
		name string
		src  []byte
		dst  []byte
	}{
		{"session_key", k.SessionKey, s.SessionKey[:]},
		{"transcript_hash", k.TranscriptHash, s.TranscriptHash[:]},
		{"initiator_key", k.InitiatorKey, s.InitiatorKey[:]},
		{"responder_key", k.ResponderKey, s.ResponderKey[:]},
	} {
		if len(f.src) != len(f.dst) {
			return nil, fmt.Errorf("key material: %s has %d bytes, want %d", f.name, len(f.src), len(f.dst))
		}
		copy(f.dst, f.src)
	}
	if k.AEAD != "" {
		a, err := wire.ParseAEAD(k.AEAD)
		if err != nil {
			return nil, fmt.Errorf("key material: aead: %w", err)
		}
		s.AEAD = a
	}
	return &s, nil
}

// ParseDirection reads "i2r" or "r2i".
func ParseDirection(s string) (wire.Direction, error) {
	switch s {
	case "i2r":
		return wire.InitiatorToResponder, nil
	case "r2i":
		return wire.ResponderToInitiator, nil
	}
	return 0, fmt.Errorf("direction %q: want i2r or r2i", s)
}

// Flags is the first byte, bit by bit.
type Flags struct {
	Byte       string `json:"byte"`
	Version    uint8  `json:"version"`
	Tier       uint8  `json:"tier"`
	Compressed bool   `json:"compressed"`
	Fragmented bool   `json:"fragmented"`
	Encrypted  bool   `json:"encrypted"`
}

// Fragment is the fragment sub-header.
type Fragment struct {
	MessageID uint32 `json:"message_id"`
	Index     uint16 `json:"index"`
	Total     uint16 `json:"total"`
}

// Check is a trailer check: the value on the wire, the one computed, and
// whether they match.
type Check struct {
	Kind     string `json:"kind"` // "crc16-ccitt-false" or "sha256-16"
	Value    Hex    `json:"value"`
	Computed Hex    `json:"computed"`
	OK       bool   `json:"ok"`
}

// Opened is the result of opening a sealed frame with key material.
type Opened struct {
	Direction string `json:"direction"`
	Epoch     uint32 `json:"epoch"`
	Counter   uint32 `json:"counter"`
	Plaintext Hex    `json:"plaintext"`
	Text      string `json:"plaintext_text,omitempty"`
}

// Frame describes one frame. Fields a tier lacks are omitted. For
// encoding, Payload is the plaintext; in a decoded frame it is the body as
// it travels (ciphertext when E is set).
type Frame struct {
	Length     int       `json:"length,omitempty"`
	Tier       uint8     `json:"tier"`
	Flags      *Flags    `json:"flags,omitempty"`
	Compressed bool      `json:"compressed,omitempty"`
	Fragmented bool      `json:"fragmented,omitempty"`
	Encrypted  bool      `json:"encrypted,omitempty"`
	Op         OpText    `json:"op,omitempty"` // "0x0624"; read also as a name or a JSON number
	OpName     string    `json:"op_name,omitempty"`
	OpRange    string    `json:"op_range,omitempty"`
	Sequence   *uint8    `json:"sequence,omitempty"`
	SessionID  *uint16   `json:"session_id,omitempty"`
	Timestamp  *uint32   `json:"timestamp,omitempty"`
	Time       string    `json:"time,omitempty"` // the timestamp in RFC 3339, for people
	Nonce      *uint16   `json:"nonce,omitempty"`
	KeyID      *uint32   `json:"key_id,omitempty"`
	PublicKey  Hex       `json:"public_key,omitempty"`
	Tag        Hex       `json:"tag,omitempty"`
	Fragment   *Fragment `json:"fragment,omitempty"`
	Payload    Hex       `json:"payload"`
	Trailer    Hex       `json:"trailer,omitempty"`
	Check      *Check    `json:"check,omitempty"`
	Counter    *uint32   `json:"counter,omitempty"` // encode: the full frame counter of a sealed frame
	Opened     *Opened   `json:"opened,omitempty"`
	OpenError  string    `json:"open_error,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Options carry what opening needs besides the frame.
type Options struct {
	Keys      *KeyMaterial
	Direction wire.Direction
	Epoch     uint32    // the receiver's key epoch (a Tier 4-5 frame's Key ID must be it or the next)
	Largest   *uint64   // largest counter already accepted, to steer recovery
	Now       time.Time // the receiver's clock for the timestamp check
	Skew      time.Duration
}

func ptr[T any](v T) *T { return &v }

// Describe parses b (and opens it when opts.Keys is set) and describes it.
// Errors are reported in the Error and OpenError fields, never panics.
func Describe(b []byte, opts Options) Frame {
	out := Frame{Length: len(b)}
	if len(b) == 0 {
		out.Error = wire.ErrTruncated.Reason
		return out
	}
	fl := b[0]
	out.Tier = fl >> 3 & 7
	out.Flags = &Flags{Byte: fmt.Sprintf("0x%02x", fl), Version: fl >> 6, Tier: fl >> 3 & 7,
		Compressed: fl&wire.FlagCompressed != 0, Fragmented: fl&wire.FlagFragmented != 0, Encrypted: fl&wire.FlagEncrypted != 0}
	if out.Tier == 0 && fl>>6 == wire.Version {
		// Legal only as the plaintext of a TUNNEL frame: show it as one.
		// Whatever else its flags say, a Tier 0 frame on its own is this
		// error (§P11); its payload is shown when it would parse inside a
		// TUNNEL frame.
		out.Error = wire.ErrTier0Outside.Reason
		if _, p, err := wire.ParseTier0(b); err == nil {
			out.Payload = Hex(p)
		}
		return out
	}
	f, err := wire.Parse(b)
	h := f.Header
	if err != nil && !errors.Is(err, wire.ErrCRC) {
		out.Error = strings.TrimPrefix(err.Error(), "myclerk: ")
		if f.Prefix == nil {
			var hh wire.Header
			if _, herr := hh.Decode(b); herr != nil {
				return out
			}
			h = hh
		}
	}
	fillHeader(&out, &h)
	if h.Fragmented && f.Prefix != nil {
		out.Fragment = &Fragment{MessageID: f.Fragment.MessageID, Index: f.Fragment.Index, Total: f.Fragment.Total}
	}
	if f.Prefix == nil {
		return out
	}
	out.Payload, out.Trailer = Hex(f.Body), Hex(f.Trailer)
	switch {
	case h.Tier == wire.Tier2:
		c := wire.CRC16(b[:len(b)-wire.CRCSize])
		out.Check = &Check{Kind: "crc16-ccitt-false", Value: Hex(f.Trailer), Computed: Hex{byte(c >> 8), byte(c)}}
		out.Check.OK = err == nil
		if err != nil {
			out.Error = wire.ErrCRC.Reason
		}
	case h.Tier == wire.Tier4 && h.Op.Handshake():
		_, herr := wire.ParseHandshake(b)
		out.Check = &Check{Kind: "sha256-16", Value: Hex(f.Trailer), Computed: Hex(handshakeDigest(b)), OK: herr == nil}
		if herr != nil {
			out.Error = strings.TrimPrefix(herr.Error(), "myclerk: ")
		}
	case h.Tier.Sealed() && opts.Keys != nil:
		open(&out, b, &h, opts)
	}
	return out
}

func fillHeader(out *Frame, h *wire.Header) {
	out.Compressed, out.Fragmented, out.Encrypted = h.Compressed, h.Fragmented, h.Encrypted
	out.Op = OpText(fmt.Sprintf("0x%04x", uint16(h.Op)))
	if i, ok := h.Op.Info(); ok {
		out.OpName = i.Name
	}
	out.OpRange = h.Op.Range().String()
	out.Sequence = ptr(h.Sequence)
	if h.Tier >= wire.Tier2 {
		out.SessionID = ptr(h.SessionID)
	}
	if h.Tier >= wire.Tier3 {
		out.Timestamp = ptr(h.Timestamp)
		out.Time = time.Unix(int64(h.Timestamp), 0).UTC().Format(time.RFC3339)
		out.Nonce = ptr(h.Nonce)
	}
	if h.Tier >= wire.Tier4 {
		out.KeyID = ptr(h.KeyID)
		out.PublicKey = Hex(h.PublicKey[:])
	}
	if h.Tier == wire.Tier5 {
		out.Tag = Hex(h.Tag[:])
	}
}

func open(out *Frame, b []byte, h *wire.Header, opts Options) {
	sec, err := opts.Keys.Secrets()
	if err != nil {
		out.OpenError = err.Error()
		return
	}
	// The receiver is in opts.Epoch, as a session would be: it opens that
	// epoch, the next and (in its grace) the previous; a Tier 4-5 frame's
	// Key ID names its epoch, which must be one of those (§P16).
	ep := opts.Epoch
	var largest uint64
	if opts.Largest != nil {
		largest = *opts.Largest
	}
	o, err := wire.NewOpenerAt(sec, opts.Direction, ep, largest, opts.Largest != nil, opts.Now)
	if err != nil {
		out.OpenError = fmt.Sprintf("key epoch %d: %s", ep, strings.TrimPrefix(err.Error(), "myclerk: "))
		return
	}
	o.Skew = opts.Skew
	got, err := o.Open(nil, b, opts.Now)
	if err != nil {
		out.OpenError = strings.TrimPrefix(err.Error(), "myclerk: ")
		return
	}
	out.Opened = &Opened{Direction: opts.Direction.String(), Epoch: got.Epoch, Counter: got.Counter, Plaintext: Hex(got.Payload)}
	if utf8.Valid(got.Payload) && printable(got.Payload) {
		out.Opened.Text = string(got.Payload)
	}
}

func printable(b []byte) bool {
	for _, r := range string(b) {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return false
		}
	}
	return len(b) > 0
}

// handshakeDigest is the digest a handshake frame's trailer should hold.
func handshakeDigest(b []byte) []byte {
	sum := sha256.Sum256(b[:len(b)-wire.TagSize])
	return sum[:wire.TagSize]
}

// OpText is an op in JSON: written as a string ("0x0624"), read from a
// string (a number in any base ParseOp takes, or a name) or a JSON number
// (1572).
type OpText string

// UnmarshalJSON takes a JSON string or number.
func (o *OpText) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] != '"' {
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("op: want a name or a number, got %s", b)
		}
		*o = OpText(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*o = OpText(s)
	return nil
}

// ParseOp reads an op as a number (0x0624, 1572) or a name (GPIO_LINE_SET).
func ParseOp(s string) (wire.Op, error) {
	if op, ok := wire.OpByName(strings.ToUpper(s)); ok {
		return op, nil
	}
	v, err := strconv.ParseUint(s, 0, 16)
	if err != nil {
		return 0, fmt.Errorf("op %q: not a name or a 16-bit number", s)
	}
	return wire.Op(v), nil
}

// EncodeOptions carry what sealing needs besides the frame description.
type EncodeOptions struct {
	Keys      *KeyMaterial
	Direction wire.Direction
	Epoch     uint32 // Tier 3 epoch (Tiers 4-5 take Key ID)
}

// Encode builds the frame fr describes. Payload is the plaintext. Sealed
// tiers need key material; their counter is fr.Counter, or else
// Sequence + Nonce<<8, and their time fr.Timestamp.
func Encode(fr *Frame, opts EncodeOptions) ([]byte, error) {
	if fr.Tier > uint8(wire.MaxTier) {
		return nil, wire.ErrTier
	}
	h := wire.Header{Tier: wire.Tier(fr.Tier), Compressed: fr.Compressed, Fragmented: fr.Fragmented, Encrypted: fr.Encrypted}
	if fr.Flags != nil { // a decoded description: its flags win
		h.Compressed, h.Fragmented, h.Encrypted = fr.Flags.Compressed, fr.Flags.Fragmented, fr.Flags.Encrypted
	}
	if h.Tier == wire.Tier0 {
		if h.Fragmented || h.Encrypted {
			return nil, fmt.Errorf("tier 0: only the compressed flag may be set")
		}
		return wire.AppendTier0(nil, h.Compressed, fr.Payload), nil
	}
	if fr.Op == "" {
		return nil, errors.New("op is required")
	}
	op, err := ParseOp(string(fr.Op))
	if err != nil {
		return nil, err
	}
	h.Op = op
	h.Sequence = deref(fr.Sequence)
	h.SessionID = deref(fr.SessionID)
	h.Timestamp = deref(fr.Timestamp)
	h.Nonce = deref(fr.Nonce)
	h.KeyID = deref(fr.KeyID)
	var frag *wire.FragmentHeader
	if fr.Fragment != nil {
		h.Fragmented = true
		frag = &wire.FragmentHeader{MessageID: fr.Fragment.MessageID, Index: fr.Fragment.Index, Total: fr.Fragment.Total}
	}
	switch {
	case h.Tier <= wire.Tier2:
		return wire.AppendPlain(nil, &h, frag, fr.Payload)
	case h.Tier == wire.Tier4 && op.Handshake():
		if len(fr.PublicKey) != wire.PublicKeySize {
			return nil, fmt.Errorf("handshake frame: public_key must have %d bytes", wire.PublicKeySize)
		}
		copy(h.PublicKey[:], fr.PublicKey)
		return wire.AppendHandshake(nil, &h, fr.Payload)
	}
	if opts.Keys == nil {
		return nil, fmt.Errorf("tier %d frames are sealed: key material is required", fr.Tier)
	}
	sec, err := opts.Keys.Secrets()
	if err != nil {
		return nil, err
	}
	ep := opts.Epoch
	if h.Tier >= wire.Tier4 {
		ep = h.KeyID
	}
	ctr := uint64(h.Sequence) | uint64(h.Nonce)<<8
	if fr.Counter != nil {
		ctr = uint64(*fr.Counter)
	}
	s, err := wire.NewSealerAt(sec, opts.Direction, ep, ctr, time.Unix(int64(h.Timestamp), 0))
	if err != nil {
		return nil, err
	}
	return s.Seal(nil, &h, frag, fr.Payload, time.Unix(int64(h.Timestamp), 0))
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}
