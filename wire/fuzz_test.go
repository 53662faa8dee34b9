package wire

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds are valid and invalid frames of every tier; they seed every
// decoder's fuzz target and are written to testdata/fuzz by
// MYCLERK_WRITE_SEEDS=1 go test -run TestWriteFuzzSeeds ./wire/
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	for _, alg := range testAEADs {
		s, _ := pairWith(alg, t0)
		for tier := Tier3; tier <= Tier5; tier++ {
			for _, enc := range []bool{true, false} {
				h := Header{Tier: tier, Encrypted: enc, Op: OpDeviceInfo, SessionID: 3}
				b, _ := s.Seal(nil, &h, nil, []byte("device-7"), t0)
				seeds = append(seeds, b)
			}
			h := Header{Tier: tier, Encrypted: true, Fragmented: true, Op: OpStreamData}
			b, _ := s.Seal(nil, &h, &FragmentHeader{MessageID: 1, Index: 0, Total: 2}, []byte("part"), t0)
			seeds = append(seeds, b)
		}
	}
	p1, _ := AppendPlain(nil, &Header{Tier: Tier1, Op: OpKeepalive, Sequence: 1}, nil, nil)
	p2, _ := AppendPlain(nil, &Header{Tier: Tier2, Op: OpError, SessionID: 9}, nil, []byte{0x81, 0xa4, 'c', 'o', 'd', 'e', 0x10})
	seeds = append(seeds, p1, p2,
		[]byte{0x00}, []byte{0x04, 'x'}, []byte{0xff}, []byte{0x30, 0, 0, 0}, []byte{0x09, 0, 0, 0},
		[]byte{0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 3}, // fragment index past total
		[]byte{0x28}) // tier 5, truncated
	return seeds
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MYCLERK_WRITE_SEEDS") == "" {
		t.Skip("set MYCLERK_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	for _, target := range []string{"FuzzHeader", "FuzzParse", "FuzzOpen", "FuzzTier0", "FuzzContainer"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range fuzzSeeds() {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
}

func FuzzHeader(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		n, err := h.Decode(b)
		if err != nil {
			return
		}
		enc, err := h.AppendTo(nil)
		if err != nil {
			t.Fatalf("decoded header does not encode: %v", err)
		}
		if !bytes.Equal(enc, b[:n]) {
			t.Fatalf("round trip %x != %x", enc, b[:n])
		}
	})
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Parse(b)
		if err != nil {
			return
		}
		if len(fr.Prefix)+len(fr.Body)+len(fr.Trailer) != len(b) {
			t.Fatal("parts do not cover the frame")
		}
		if fr.Header.Tier < Tier1 || fr.Header.Encrypted && !fr.Header.Tier.Sealed() {
			t.Fatalf("parse accepted %+v", fr.Header)
		}
		if fr.Header.Tier <= Tier2 {
			var frag *FragmentHeader
			if fr.Header.Fragmented {
				frag = &fr.Fragment
			}
			re, err := AppendPlain(nil, &fr.Header, frag, fr.Body)
			if err != nil || !bytes.Equal(re, b) {
				t.Fatalf("plain frame does not re-encode: %v", err)
			}
		}
	})
}

// FuzzOpen feeds arbitrary bytes, and mutations of genuine frames, to
// openers of both AEADs: nothing but the genuine frames may authenticate,
// Open and OpenInPlace agree, and nothing may panic.
func FuzzOpen(f *testing.F) {
	addSeeds(f)
	seeds := fuzzSeeds()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, alg := range testAEADs {
			_, o := pairWith(alg, t0)
			_, o2 := pairWith(alg, t0)
			got, err := o.Open(nil, b, t0)
			got2, err2 := o2.OpenInPlace(bytes.Clone(b), t0)
			if (err == nil) != (err2 == nil) {
				t.Fatalf("%v: Open and OpenInPlace disagree: %v / %v", alg, err, err2)
			}
			if err != nil {
				continue
			}
			if !bytes.Equal(got.Payload, got2.Payload) {
				t.Fatalf("%v: Open and OpenInPlace payloads differ: %x / %x", alg, got.Payload, got2.Payload)
			}
			genuine := false
			for _, s := range seeds {
				genuine = genuine || bytes.Equal(s, b)
			}
			if !genuine {
				t.Fatalf("%v: forged frame authenticated: %+v", alg, got.Header)
			}
		}
	})
}

func FuzzTier0(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, p, err := ParseTier0(b)
		if err != nil {
			return
		}
		if re := AppendTier0(nil, c, p); !bytes.Equal(re, b) {
			t.Fatalf("tier 0 round trip %x != %x", re, b)
		}
	})
}

// FuzzContainer: whatever CheckContainer accepts splits into exactly the
// frames it counted, each bounded in capacity, and encodes back to the
// same bytes.
func FuzzContainer(f *testing.F) {
	addSeeds(f)
	var c []byte
	for _, s := range fuzzSeeds() {
		if len(s) > 0 {
			c, _ = AppendContainerFrame(c, s)
			f.Add(append([]byte(nil), c...))
		}
	}
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := CheckContainer(b)
		if err != nil {
			return
		}
		var re []byte
		rest := b[1:]
		for i := range n {
			var fr []byte
			if fr, rest, err = NextContainerFrame(rest); err != nil {
				t.Fatalf("frame %d of %d: %v", i, n, err)
			}
			if cap(fr) != len(fr) {
				t.Fatalf("frame %d: capacity %d past its %d bytes", i, cap(fr), len(fr))
			}
			if re, err = AppendContainerFrame(re, fr); err != nil {
				t.Fatal(err)
			}
		}
		if len(rest) != 0 || !bytes.Equal(re, b) {
			t.Fatalf("container round trip: %d bytes left, %x != %x", len(rest), re, b)
		}
	})
}
