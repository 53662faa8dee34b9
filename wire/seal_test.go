package wire

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

var t0 = time.Unix(1_767_225_600, 0) // 2026-01-01T00:00:00Z

func testSecrets(seed byte) *SessionSecrets {
	s := &SessionSecrets{}
	for i := range s.SessionKey {
		s.SessionKey[i] = seed + byte(i)
		s.TranscriptHash[i] = seed ^ byte(3*i)
		s.InitiatorKey[i] = 0x11 + byte(i)
		s.ResponderKey[i] = 0x77 + byte(i)
	}
	return s
}

// testAEADs are the profile's ciphers: the tests that exercise sealing run
// under each.
var testAEADs = []AEAD{ChaCha20Poly1305, AES256GCM}

// pair returns a ChaCha20-Poly1305 sealer and the matching opener for
// direction i2r.
func pair(t0 time.Time) (*Sealer, *Opener) { return pairWith(ChaCha20Poly1305, t0) }

// pairWith is pair under alg.
func pairWith(alg AEAD, t0 time.Time) (*Sealer, *Opener) {
	s := testSecrets(1)
	s.AEAD = alg
	return NewSealer(s, InitiatorToResponder, t0), NewOpener(s, InitiatorToResponder, t0)
}

func seal(t *testing.T, s *Sealer, tier Tier, enc bool, payload []byte, now time.Time) []byte {
	t.Helper()
	h := Header{Tier: tier, Encrypted: enc, Op: OpGPIOLineSet, SessionID: 42}
	b, err := s.Seal(nil, &h, nil, payload, now)
	if err != nil {
		t.Fatalf("seal %v: %v", tier, err)
	}
	return b
}

func TestSealOpenRoundTrip(t *testing.T) {
	for _, alg := range testAEADs {
		t.Run(alg.String(), func(t *testing.T) { testSealOpenRoundTrip(t, alg) })
	}
}

func testSealOpenRoundTrip(t *testing.T, alg AEAD) {
	payloads := [][]byte{nil, []byte("x"), bytes.Repeat([]byte("myclerk "), 300)}
	for tier := Tier3; tier <= Tier5; tier++ {
		for _, enc := range []bool{true, false} {
			for _, fragmented := range []bool{false, true} {
				for _, p := range payloads {
					name := fmt.Sprintf("%v/E=%v/F=%v/%dB", tier, enc, fragmented, len(p))
					s, o := pairWith(alg, t0)
					h := Header{Tier: tier, Encrypted: enc, Fragmented: fragmented, Op: OpStreamData, SessionID: 7}
					var frag *FragmentHeader
					if fragmented {
						frag = &FragmentHeader{MessageID: 5, Index: 2, Total: 4}
					}
					b, err := s.Seal([]byte("prefix"), &h, frag, p, t0)
					if err != nil {
						t.Fatalf("%s: seal: %v", name, err)
					}
					b = b[len("prefix"):]
					if len(b) != FrameSize(tier, fragmented, len(p)) {
						t.Errorf("%s: frame %d bytes, want %d", name, len(b), FrameSize(tier, fragmented, len(p)))
					}
					if enc && len(p) > 16 && bytes.Contains(b, p[:16]) {
						t.Errorf("%s: plaintext visible in frame", name)
					}
					got, err := o.Open([]byte("keep"), b, t0.Add(time.Second))
					if err != nil {
						t.Fatalf("%s: open: %v", name, err)
					}
					if string(got.Payload) != "keep"+string(p) {
						t.Errorf("%s: payload %q", name, got.Payload)
					}
					if got.Header.Op != OpStreamData || got.Header.SessionID != 7 || got.Counter != 0 {
						t.Errorf("%s: header %+v counter %d", name, got.Header, got.Counter)
					}
					if fragmented && got.Fragment != *frag {
						t.Errorf("%s: fragment %+v", name, got.Fragment)
					}
					// Every bit of the frame is protected.
					for i := range b {
						c := bytes.Clone(b)
						c[i] ^= 0x80
						if _, err := o.Open(nil, c, t0); err == nil {
							t.Fatalf("%s: flipped byte %d accepted", name, i)
						}
					}
					// And the frame does not open twice.
					if _, err := o.Open(nil, b, t0); !errors.Is(err, ErrReplay) {
						t.Errorf("%s: replay: %v", name, err)
					}
				}
			}
		}
	}
}

