package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func TestFlagsBitOrder(t *testing.T) {
	tests := []struct {
		h    Header
		want byte
	}{
		{Header{Tier: Tier1}, 0x08},
		{Header{Tier: Tier2}, 0x10},
		{Header{Tier: Tier3}, 0x18},
		{Header{Tier: Tier3, Encrypted: true}, 0x19},
		{Header{Tier: Tier4, Fragmented: true}, 0x22},
		{Header{Tier: Tier5, Compressed: true, Fragmented: true, Encrypted: true}, 0x2F},
		{Header{Tier: Tier0, Compressed: true}, 0x04},
	}
	for _, tt := range tests {
		if got := tt.h.Flags(); got != tt.want {
			t.Errorf("%+v: flags %#02x, want %#02x", tt.h, got, tt.want)
		}
	}
}

func TestHeaderSizes(t *testing.T) {
	// PROFILE.md §P1: the diagrams are normative.
	want := map[Tier][3]int{ // header, trailer, overhead
		Tier0: {1, 0, 1}, Tier1: {4, 0, 4}, Tier2: {6, 2, 8},
		Tier3: {12, 16, 28}, Tier4: {48, 16, 64}, Tier5: {64, 32, 96},
	}
	for tier, w := range want {
		if got := [3]int{tier.HeaderSize(), tier.TrailerSize(), tier.Overhead()}; got != w {
			t.Errorf("%v: sizes %v, want %v", tier, got, w)
		}
		h := Header{Tier: tier}
		b, err := h.AppendTo(nil)
		if err != nil || len(b) != w[0] {
			t.Errorf("%v: encoded %d bytes (%v), want %d", tier, len(b), err, w[0])
		}
	}
	if Tier(6).HeaderSize() != 0 || Tier(6).Valid() {
		t.Error("tier 6 must not be valid")
	}
}

func fullHeader(tier Tier) Header {
	h := Header{Tier: tier, Compressed: true, Fragmented: true, Encrypted: tier >= Tier3,
		Op: OpGPIOLineSet, Sequence: 0xA5, SessionID: 0xBEEF, Timestamp: 0x6960_1234,
		Nonce: 0x0102, KeyID: 0xCAFEBABE}
	for i := range h.PublicKey {
		h.PublicKey[i] = byte(i)
	}
	for i := range h.Tag {
		h.Tag[i] = byte(0xF0 + i)
	}
	return h
}

// trimmed zeroes the fields tier t does not carry.
func trimmed(h Header) Header {
	if h.Tier < Tier2 {
		h.SessionID = 0
	}
	if h.Tier < Tier3 {
		h.Timestamp, h.Nonce = 0, 0
	}
	if h.Tier < Tier4 {
		h.KeyID, h.PublicKey = 0, [32]byte{}
	}
	if h.Tier < Tier5 {
		h.Tag = [16]byte{}
	}
	return h
}

func TestHeaderRoundTrip(t *testing.T) {
	for tier := Tier1; tier <= Tier5; tier++ {
		h := fullHeader(tier)
		b, err := h.AppendTo(nil)
		if err != nil {
			t.Fatalf("%v: %v", tier, err)
		}
		var got Header
		n, err := got.Decode(append(b, 0xEE)) // trailing bytes are the caller's
		if err != nil || n != tier.HeaderSize() {
			t.Fatalf("%v: decode n=%d err=%v", tier, n, err)
		}
		if got != trimmed(h) {
			t.Errorf("%v: round trip\n got %+v\nwant %+v", tier, got, trimmed(h))
		}
	}
}

func TestHeaderGolden(t *testing.T) {
	h := fullHeader(Tier3)
	b, _ := h.AppendTo(nil)
	if want := "1f0624a5beef696012340102"; hex.EncodeToString(b) != want {
		t.Errorf("tier 3 header %x, want %s", b, want)
	}
}

func TestHeaderRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrTruncated},
		{"version 1", "48000000", ErrVersion},
		{"version 3", "c8000000", ErrVersion},
		{"tier 6", "30000000", ErrTier},
		{"tier 7", "38000000", ErrTier},
		{"E at tier 1", "09000000", ErrEncryptedBelow3},
		{"E at tier 2", "110000000000", ErrEncryptedBelow3},
		{"tier 0 alone", "00", ErrTier0Outside},
		{"tier 0 with payload", "04deadbeef", ErrTier0Outside},
		{"tier 1 short", "080000", ErrTruncated},
		{"tier 2 short", "1000000000", ErrTruncated},
		{"tier 3 short", "1800000000000000000000", ErrTruncated},
		{"tier 4 short", "20" + string(bytes.Repeat([]byte("00"), 46)), ErrTruncated},
		{"tier 5 short", "28" + string(bytes.Repeat([]byte("00"), 62)), ErrTruncated},
	}
	for _, tt := range tests {
		b, err := hex.DecodeString(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		var h Header
		if _, err := h.Decode(b); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := (&Header{Tier: Tier2, Encrypted: true}).AppendTo(nil); !errors.Is(err, ErrEncryptedBelow3) {
		t.Errorf("encoding E at tier 2: %v", err)
	}
	if _, err := (&Header{Tier: 6}).AppendTo(nil); !errors.Is(err, ErrTier) {
		t.Errorf("encoding tier 6: %v", err)
	}
}

func TestCRC16(t *testing.T) {
	if got := CRC16([]byte("123456789")); got != 0x29B1 {
		t.Fatalf("CRC-16/CCITT-FALSE check value %#04x, want 0x29b1", got)
	}
	if got := CRC16(nil); got != 0xFFFF {
		t.Fatalf("CRC of nothing %#04x, want init 0xffff", got)
	}
}

func TestPlainFrames(t *testing.T) {
	h := Header{Tier: Tier2, Op: OpKeepalive, Sequence: 7, SessionID: 0x0102}
	b, err := AppendPlain(nil, &h, nil, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "10000107010268694926"; hex.EncodeToString(b) != want {
		// flags 0x10, op 0x0001, seq 7, sid 0x0102, "hi", CRC over all of it
		t.Errorf("tier 2 frame %x, want %s", b, want)
	}
	f, err := Parse(b)
	if err != nil || string(f.Body) != "hi" || f.Header.SessionID != 0x0102 {
		t.Fatalf("parse: %+v %v", f, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		if _, err := Parse(c); err == nil {
			t.Errorf("bit flip at byte %d not detected", i)
		}
	}
	if _, err := Parse(b[:len(b)-1]); err == nil {
		t.Error("truncated tier 2 frame accepted")
	}

	frag := FragmentHeader{MessageID: 9, Index: 1, Total: 3}
	h1 := Header{Tier: Tier1, Op: OpStreamData, Fragmented: true}
	b, err = AppendPlain(nil, &h1, &frag, []byte("xyz"))
	if err != nil {
		t.Fatal(err)
	}
	f, err = Parse(b)
	if err != nil || f.Fragment != frag || string(f.Body) != "xyz" {
		t.Fatalf("fragmented tier 1: %+v %v", f, err)
	}
	if _, err := AppendPlain(nil, &h1, nil, nil); !errors.Is(err, ErrFragment) {
		t.Errorf("F without sub-header: %v", err)
	}
	if _, err := AppendPlain(nil, &Header{Tier: Tier3}, nil, nil); !errors.Is(err, ErrWrongTier) {
		t.Errorf("plain tier 3: %v", err)
	}
	big := make([]byte, MaxFrameSize)
	if _, err := AppendPlain(nil, &Header{Tier: Tier1}, nil, big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized frame: %v", err)
	}
	if _, err := Parse(make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized parse: %v", err)
	}
	bad := []byte{0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1} // F set, index 1 of total 1
	if _, err := Parse(bad); !errors.Is(err, ErrFragment) {
		t.Errorf("bad sub-header: %v", err)
	}
}

func TestTier0(t *testing.T) {
	b := AppendTier0(nil, true, []byte("abc"))
	if !bytes.Equal(b, []byte{0x04, 'a', 'b', 'c'}) {
		t.Fatalf("tier 0 encoding %x", b)
	}
	c, p, err := ParseTier0(b)
	if err != nil || !c || string(p) != "abc" {
		t.Fatalf("parse tier 0: %v %q %v", c, p, err)
	}
	for _, tt := range []struct {
		in   []byte
		want error
	}{
		{nil, ErrTruncated},
		{[]byte{0x01}, ErrEncryptedBelow3},
		{[]byte{0x02}, ErrFragment},
		{[]byte{0x40}, ErrVersion},
		{[]byte{0x08}, ErrTier},
	} {
		if _, _, err := ParseTier0(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("ParseTier0(%x): %v, want %v", tt.in, err, tt.want)
		}
	}
}

func TestOps(t *testing.T) {
	ops := Ops()
	if len(ops) != 113 {
		// Tables 3-4: 14, profile: 8, Tables 5-8: 29, Tables 9-15: 62
		t.Errorf("%d ops defined, want 113", len(ops))
	}
	seen := map[string]bool{}
	for i, o := range ops {
		if i > 0 && ops[i-1].Op >= o.Op {
			t.Fatalf("op table not sorted at %v", o.Op)
		}
		if seen[o.Name] {
			t.Errorf("duplicate name %s", o.Name)
		}
		seen[o.Name] = true
		if got, ok := OpByName(o.Name); !ok || got != o.Op {
			t.Errorf("OpByName(%s) = %v", o.Name, got)
		}
		if o.Op.String() != o.Name {
			t.Errorf("%#04x String %s", uint16(o.Op), o.Op.String())
		}
	}
	if OpGPIOLineSet != 0x0624 || OpGPIOLineSet.String() != "GPIO_LINE_SET" {
		t.Error("GPIO_LINE_SET")
	}
	if Op(0x0300).String() != "OP_0x0300" || Op(0x0300).Known() {
		t.Error("undefined op")
	}
	ranges := map[Op]Range{0x0000: RangeCore, 0x00FF: RangeCore, 0x0100: RangeStandard,
		0x0224: RangeResourceSharing, 0x0301: RangeFederation, 0x0400: RangeBilling,
		0x05FF: RangeVFS, 0x0667: RangeHardware, 0x0700: RangeUnassigned, 0xEFFF: RangeUnassigned,
		0xF000: RangeVendor, 0xFFFE: RangeVendor, 0xFFFF: RangeReserved}
	for op, r := range ranges {
		if op.Range() != r {
			t.Errorf("%#04x range %v, want %v", uint16(op), op.Range(), r)
		}
	}
}

func TestErrorCodes(t *testing.T) {
	want := map[Code]string{0x00: "OK", 0x10: "BAD_REQUEST", 0x11: "UNAUTHORIZED", 0x12: "FORBIDDEN",
		0x13: "NOT_FOUND", 0x17: "INVALID_SESSION", 0x20: "INTERNAL_ERROR",
		0x21: "SERVICE_UNAVAILABLE", 0x22: "TIMEOUT", 0x18: "CLIENT_ERROR_0x18", 0xF1: "RESERVED_0xF1"}
	for c, n := range want {
		if c.String() != n {
			t.Errorf("%#02x: %s, want %s", uint8(c), c, n)
		}
	}
	if CodeOf(nil) != CodeOK || CodeOf(errors.New("x")) != CodeInternalError {
		t.Error("CodeOf basics")
	}
	wrapped := errors.Join(errors.New("context"), ErrAuth)
	if CodeOf(wrapped) != CodeUnauthorized || ReasonOf(wrapped) != ErrAuth.Reason {
		t.Error("CodeOf through wrapping")
	}
}

func TestLengthPrefix(t *testing.T) {
	b, err := AppendLengthPrefix(nil, 300)
	if err != nil || hex.EncodeToString(b) != "0000012c" {
		t.Fatalf("%x %v", b, err)
	}
	if n, err := ParseLengthPrefix(b); n != 300 || err != nil {
		t.Fatalf("%d %v", n, err)
	}
	for in, want := range map[string]error{"00000000": ErrTruncated, "00100001": ErrTooLarge, "ffffffff": ErrTooLarge, "0001": ErrTruncated} {
		b, _ := hex.DecodeString(in)
		if _, err := ParseLengthPrefix(b); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", in, err, want)
		}
	}
	if _, err := ParseLengthPrefix([]byte{0, 0x10, 0, 0}); err != nil {
		t.Errorf("MaxFrameSize refused: %v", err)
	}
	if _, err := AppendLengthPrefix(nil, MaxFrameSize+1); !errors.Is(err, ErrTooLarge) {
		t.Error("oversized prefix encoded")
	}
}
