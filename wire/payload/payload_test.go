package payload

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/myclerk/myclerk-bridge/wire"
)

// codec is what the five payload types have in common.
type codec interface {
	Marshal() ([]byte, error)
	AppendMsgpack([]byte) ([]byte, error)
	Unmarshal([]byte) error
}

// newOf returns a fresh zero value of the same payload type as p.
func newOf(p codec) codec { return reflect.New(reflect.TypeOf(p).Elem()).Interface().(codec) }

// Test builders: each returns the deterministic encoding of one item.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
func s(k string) []byte          { return appendStr(nil, k) }
func u(v uint64) []byte          { return appendUint(nil, v) }
func bn(n int) []byte            { return appendBin(nil, make([]byte, n)) }
func mp(n int, kv ...[]byte) []byte {
	return cat(append([][]byte{appendMapLen(nil, n)}, kv...)...)
}
func hx(t testing.TB, x string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(x, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
func seq(n int) (b [16]byte) {
	for i := range b {
		b[i] = byte(n + i)
	}
	return b
}

var (
	exampleInit = SessionInit{
		Nonce:        [8]byte{0, 1, 2, 3, 4, 5, 6, 7},
		Timestamp:    1767225600, // 2026-01-01T00:00:00Z
		Capabilities: []Capability{CapLZ4, CapZstd, CapChaCha20, CapFragmentation},
		DeviceID:     seq(0x10),
		HasDeviceID:  true,
	}
	exampleAck = SessionAck{
		SessionID:            0x1234,
		Nonce:                [8]byte{8, 9, 10, 11, 12, 13, 14, 15},
		SelectedTier:         4,
		SelectedCapabilities: []Capability{CapZstd, CapChaCha20},
	}
	exampleResume = func() SessionResume {
		p := SessionResume{OldSessionID: 0x1234, Nonce: [8]byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7}}
		for i := range p.Ticket {
			p.Ticket[i] = byte(i)
		}
		return p
	}()
	exampleResumed = SessionResumed{SessionID: 0x00ff, Nonce: [8]byte{0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7}, SelectedTier: 3}
	exampleError   = Error{Code: wire.CodeForbidden, RefSeq: 300, RequiredTier: 4, HasRequiredTier: true, Message: "tier 4 required"}
)

// TestGolden pins the encodings: they must never drift, test vectors and
// transcript hashes depend on them.
func TestGolden(t *testing.T) {
	ticketHex := ""
	for i := range wire.TicketSize {
		ticketHex += hex.EncodeToString([]byte{byte(i)})
	}
	tests := []struct {
		name string
		p    codec
		want string
	}{
		{"session-init", &exampleInit, "84" +
			"a56e6f6e6365 c408 0001020304050607" + // "nonce": bin8(8)
			"a974696d657374616d70 ce6955b900" + // "timestamp": uint32 1767225600
			"ac6361706162696c6974696573 94 00010204" + // "capabilities": [0,1,2,4]
			"a96465766963652d6964 c410 101112131415161718191a1b1c1d1e1f"}, // "device-id": bin8(16)
		{"session-init-minimal", &SessionInit{Timestamp: 5}, "82" +
			"a56e6f6e6365 c408 0000000000000000" +
			"a974696d657374616d70 05"},
		{"session-ack", &exampleAck, "84" +
			"aa73657373696f6e2d6964 cd1234" +
			"a56e6f6e6365 c408 08090a0b0c0d0e0f" +
			"ad73656c65637465642d74696572 04" +
			"b573656c65637465642d6361706162696c6974696573 92 0102"},
		{"session-resume", &exampleResume, "83" +
			"ae6f6c642d73657373696f6e2d6964 cd1234" +
			"a67469636b6574 c460" + ticketHex +
			"a56e6f6e6365 c408 a0a1a2a3a4a5a6a7"},
		{"session-resumed", &exampleResumed, "83" +
			"aa73657373696f6e2d6964 ccff" +
			"a56e6f6e6365 c408 b0b1b2b3b4b5b6b7" +
			"ad73656c65637465642d74696572 03"},
		{"error", &exampleError, "84" +
			"a4636f6465 12" +
			"a77265662d736571 cd012c" +
			"ad72657175697265642d74696572 04" +
			"a76d657373616765 af" + hex.EncodeToString([]byte("tier 4 required"))},
		{"error-minimal", &Error{Code: wire.CodeBadRequest}, "82 a4636f6465 10 a77265662d736571 00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := hx(t, tt.want)
			got, err := tt.p.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding drifted:\n got %x\nwant %x", got, want)
			}
			q := newOf(tt.p)
			if err := q.Unmarshal(want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(q, tt.p) {
				t.Fatalf("decoded %+v, want %+v", q, tt.p)
			}
			// AppendMsgpack appends and leaves the prefix alone.
			got, err = tt.p.AppendMsgpack([]byte("pre"))
			if err != nil || !bytes.Equal(got, append([]byte("pre"), want...)) {
				t.Fatalf("AppendMsgpack = %x, %v", got, err)
			}
		})
	}
}