func TestOpenRejects(t *testing.T) {
	for _, alg := range testAEADs {
		for tier := Tier3; tier <= Tier5; tier++ {
			t.Run(alg.String()+"/"+tier.String(), func(t *testing.T) { testOpenRejects(t, alg, tier) })
		}
	}
}

func testOpenRejects(t *testing.T, alg AEAD, tier Tier) {
	{
		{
			s, o := pairWith(alg, t0)
			good := seal(t, s, tier, true, []byte("secret"), t0)

			// Wrong key: another session's opener.
			sec2 := testSecrets(2)
			sec2.AEAD = alg
			other := NewOpener(sec2, InitiatorToResponder, t0)
			other.peerPub = o.peerPub
			if _, err := other.Open(nil, good, t0); !errors.Is(err, ErrAuth) {
				t.Errorf("wrong key: %v", err)
			}
			// Wrong direction: the sender's own opener for r2i.
			sec1 := testSecrets(1)
			sec1.AEAD = alg
			rev := NewOpener(sec1, ResponderToInitiator, t0)
			if _, err := rev.Open(nil, good, t0); !errors.Is(err, ErrAuth) {
				t.Errorf("wrong direction: %v", err)
			}
			// Bad tag.
			bad := bytes.Clone(good)
			bad[len(bad)-1] ^= 1
			if _, err := o.Open(nil, bad, t0); !errors.Is(err, ErrAuth) {
				t.Errorf("bad tag: %v", err)
			}
			// Truncated.
			if _, err := o.Open(nil, good[:tier.HeaderSize()+3], t0); !errors.Is(err, ErrTruncated) {
				t.Errorf("truncated: %v", err)
			}
			// Stale and future timestamps, then the same frame in time.
			if _, err := o.Open(nil, good, t0.Add(TimestampSkew+time.Second)); !errors.Is(err, ErrStale) {
				t.Errorf("stale: %v", err)
			}
			if _, err := o.Open(nil, good, t0.Add(-TimestampSkew-time.Second)); !errors.Is(err, ErrStale) {
				t.Errorf("future: %v", err)
			}
			o.Skew = time.Hour // the peer's clock runs an hour ahead
			if _, err := o.Open(nil, good, t0); !errors.Is(err, ErrStale) {
				t.Errorf("skewed: %v", err)
			}
			if _, err := o.Open(nil, good, t0.Add(-time.Hour)); err != nil {
				t.Errorf("in time with skew: %v", err)
			}
			if _, err := o.Open(nil, good, t0.Add(-time.Hour)); !errors.Is(err, ErrReplay) {
				t.Errorf("replay: %v", err)
			}
			// Plain tiers do not go through an opener.
			plain, _ := AppendPlain(nil, &Header{Tier: Tier2}, nil, nil)
			if _, err := o.Open(nil, plain, t0); !errors.Is(err, ErrWrongTier) {
				t.Errorf("tier 2 at opener: %v", err)
			}
		}
	}
}

// The cipher is part of the keys' meaning: a frame sealed under one AEAD
// does not open under the other with the same secrets (a peer that
// disagreed about the negotiation sees only ErrAuth).
func TestAEADIsBound(t *testing.T) {
	for _, alg := range testAEADs {
		for tier := Tier3; tier <= Tier5; tier++ {
			s, _ := pairWith(alg, t0)
			_, o := pairWith(1-alg, t0)
			if _, err := o.Open(nil, seal(t, s, tier, true, []byte("cross"), t0), t0); !errors.Is(err, ErrAuth) {
				t.Errorf("%v %v frame under %v: %v", alg, tier, 1-alg, err)
			}
			if s.AEAD() != alg {
				t.Errorf("sealer reports %v, want %v", s.AEAD(), alg)
			}
		}
	}
	if AEAD(2).Valid() || !AES256GCM.Valid() || AEAD(9).String() != "aead(9)" {
		t.Error("AEAD validity or names")
	}
}

