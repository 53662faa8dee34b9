package wire

import (
	"fmt"
	"testing"
)

var benchSizes = []struct {
	name string
	n    int
}{{"64B", 64}, {"1KiB", 1 << 10}, {"16KiB", 16 << 10}}

func BenchmarkHeader(b *testing.B) {
	for tier := Tier1; tier <= Tier5; tier++ {
		b.Run(tier.String(), func(b *testing.B) {
			h := fullHeader(tier)
			buf := make([]byte, 0, 64)
			var out Header
			b.ReportAllocs()
			for b.Loop() {
				enc, _ := h.AppendTo(buf[:0])
				if _, err := out.Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSealOpen seals a frame and opens it again, as the two ends of a
// session do, under ChaCha20-Poly1305 ("tierN/size") and AES-256-GCM
// ("aes-256-gcm/tierN/size"). Compare with BenchmarkBaselineAEAD of the
// same run.
func BenchmarkSealOpen(b *testing.B) {
	for _, alg := range testAEADs {
		benchSealOpen(b, alg, benchPrefix(alg))
	}
}

// benchPrefix names the sub-benchmarks of alg: none for ChaCha20-Poly1305,
// whose names predate the choice of cipher.
func benchPrefix(alg AEAD) string {
	if alg == ChaCha20Poly1305 {
		return ""
	}
	return alg.String() + "/"
}

func benchSealOpen(b *testing.B, alg AEAD, prefix string) {
	for _, tier := range []Tier{Tier3, Tier4, Tier5} {
		for _, sz := range benchSizes {
			b.Run(fmt.Sprintf("%stier%d/%s", prefix, tier, sz.name), func(b *testing.B) {
				s, o := pairWith(alg, t0)
				payload := make([]byte, sz.n)
				frame := make([]byte, 0, FrameSize(tier, false, sz.n))
				plain := make([]byte, 0, cap(frame)) // Open's documented room: len(frame)
				h := Header{Tier: tier, Encrypted: true, Op: OpStreamData, SessionID: 1}
				b.SetBytes(int64(sz.n))
				b.ReportAllocs()
				for b.Loop() {
					f, err := s.Seal(frame[:0], &h, nil, payload, t0)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := o.Open(plain[:0], f, t0); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkBaselineAEAD is the raw chacha20poly1305 ("size") and AES-256-GCM
// ("aes-256-gcm/size") Seal+Open of the same sizes with a 12-byte
// associated data: the floor Tier 3 is measured against.
func BenchmarkBaselineAEAD(b *testing.B) {
	for _, alg := range testAEADs {
		benchBaselineAEAD(b, alg, benchPrefix(alg))
	}
}

func benchBaselineAEAD(b *testing.B, alg AEAD, prefix string) {
	for _, sz := range benchSizes {
		b.Run(prefix+sz.name, func(b *testing.B) {
			aead := alg.new(new([KeySize]byte))
			nonce := make([]byte, 12)
			ad := make([]byte, 12)
			payload := make([]byte, sz.n)
			ct := make([]byte, 0, sz.n+16)
			pt := make([]byte, 0, sz.n)
			b.SetBytes(int64(sz.n))
			b.ReportAllocs()
			for b.Loop() {
				c := aead.Seal(ct[:0], nonce, payload, ad)
				if _, err := aead.Open(pt[:0], nonce, c, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Zero allocations per frame is a requirement (PROFILE.md §P2), not only a
// benchmark figure.
func TestZeroAllocs(t *testing.T) {
	for tier := Tier1; tier <= Tier5; tier++ {
		h := fullHeader(tier)
		buf := make([]byte, 0, 64)
		var out Header
		if n := testing.AllocsPerRun(100, func() {
			enc, _ := h.AppendTo(buf[:0])
			out.Decode(enc)
		}); n != 0 {
			t.Errorf("%v header encode+decode: %v allocs", tier, n)
		}
	}
	for _, tc := range []struct {
		alg  AEAD
		tier Tier
	}{{ChaCha20Poly1305, Tier3}, {ChaCha20Poly1305, Tier4}, {ChaCha20Poly1305, Tier5}, {AES256GCM, Tier3}, {AES256GCM, Tier4}, {AES256GCM, Tier5}} {
		tier := tc.tier
		for _, enc := range []bool{true, false} {
			s, o := pairWith(tc.alg, t0)
			payload := make([]byte, 1024)
			frame := make([]byte, 0, FrameSize(tier, false, len(payload)))
			plain := make([]byte, 0, cap(frame))
			h := Header{Tier: tier, Encrypted: enc, Op: OpStreamData}
			seal := func() []byte {
				f, err := s.Seal(frame[:0], &h, nil, payload, t0)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			seal() // warm the Tier 5 scratch buffer
			if n := testing.AllocsPerRun(100, func() { seal() }); n != 0 {
				t.Errorf("%v %v E=%v seal: %v allocs", tc.alg, tier, enc, n)
			}
			s2, o2 := pairWith(tc.alg, t0)
			_ = o
			var frames [][]byte
			for i := 0; i < 102; i++ {
				f, _ := s2.Seal(nil, &h, nil, payload, t0)
				frames = append(frames, f)
			}
			i := 0
			o2.Open(plain[:0], frames[i], t0)
			i++
			if n := testing.AllocsPerRun(100, func() {
				if _, err := o2.Open(plain[:0], frames[i], t0); err != nil {
					t.Fatal(err)
				}
				i++
			}); n != 0 {
				t.Errorf("%v %v E=%v open: %v allocs", tc.alg, tier, enc, n)
			}
		}
	}
}