// TestLibraryAgrees checks that the hand-written encoder writes exactly what
// the msgpack library writes for the same values, and that the library
// decodes it to the same members.
func TestLibraryAgrees(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, math.MaxUint64} {
		var buf bytes.Buffer
		if err := msgpack.NewEncoder(&buf).EncodeUint(v); err != nil {
			t.Fatal(err)
		}
		if got := appendUint(nil, v); !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("uint %d: %x, library %x", v, got, buf.Bytes())
		}
	}
	for _, n := range []int{0, 1, 31, 32, 255, 256} {
		str := strings.Repeat("x", n)
		var buf bytes.Buffer
		if err := msgpack.NewEncoder(&buf).EncodeString(str); err != nil {
			t.Fatal(err)
		}
		if got := appendStr(nil, str); !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("str of %d: %x, library %x", n, got[:4], buf.Bytes()[:4])
		}
		if n <= 255 {
			buf.Reset()
			if err := msgpack.NewEncoder(&buf).EncodeBytes([]byte(str)); err != nil {
				t.Fatal(err)
			}
			if got := appendBin(nil, []byte(str)); !bytes.Equal(got, buf.Bytes()) {
				t.Errorf("bin of %d: %x, library %x", n, got[:3], buf.Bytes()[:3])
			}
		}
	}
	for _, n := range []int{0, 15, 16, 32} {
		var buf bytes.Buffer
		if err := msgpack.NewEncoder(&buf).EncodeArrayLen(n); err != nil {
			t.Fatal(err)
		}
		if got := appendArrayLen(nil, n); !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("array of %d: %x, library %x", n, got, buf.Bytes())
		}
	}
	for n := range 16 {
		var buf bytes.Buffer
		if err := msgpack.NewEncoder(&buf).EncodeMapLen(n); err != nil {
			t.Fatal(err)
		}
		if got := appendMapLen(nil, n); !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("map of %d: %x, library %x", n, got, buf.Bytes())
		}
	}

	b, err := exampleInit.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"nonce":        exampleInit.Nonce[:],
		"timestamp":    uint32(exampleInit.Timestamp),
		"capabilities": []any{int8(0), int8(1), int8(2), int8(4)},
		"device-id":    exampleInit.DeviceID[:],
	}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("library decodes %#v, want %#v", m, want)
	}
}

func TestRoundTrip(t *testing.T) {
	allCaps := make([]Capability, MaxCapabilities)
	for i := range allCaps {
		allCaps[i] = Capability(i * 8) // 0..248: fixint and uint8 forms
	}
	tests := []codec{
		&SessionInit{},
		&SessionInit{Timestamp: math.MaxUint64, Capabilities: []Capability{}},
		&SessionInit{Timestamp: 1 << 32, Capabilities: allCaps, HasDeviceID: true, DeviceID: seq(200)},
		&SessionInit{Capabilities: []Capability{7, 127, 128, 255}}, // unknown values are kept
		&SessionAck{},
		&SessionAck{SessionID: math.MaxUint16, SelectedTier: uint8(wire.MaxTier), SelectedCapabilities: []Capability{}},
		&SessionAck{SessionID: 1, SelectedCapabilities: allCaps[:16]},
		&SessionResume{},
		&SessionResume{OldSessionID: math.MaxUint16},
		&SessionResumed{},
		&SessionResumed{SessionID: 128, SelectedTier: 5},
		&Error{},
		&Error{Code: 0xff, RefSeq: math.MaxUint32, HasRequiredTier: true},
		&Error{Code: wire.CodeTooLarge, RefSeq: 1, Message: strings.Repeat("é", MaxMessageLen/2)},
		&Error{Message: strings.Repeat("m", 31)},
		&Error{Message: strings.Repeat("m", 32)},
	}
	for _, p := range tests {
		b, err := p.Marshal()
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		if len(b) > MaxPayload {
			t.Fatalf("%+v: %d bytes", p, len(b))
		}
		q := newOf(p)
		if err := q.Unmarshal(b); err != nil {
			t.Fatalf("%+v: %v (%x)", p, err, b)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip: %+v, want %+v", q, p)
		}
	}
}