// AES-256-GCM epochs are also bounded by bytes (PROFILE.md §P23):
// rotation is due at RekeyAfterBytesAESGCM, sealing stops at
// RejectAfterBytesAESGCM; ChaCha20-Poly1305 has no byte bound.
func TestAESGCMByteLimits(t *testing.T) {
	s, _ := pairWith(AES256GCM, t0)
	p := make([]byte, 100)
	s.sealed = RekeyAfterBytesAESGCM - 1
	if s.NeedsRotation(t0) {
		t.Error("rotation due below the byte bound")
	}
	seal(t, s, Tier3, true, p, t0)
	if !s.NeedsRotation(t0) {
		t.Error("rotation not due past the byte bound")
	}
	s.sealed = RejectAfterBytesAESGCM - 100
	seal(t, s, Tier3, true, p, t0) // exactly at the bound
	if _, err := s.Seal(nil, &Header{Tier: Tier3}, nil, []byte{1}, t0); !errors.Is(err, ErrKeyExhausted) {
		t.Errorf("one byte past the bound: %v", err)
	}
	s.Rotate(t0)
	if s.sealed != 0 || s.NeedsRotation(t0) {
		t.Errorf("after rotation: %d bytes counted", s.sealed)
	}
	seal(t, s, Tier3, true, p, t0)

	c, _ := pairWith(ChaCha20Poly1305, t0)
	c.sealed = RejectAfterBytesAESGCM * 4
	if c.NeedsRotation(t0) {
		t.Error("ChaCha20-Poly1305 rotates on bytes")
	}
	seal(t, c, Tier3, true, p, t0)
}

func TestTier4WrongPublicKey(t *testing.T) {
	s, o := pair(t0)
	b := seal(t, s, Tier4, true, []byte("k"), t0)
	b[20] ^= 1 // inside the public key field
	if _, err := o.Open(nil, b, t0); !errors.Is(err, ErrAuth) {
		t.Errorf("foreign public key: %v", err)
	}
}

func TestReorderAndCounterRecovery(t *testing.T) {
	s, o := pair(t0)
	var frames [][]byte
	for i := 0; i < 600; i++ {
		frames = append(frames, seal(t, s, Tier3, true, []byte{byte(i)}, t0))
	}
	// Deliver out of order within the window: odd ones first, then even.
	for pass := 1; pass >= 0; pass-- {
		for i := pass; i < len(frames); i += 2 {
			got, err := o.Open(nil, frames[i], t0)
			if err != nil || got.Counter != uint32(i) || got.Payload[0] != byte(i) {
				t.Fatalf("frame %d: counter %d err %v", i, got.Counter, err)
			}
		}
	}
}

func TestCounterAcross24Bits(t *testing.T) {
	s, o := pair(t0)
	const start = 1<<24 - 3
	s.counter = start
	o.cur.filter.Accept(start - 1) // as if the frames before had arrived
	for i := uint32(0); i < 6; i++ {
		b := seal(t, s, Tier3, true, nil, t0)
		got, err := o.Open(nil, b, t0)
		if err != nil || got.Counter != start+i {
			t.Fatalf("counter %d: got %d, %v", start+i, got.Counter, err)
		}
	}
}