// TestDecodeAccepts covers inputs that are not this package's encoding but
// are valid: other member orders, unknown members of any type, and
// integers in longer or signed forms.
func TestDecodeAccepts(t *testing.T) {
	nonce := cat(s("nonce"), bn(8))
	nested := func(depth int) []byte { // depth nested arrays around an int
		return cat(bytes.Repeat([]byte{0x91}, depth), []byte{0x01})
	}
	var fourteen []byte // 14 unknown members
	for i := range 14 {
		fourteen = append(fourteen, cat(s(string(rune('a'+i))), u(0))...)
	}
	tests := []struct {
		name string
		in   []byte
		want SessionInit
	}{
		{"reordered", mp(2, s("timestamp"), u(9), nonce), SessionInit{Timestamp: 9}},
		{"uint64 form", mp(2, nonce, s("timestamp"), hx(t, "cf0000000000000009")), SessionInit{Timestamp: 9}},
		{"int8 form", mp(2, nonce, s("timestamp"), hx(t, "d009")), SessionInit{Timestamp: 9}},
		{"int64 form", mp(2, nonce, s("timestamp"), hx(t, "d30000000000000009")), SessionInit{Timestamp: 9}},
		{"str8 key", mp(2, hx(t, "d905"), []byte("nonce"), bn(8), s("timestamp"), u(9)), SessionInit{Timestamp: 9}},
		{"map16 header", cat(hx(t, "de0002"), nonce, s("timestamp"), u(9)), SessionInit{Timestamp: 9}},
		{"map32 header", cat(hx(t, "df00000002"), nonce, s("timestamp"), u(9)), SessionInit{Timestamp: 9}},
		{"bin16 nonce", mp(2, s("nonce"), hx(t, "c50008"), make([]byte, 8), s("timestamp"), u(9)), SessionInit{Timestamp: 9}},
		{"array16 capabilities", mp(3, nonce, s("timestamp"), u(9), s("capabilities"), hx(t, "dc0001 cd0003")),
			SessionInit{Timestamp: 9, Capabilities: []Capability{CapAES256GCM}}},
		{"unknown scalars", mp(8, nonce, s("timestamp"), u(9),
			s("a"), []byte{0xc0}, s("b"), []byte{0xc3}, s("c"), hx(t, "cb3ff0000000000000"),
			s("d"), hx(t, "e0"), s("e"), hx(t, "d3ffffffffffffffff"), s("f"), hx(t, "ca3f800000")),
			SessionInit{Timestamp: 9}},
		{"unknown containers", mp(6, nonce, s("timestamp"), u(9),
			s("a"), mp(2, u(1), s("x"), s("y"), hx(t, "92c0c0")), s("b"), hx(t, "c40201 02"),
			s("c"), hx(t, "d4 01 ff"), s("d"), hx(t, "c7 03 05 010203")),
			SessionInit{Timestamp: 9}},
		{"unknown nested to the limit", mp(3, nonce, s("timestamp"), u(9), s("x"), nested(MaxDepth-1)), SessionInit{Timestamp: 9}},
		{"unknown key of 64 bytes", mp(3, nonce, s("timestamp"), u(9), s(strings.Repeat("k", MaxKeyLen)), u(0)), SessionInit{Timestamp: 9}},
		{"empty key", mp(3, nonce, s("timestamp"), u(9), s(""), u(0)), SessionInit{Timestamp: 9}},
		{"16 entries", cat(hx(t, "de0010"), nonce, s("timestamp"), u(9), fourteen), SessionInit{Timestamp: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			var got SessionInit
			if err := got.Unmarshal(in); err != nil {
				t.Fatalf("%v (%x)", err, in)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestDecodeRejects has a case for each rule of the package comment. The
// wanted substring makes sure the case fails for the reason it names.
func TestDecodeRejects(t *testing.T) {
	nonce := cat(s("nonce"), bn(8))
	ts := cat(s("timestamp"), u(9))
	init2 := func(kv ...[]byte) []byte { return mp(2+len(kv)/2, append([][]byte{nonce, ts}, kv...)...) }
	ackID, ackTier := cat(s("session-id"), u(1)), cat(s("selected-tier"), u(3))
	ack := func(kv ...[]byte) []byte { return mp(3+len(kv)/2, append([][]byte{ackID, nonce, ackTier}, kv...)...) }
	resOld, resTicket := cat(s("old-session-id"), u(1)), cat(s("ticket"), bn(wire.TicketSize))
	errCode, errRef := cat(s("code"), u(0x10)), cat(s("ref-seq"), u(1))
	errp := func(kv ...[]byte) []byte { return mp(2+len(kv)/2, append([][]byte{errCode, errRef}, kv...)...) }

	type tc struct {
		name string
		p    codec
		in   []byte
		want string
	}
	tests := []tc{
		// Framing.
		{"empty", &SessionInit{}, nil, "payload: truncated"},
		{"too large", &SessionInit{}, append(init2(), make([]byte, MaxPayload)...), "limit 4096"},
		{"top level array", &SessionInit{}, hx(t, "92 01 02"), "top level is an array"},
		{"top level nil", &SessionInit{}, hx(t, "c0"), "top level is nil"},
		{"top level ext then map", &SessionInit{}, cat(hx(t, "d4 01 00"), init2()), "top level is an ext"},
		{"17 entries", &SessionInit{}, cat(hx(t, "de0011"), nonce, ts), "17 entries, limit 16"},
		{"map32 count", &SessionInit{}, cat(hx(t, "dfffffffff"), nonce, ts), "4294967295 entries"},
		{"truncated map16 header", &SessionInit{}, hx(t, "de00"), "truncated a map"},
		{"fewer entries than declared", &SessionInit{}, mp(3, nonce, ts), "key: truncated"},
		{"trailing bytes", &SessionInit{}, append(init2(), 0xc0), "1 trailing bytes"},
		{"two maps", &SessionInit{}, append(init2(), init2()...), "trailing bytes"},

		// Keys.
		{"int key", &SessionInit{}, init2(u(1), u(1)), "key is an integer, want str"},
		{"bin key", &SessionInit{}, init2(appendBin(nil, []byte("x")), u(1)), "key is a bin, want str"},
		{"nil key", &SessionInit{}, init2([]byte{0xc0}, u(1)), "key is nil"},
		{"key of 65 bytes", &SessionInit{}, init2(s(strings.Repeat("k", MaxKeyLen+1)), u(1)), "key of 65 bytes, limit 64"},
		{"key str32 huge", &SessionInit{}, init2(hx(t, "dbffffffff"), u(1)), "key of 4294967295 bytes"},
		{"key longer than input", &SessionInit{}, init2(hx(t, "d930"), []byte("ab")), "key: length 48 exceeds"},
		{"key not UTF-8", &SessionInit{}, init2(hx(t, "a2 c328"), u(1)), "not UTF-8"},
		{"duplicate known key", &SessionInit{}, init2(s("nonce"), bn(8)), `duplicate key "nonce"`},
		{"duplicate unknown key", &SessionInit{}, init2(s("x"), u(1), s("x"), u(2)), `duplicate key "x"`},
		{"duplicate key in str8 form", &SessionInit{}, init2(hx(t, "d9 05"), []byte("nonce"), bn(8)), `duplicate key "nonce"`},

		// Skipping unknown values.
		{"unknown too deep", &SessionInit{}, init2(s("x"), cat(bytes.Repeat([]byte{0x91}, MaxDepth), []byte{1})), "nested deeper than 8"},
		{"unknown map too deep", &SessionInit{}, init2(s("x"), cat(bytes.Repeat([]byte{0x81, 0x00}, MaxDepth), []byte{1})), "nested deeper than 8"},
		{"unknown bin32 huge", &SessionInit{}, init2(s("x"), hx(t, "c6ffffffff 00")), "length 4294967295 exceeds the 1 bytes left"},
		{"unknown str16 beyond input", &SessionInit{}, init2(s("x"), hx(t, "da0100 00")), "length 256 exceeds"},
		{"unknown array32 huge", &SessionInit{}, init2(s("x"), hx(t, "ddffffffff 00")), "an array of 4294967295 entries exceeds"},
		{"unknown map32 huge", &SessionInit{}, init2(s("x"), hx(t, "dfffffffff 0000")), "a map of 4294967295 entries exceeds"},
		{"unknown map16 odd", &SessionInit{}, init2(s("x"), hx(t, "de0002 000000")), "a map of 2 entries exceeds the 3 bytes left"},
		{"unknown ext32 huge", &SessionInit{}, init2(s("x"), hx(t, "c9ffffffff01 00")), "ext: length 4294967295 exceeds"},
		{"unknown fixext16 short", &SessionInit{}, init2(s("x"), hx(t, "d801 0000")), "ext: length 16 exceeds"},
		{"unknown truncated uint64", &SessionInit{}, init2(s("x"), hx(t, "cf0000")), "value: truncated an integer"},
		{"unknown truncated float", &SessionInit{}, init2(s("x"), hx(t, "cb00")), "value: truncated a float"},
		{"unknown 0xc1", &SessionInit{}, init2(s("x"), hx(t, "c1")), "invalid type code 0xc1"},
		{"unknown missing value", &SessionInit{}, mp(3, nonce, ts, s("x")), "value: truncated"},

		// session-init members.
		{"init missing nonce", &SessionInit{}, mp(1, ts), `missing required member "nonce"`},
		{"init missing timestamp", &SessionInit{}, mp(1, nonce), `missing required member "timestamp"`},
		{"nonce as str", &SessionInit{}, mp(2, s("nonce"), s("12345678"), ts), "nonce is a str, want bin"},
		{"nonce nil", &SessionInit{}, mp(2, s("nonce"), []byte{0xc0}, ts), "nonce is nil, want bin"},
		{"nonce 7 bytes", &SessionInit{}, mp(2, s("nonce"), bn(7), ts), "nonce is 7 bytes, want 8"},
		{"nonce 9 bytes", &SessionInit{}, mp(2, s("nonce"), bn(9), ts), "nonce is 9 bytes, want 8"},
		{"nonce bin32 huge", &SessionInit{}, mp(2, s("nonce"), hx(t, "c6ffffffff"), ts), "nonce is 4294967295 bytes"},
		{"nonce truncated", &SessionInit{}, mp(2, ts, s("nonce"), hx(t, "c408 0102")), "nonce: length 8 exceeds the 2 bytes left"},
		{"timestamp negative", &SessionInit{}, mp(2, nonce, s("timestamp"), hx(t, "ff")), "timestamp is negative"},
		{"timestamp int64 negative", &SessionInit{}, mp(2, nonce, s("timestamp"), hx(t, "d38000000000000000")), "timestamp is negative"},
		{"timestamp float", &SessionInit{}, mp(2, nonce, s("timestamp"), hx(t, "cb41d0000000000000")), "timestamp is a float"},
		{"timestamp str", &SessionInit{}, mp(2, nonce, s("timestamp"), s("9")), "timestamp is a str"},
		{"timestamp bool", &SessionInit{}, mp(2, nonce, s("timestamp"), []byte{0xc3}), "timestamp is a bool"},
		{"timestamp nil", &SessionInit{}, mp(2, nonce, s("timestamp"), []byte{0xc0}), "timestamp is nil"},
		{"timestamp truncated", &SessionInit{}, mp(2, nonce, s("timestamp"), hx(t, "ce0000")), "timestamp: truncated an integer"},
		{"capabilities not array", &SessionInit{}, init2(s("capabilities"), bn(2)), "capabilities is a bin, want an array"},
		{"capabilities nil", &SessionInit{}, init2(s("capabilities"), []byte{0xc0}), "capabilities is nil"},
		{"33 capabilities", &SessionInit{}, init2(s("capabilities"), hx(t, "dc0021"), make([]byte, 33)), "33 entries, limit 32"},
		{"capabilities array32 huge", &SessionInit{}, init2(s("capabilities"), hx(t, "ddffffffff")), "4294967295 entries, limit 32"},
		{"capabilities beyond input", &SessionInit{}, init2(s("capabilities"), hx(t, "9f 00")), "15 entries exceed the 1 bytes left"},
		{"capability 256", &SessionInit{}, init2(s("capabilities"), hx(t, "91 cd0100")), "capabilities is 256, limit 255"},
		{"capability negative", &SessionInit{}, init2(s("capabilities"), hx(t, "91 ff")), "capabilities is negative"},
		{"capability str", &SessionInit{}, init2(s("capabilities"), hx(t, "91 a130")), "capabilities is a str"},
		{"device-id 15 bytes", &SessionInit{}, init2(s("device-id"), bn(15)), "device-id is 15 bytes, want 16"},
		{"device-id str", &SessionInit{}, init2(s("device-id"), s(strings.Repeat("d", 16))), "device-id is a str, want bin"},

		// session-ack members.
		{"ack missing session-id", &SessionAck{}, mp(2, nonce, ackTier), `missing required member "session-id"`},
		{"ack missing nonce", &SessionAck{}, mp(2, ackID, ackTier), `missing required member "nonce"`},
		{"ack missing selected-tier", &SessionAck{}, mp(2, ackID, nonce), `missing required member "selected-tier"`},
		{"ack session-id 65536", &SessionAck{}, mp(3, s("session-id"), u(1<<16), nonce, ackTier), "session-id is 65536, limit 65535"},
		{"ack selected-tier 6", &SessionAck{}, mp(3, ackID, nonce, s("selected-tier"), u(6)), "selected-tier is 6, limit 5"},
		{"ack selected-tier negative", &SessionAck{}, mp(3, ackID, nonce, s("selected-tier"), hx(t, "ff")), "selected-tier is negative"},
		{"ack 33 capabilities", &SessionAck{}, ack(s("selected-capabilities"), hx(t, "dc0021"), make([]byte, 33)), "33 entries, limit 32"},
		{"ack capability 256", &SessionAck{}, ack(s("selected-capabilities"), hx(t, "91 cd0100")), "limit 255"},
		{"ack duplicate", &SessionAck{}, ack(s("selected-tier"), u(3)), `duplicate key "selected-tier"`},

		// session-resume members.
		{"resume missing old-session-id", &SessionResume{}, mp(2, resTicket, nonce), `missing required member "old-session-id"`},
		{"resume missing ticket", &SessionResume{}, mp(2, resOld, nonce), `missing required member "ticket"`},
		{"resume missing nonce", &SessionResume{}, mp(2, resOld, resTicket), `missing required member "nonce"`},
		{"resume ticket 64 bytes (draft size)", &SessionResume{}, mp(3, resOld, s("ticket"), bn(64), nonce), "ticket is 64 bytes, want 96"},
		{"resume ticket 97 bytes", &SessionResume{}, mp(3, resOld, s("ticket"), bn(97), nonce), "ticket is 97 bytes, want 96"},
		{"resume ticket str", &SessionResume{}, mp(3, resOld, s("ticket"), s(strings.Repeat("t", 96)), nonce), "ticket is a str, want bin"},
		{"resume old-session-id 70000", &SessionResume{}, mp(3, s("old-session-id"), u(70000), resTicket, nonce), "old-session-id is 70000, limit 65535"},

		// session-resumed members.
		{"resumed missing session-id", &SessionResumed{}, mp(2, nonce, ackTier), `missing required member "session-id"`},
		{"resumed missing nonce", &SessionResumed{}, mp(2, ackID, ackTier), `missing required member "nonce"`},
		{"resumed missing selected-tier", &SessionResumed{}, mp(2, ackID, nonce), `missing required member "selected-tier"`},
		{"resumed selected-tier 6", &SessionResumed{}, mp(3, ackID, nonce, s("selected-tier"), u(6)), "selected-tier is 6, limit 5"},
		{"resumed session-id uint32", &SessionResumed{}, mp(3, s("session-id"), u(1<<20), nonce, ackTier), "limit 65535"},

		// error members.
		{"error missing code", &Error{}, mp(1, errRef), `missing required member "code"`},
		{"error missing ref-seq", &Error{}, mp(1, errCode), `missing required member "ref-seq"`},
		{"error code 256", &Error{}, mp(2, s("code"), u(256), errRef), "code is 256, limit 255"},
		{"error code negative", &Error{}, mp(2, s("code"), hx(t, "d0f0"), errRef), "code is negative"},
		{"error ref-seq 2^32", &Error{}, mp(2, errCode, s("ref-seq"), u(1<<32)), "ref-seq is 4294967296, limit 4294967295"},
		{"error required-tier 6", &Error{}, errp(s("required-tier"), u(6)), "required-tier is 6, limit 5"},
		{"error message 257 bytes", &Error{}, errp(s("message"), s(strings.Repeat("m", MaxMessageLen+1))), "message is 257 bytes, limit 256"},
		{"error message str32 huge", &Error{}, errp(s("message"), hx(t, "dbffffffff")), "message is 4294967295 bytes"},
		{"error message beyond input", &Error{}, errp(s("message"), hx(t, "d910 00")), "message: length 16 exceeds"},
		{"error message not UTF-8", &Error{}, errp(s("message"), hx(t, "a2 c328")), "message is not UTF-8"},
		{"error message bin", &Error{}, errp(s("message"), appendBin(nil, []byte("hi"))), "message is a bin, want str"},
		{"error message nil", &Error{}, errp(s("message"), []byte{0xc0}), "message is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Unmarshal(tt.in)
			if err == nil {
				t.Fatalf("accepted %x", tt.in)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
			wantSentinel, wantCode := wire.ErrMalformed, wire.CodeBadRequest
			if len(tt.in) > MaxPayload {
				wantSentinel, wantCode = wire.ErrTooLarge, wire.CodeTooLarge
			}
			if !errors.Is(err, wantSentinel) || wire.CodeOf(err) != wantCode {
				t.Fatalf("error %q does not wrap %v", err, wantSentinel)
			}
		})
	}
}

// TestTruncations cuts each valid encoding at every length: only the full
// encoding decodes.
func TestTruncations(t *testing.T) {
	for _, p := range []codec{&exampleInit, &exampleAck, &exampleResume, &exampleResumed, &exampleError} {
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		for n := range len(b) {
			if err := newOf(p).Unmarshal(b[:n]); !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("%T cut at %d: %v", p, n, err)
			}
		}
	}
}

// TestUnmarshalKeepsReceiverOnError checks that a failed Unmarshal changes
// nothing.
func TestUnmarshalKeepsReceiverOnError(t *testing.T) {
	p := exampleInit
	b, _ := exampleInit.Marshal()
	bad := append(b[:len(b):len(b)], 0)
	if err := p.Unmarshal(bad); err == nil {
		t.Fatal("accepted trailing byte")
	}
	if !reflect.DeepEqual(p, exampleInit) {
		t.Fatalf("receiver changed to %+v", p)
	}
}

// TestNoAllocationFromLengths checks that a declared length is never
// allocated: a huge declared bin costs what a tiny one does.
func TestNoAllocationFromLengths(t *testing.T) {
	nonce := cat(s("nonce"), bn(8))
	small := mp(2, nonce, s("x"), hx(t, "c401 00"))
	huge := mp(2, nonce, s("x"), hx(t, "c6ffffffff 00"))
	run := func(in []byte) float64 {
		return testing.AllocsPerRun(100, func() { _ = new(SessionInit).Unmarshal(in) })
	}
	// The huge one fails (so it builds an error); allow for that alone.
	if a, b := run(small), run(huge); b > a+8 {
		t.Fatalf("declared 4 GiB bin: %v allocations, a 1-byte bin: %v", b, a)
	}
}

func TestMarshalRejects(t *testing.T) {
	tests := []struct {
		name string
		p    codec
		want string
	}{
		{"init 33 capabilities", &SessionInit{Capabilities: make([]Capability, 33)}, "33 capabilities, limit 32"},
		{"ack tier 6", &SessionAck{SelectedTier: 6}, "selected-tier 6, limit 5"},
		{"ack 33 capabilities", &SessionAck{SelectedCapabilities: make([]Capability, 33)}, "33 selected capabilities"},
		{"resumed tier 6", &SessionResumed{SelectedTier: 6}, "selected-tier 6, limit 5"},
		{"error required-tier 6", &Error{RequiredTier: 6, HasRequiredTier: true}, "required-tier 6"},
		{"error message 257", &Error{Message: strings.Repeat("m", 257)}, "message of 257 bytes"},
		{"error message not UTF-8", &Error{Message: "\xff"}, "not UTF-8"},
	}
	for _, tt := range tests {
		b, err := tt.p.Marshal()
		if err == nil || !errors.Is(err, wire.ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Marshal = %x, %v; want an error containing %q", tt.name, b, err, tt.want)
		}
	}
	// Absent optional members ignore their value fields.
	b, err := (&Error{RequiredTier: 9}).Marshal()
	if err != nil || len(b) != 1+5+1+8+1 {
		t.Errorf("absent required-tier: %x, %v", b, err)
	}
}

func TestCapabilityString(t *testing.T) {
	want := map[Capability]string{
		CapLZ4: "compression-lz4", CapZstd: "compression-zstd", CapChaCha20: "encryption-chacha20",
		CapAES256GCM: "encryption-aes256gcm", CapFragmentation: "fragmentation", CapStreaming: "streaming",
		CapFederation: "federation", CapVFS: "vfs", 7: "capability-7", 9: "capability-9", 255: "capability-255",
	}
	for c, name := range want {
		if got := c.String(); got != name {
			t.Errorf("Capability(%d) = %q, want %q", uint8(c), got, name)
		}
	}
}

func TestNegotiate(t *testing.T) {
	c := func(v ...Capability) []Capability { return v }
	tests := []struct {
		offered, supported, want []Capability
	}{
		{nil, nil, nil},
		{c(0, 1, 2), nil, nil},
		{nil, c(0, 1), nil},
		{c(0, 1, 2, 4), c(4, 2, 1), c(4, 2, 1)}, // supported's order
		{c(1, 1, 2), c(2, 1, 1, 2), c(2, 1)},    // each once
		{c(7, 200, 0), c(200, 3, 7), c(200, 7)}, // unknown values are ordinary values
		{c(CapVFS), c(CapLZ4, CapZstd), nil},    // none in common
		{c(255, 0), c(0, 255), c(0, 255)},       // edges of the range
		{c(CapZstd, CapLZ4), c(CapLZ4, CapZstd), c(0, 1)},
	}
	for _, tt := range tests {
		if got := Negotiate(tt.offered, tt.supported); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Negotiate(%v, %v) = %v, want %v", tt.offered, tt.supported, got, tt.want)
		}
	}
}

func TestSelectCompression(t *testing.T) {
	tests := []struct {
		caps []Capability
		want Capability
		ok   bool
	}{
		{nil, 0, false},
		{[]Capability{CapChaCha20, CapFragmentation}, 0, false},
		{[]Capability{CapChaCha20, CapZstd, CapLZ4}, CapZstd, true},
		{[]Capability{CapLZ4, CapZstd}, CapLZ4, true},
		{[]Capability{CapLZ4}, CapLZ4, true},
	}
	for _, tt := range tests {
		got, ok := SelectCompression(tt.caps)
		if got != tt.want || ok != tt.ok {
			t.Errorf("SelectCompression(%v) = %v, %v; want %v, %v", tt.caps, got, ok, tt.want, tt.ok)
		}
	}
}

func BenchmarkMarshalSessionInit(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 128)
	for b.Loop() {
		var err error
		if buf, err = exampleInit.AppendMsgpack(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalSessionInit(b *testing.B) {
	in, err := exampleInit.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	var p SessionInit
	for b.Loop() {
		if err := p.Unmarshal(in); err != nil {
			b.Fatal(err)
		}
	}
}

func TestShortMessage(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	for _, tc := range []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("a", MaxMessageLen), strings.Repeat("a", MaxMessageLen)},
		{strings.Repeat("a", MaxMessageLen+1), strings.Repeat("a", MaxMessageLen-3) + "..."},
		{"bad \xff byte", "bad ? byte"},
	} {
		if got := ShortMessage(tc.in); got != tc.want {
			t.Errorf("ShortMessage(%q) = %q", tc.in, got)
		}
	}
	got := ShortMessage(long)
	if len(got) > MaxMessageLen || !utf8.ValidString(got) || !strings.HasSuffix(got, "...") {
		t.Errorf("a cut in a character: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if _, err := (&Error{Code: 0x10, Message: got}).Marshal(); err != nil {
		t.Error(err)
	}
}