func TestReplayWindowEdge(t *testing.T) {
	s, o := pair(t0)
	old := seal(t, s, Tier3, true, nil, t0) // counter 0, never delivered
	s.counter = ReplayWindow + 1
	if _, err := o.Open(nil, seal(t, s, Tier3, true, nil, t0), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Open(nil, old, t0); !errors.Is(err, ErrReplay) {
		t.Errorf("counter older than the window: %v", err)
	}
}

func TestKeyLimits(t *testing.T) {
	s, _ := pair(t0)
	s.counter = RejectAfterMessages - 1
	if _, err := s.Seal(nil, &Header{Tier: Tier3}, nil, nil, t0); err != nil {
		t.Fatalf("last counter: %v", err)
	}
	if _, err := s.Seal(nil, &Header{Tier: Tier3}, nil, nil, t0); !errors.Is(err, ErrKeyExhausted) {
		t.Errorf("after the last counter: %v", err)
	}
	if !s.NeedsRotation(t0) {
		t.Error("exhausted epoch does not ask for rotation")
	}
	s.Rotate(t0)
	if s.Counter() != 0 || s.Epoch() != 1 || s.NeedsRotation(t0) {
		t.Errorf("after rotation: counter %d epoch %d", s.Counter(), s.Epoch())
	}
	if !s.NeedsRotation(t0.Add(RekeyAfterTime)) {
		t.Error("24 h old epoch does not ask for rotation")
	}
	if _, err := s.Seal(nil, &Header{Tier: Tier3}, nil, nil, t0.Add(RejectAfterTime)); !errors.Is(err, ErrKeyExpired) {
		t.Errorf("expired epoch: %v", err)
	}
	if _, err := s.Seal(nil, &Header{Tier: Tier2}, nil, nil, t0); !errors.Is(err, ErrWrongTier) {
		t.Errorf("sealing tier 2: %v", err)
	}
	if _, err := s.Seal(nil, &Header{Tier: Tier3, Fragmented: true}, nil, nil, t0); !errors.Is(err, ErrFragment) {
		t.Errorf("F without sub-header: %v", err)
	}
	if _, err := s.Seal(nil, &Header{Tier: Tier3}, nil, make([]byte, MaxPayload(Tier3, false)+1), t0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized: %v", err)
	}
}

func TestRotation(t *testing.T) {
	for _, tc := range []struct {
		alg  AEAD
		tier Tier
	}{{ChaCha20Poly1305, Tier3}, {ChaCha20Poly1305, Tier4}, {ChaCha20Poly1305, Tier5}, {AES256GCM, Tier3}, {AES256GCM, Tier5}} {
		tier := tc.tier
		t.Run(tc.alg.String()+"/"+tier.String(), func(t *testing.T) {
			s, o := pairWith(tc.alg, t0)
			before := seal(t, s, tier, true, []byte("e0"), t0) // held back: reordered across the rotation
			if _, err := o.Open(nil, seal(t, s, tier, true, []byte("e0"), t0), t0); err != nil {
				t.Fatal(err)
			}
			s.Rotate(t0)
			got, err := o.Open(nil, seal(t, s, tier, true, []byte("e1"), t0), t0)
			if err != nil || got.Epoch != 1 || o.Epoch() != 1 || got.Counter != 0 {
				t.Fatalf("first frame of epoch 1: %+v %v", got, err)
			}
			// The previous epoch still opens during its grace period.
			if got, err := o.Open(nil, before, t0.Add(time.Minute)); err != nil || got.Epoch != 0 {
				t.Errorf("reordered epoch-0 frame: %v", err)
			}
			late := seal(t, s, tier, true, nil, t0)
			s.Rotate(t0)
			s.Rotate(t0) // skipping an epoch is not followed
			if _, err := o.Open(nil, seal(t, s, tier, true, nil, t0), t0); err == nil {
				t.Error("epoch +2 accepted")
			}
			if _, err := o.Open(nil, late, t0); err != nil {
				t.Errorf("epoch 1 frame: %v", err)
			}
		})
	}
}

func TestPreviousEpochGraceEnds(t *testing.T) {
	s, o := pair(t0)
	held := seal(t, s, Tier4, true, nil, t0)
	s.Rotate(t0)
	if _, err := o.Open(nil, seal(t, s, Tier4, true, nil, t0), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Open(nil, held, t0.Add(PreviousEpochGrace)); !errors.Is(err, ErrUnknownEpoch) {
		t.Errorf("epoch 0 after grace: %v", err)
	}
}

func TestNoStateChangeOnReject(t *testing.T) {
	s, o := pair(t0)
	good := seal(t, s, Tier3, true, []byte("a"), t0)
	forged := bytes.Clone(good)
	forged[len(forged)-3] ^= 0xFF
	for i := 0; i < 10; i++ {
		if _, err := o.Open(nil, forged, t0); err == nil {
			t.Fatal("forgery accepted")
		}
	}
	if _, ok := o.Largest(); ok {
		t.Error("a forged frame moved the replay window")
	}
	if o.Epoch() != 0 {
		t.Error("a forged frame changed the epoch")
	}
	if _, err := o.Open(nil, good, t0); err != nil {
		t.Errorf("genuine frame after forgeries: %v", err)
	}
}

func TestHandshakeFrames(t *testing.T) {
	h := Header{Tier: Tier4, Op: OpSessionInit, Timestamp: 1234}
	h.PublicKey[0] = 9
	b, err := AppendHandshake(nil, &h, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseHandshake(b)
	if err != nil || string(f.Body) != "payload" || f.Header.PublicKey[0] != 9 {
		t.Fatalf("parse: %+v %v", f, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 4
		if _, err := ParseHandshake(c); err == nil {
			t.Fatalf("corruption at byte %d not detected", i)
		}
	}
	for _, bad := range []Header{
		{Tier: Tier3, Op: OpSessionInit},
		{Tier: Tier4, Op: OpDeviceList},
		{Tier: Tier4, Op: OpSessionAck, Encrypted: true},
		{Tier: Tier4, Op: OpSessionAck, KeyID: 1},
	} {
		if _, err := AppendHandshake(nil, &bad, nil); err == nil {
			t.Errorf("handshake frame %+v accepted", bad)
		}
	}
}

func TestSealerOpenerAt(t *testing.T) {
	sec := testSecrets(4)
	s, err := NewSealerAt(sec, ResponderToInitiator, 3, 70_000, t0)
	if err != nil {
		t.Fatal(err)
	}
	b := seal(t, s, Tier3, true, []byte("at"), t0)
	o, _ := NewOpenerAt(sec, ResponderToInitiator, 3, 69_990, true, t0)
	got, err := o.Open(nil, b, t0)
	if err != nil || got.Counter != 70_000 || got.Epoch != 3 {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := NewSealerAt(sec, ResponderToInitiator, MaxStartEpoch+1, 0, t0); err == nil {
		t.Error("huge start epoch accepted")
	}
}

func TestOpenInPlace(t *testing.T) {
	for _, alg := range testAEADs {
		t.Run(alg.String(), func(t *testing.T) { testOpenInPlace(t, alg) })
	}
}

func testOpenInPlace(t *testing.T, alg AEAD) {
	for tier := Tier3; tier <= Tier5; tier++ {
		for _, enc := range []bool{true, false} {
			s, o := pairWith(alg, t0)
			payload := bytes.Repeat([]byte("in place "), 50)
			b := seal(t, s, tier, enc, payload, t0)
			got, err := o.OpenInPlace(b, t0)
			if err != nil || !bytes.Equal(got.Payload, payload) {
				t.Fatalf("%v E=%v: %v", tier, enc, err)
			}
			// Tier 3 after a rotation: the first epoch tried fails, the
			// next one must still see the ciphertext.
			s.Rotate(t0)
			b = seal(t, s, tier, enc, payload, t0)
			if got, err := o.OpenInPlace(b, t0); err != nil || !bytes.Equal(got.Payload, payload) || got.Epoch != 1 {
				t.Fatalf("%v E=%v after rotation: %v", tier, enc, err)
			}
			f := seal(t, s, tier, enc, payload, t0)
			f[len(f)-1] ^= 1
			if _, err := o.OpenInPlace(f, t0); err == nil {
				t.Fatalf("%v E=%v: forged frame opened in place", tier, enc)
			}
			sealOnly := testing.AllocsPerRun(20, func() { seal(t, s, tier, enc, payload, t0) })
			both := testing.AllocsPerRun(20, func() {
				b := seal(t, s, tier, enc, payload, t0)
				if _, err := o.OpenInPlace(b, t0); err != nil {
					t.Fatal(err)
				}
			})
			if both > sealOnly {
				t.Errorf("%v E=%v: OpenInPlace allocates (%v with it, %v without)", tier, enc, both, sealOnly)
			}
			// Each payload stays the caller's: later frames opened in
			// place do not write over it.
			var kept [][]byte
			for i := range 4 {
				p := bytes.Repeat([]byte{byte('a' + i)}, 100+i)
				got, err := o.OpenInPlace(seal(t, s, tier, enc, p, t0), t0)
				if err != nil {
					t.Fatal(err)
				}
				kept = append(kept, got.Payload)
			}
			for i, p := range kept {
				if want := bytes.Repeat([]byte{byte('a' + i)}, 100+i); !bytes.Equal(p, want) {
					t.Fatalf("%v E=%v: payload %d changed to %q", tier, enc, i, p)
				}
			}
		}
	}
}
