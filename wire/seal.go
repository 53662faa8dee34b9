package wire

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"slices"
	"time"

	"github.com/myclerk/myclerk-bridge/wire/replay"
)

// counterBits is how many low bits of the frame counter a sealed header
// carries: Sequence holds bits 0-7, Nonce bits 8-23 (PROFILE.md §P4).
const counterBits = 24

// tier5ADSize is the part of a Tier 5 header that is associated data: the
// Tier 4 fields, without the tag they are authenticated by (§P9).
const tier5ADSize = 48

// SessionSecrets is what a completed handshake gives both sides: the §5.1
// session key, the transcript hash, and both ephemeral public keys (which
// Tier 4 and 5 headers carry).
type SessionSecrets struct {
	SessionKey     [KeySize]byte
	TranscriptHash [32]byte
	InitiatorKey   [PublicKeySize]byte
	ResponderKey   [PublicKeySize]byte
	// AEAD is the cipher the handshake selected (§P23); the zero value
	// is ChaCha20-Poly1305.
	AEAD AEAD
}

func (s *SessionSecrets) senderKey(dir Direction) [PublicKeySize]byte {
	if dir == InitiatorToResponder {
		return s.InitiatorKey
	}
	return s.ResponderKey
}

// epoch is one key epoch of one direction.
type epoch struct {
	n      uint32
	chain  [KeySize]byte // the §5.2 current_key of this epoch
	alg    AEAD
	aead   cipher.AEAD
	random [4]byte
	macKey [KeySize]byte
	mac    hash.Hash // made on the first Tier 5 frame: most sessions never need it
	start  time.Time
}

// recvEpoch is an epoch of the receive side, with its replay window.
type recvEpoch struct {
	epoch
	filter replay.Filter
}

func newEpoch(alg AEAD, chain [KeySize]byte, n uint32, th [32]byte, dir Direction, start time.Time) epoch {
	return epochFromKeys(alg, DeriveDirectional(chain, th, dir), chain, n, start)
}

func epochFromKeys(alg AEAD, k DirectionalKeys, chain [KeySize]byte, n uint32, start time.Time) epoch {
	return epoch{n: n, chain: chain, alg: alg, aead: alg.new(&k.Key), random: k.Random, macKey: k.MACKey, start: start}
}

// hmac returns the epoch's HMAC-SHA256 state, reset.
func (e *epoch) hmac() hash.Hash {
	if e.mac == nil {
		e.mac = hmac.New(sha256.New, e.macKey[:])
	}
	e.mac.Reset()
	return e.mac
}

func (e *epoch) next(th [32]byte, dir Direction, start time.Time) epoch {
	return newEpoch(e.alg, RotateKey(e.chain, e.n+1), e.n+1, th, dir, start)
}

// nonce writes the §4 nonce Timestamp ‖ Random ‖ Counter into n and returns
// it. n lives in the Sealer or Opener: passed to the AEAD interface, a
// stack array would escape and cost an allocation per frame.
func (e *epoch) nonce(n *[NonceSize]byte, ts uint32, ctr uint32) []byte {
	binary.BigEndian.PutUint32(n[0:], ts)
	copy(n[4:8], e.random[:])
	binary.BigEndian.PutUint32(n[8:], ctr)
	return n[:]
}

// Sealer protects the frames of one direction of a session (Tiers 3-5).
// It owns the direction's key epoch and frame counter. It is not safe for
// concurrent use: one goroutine seals, or calls are serialized.
type Sealer struct {
	dir     Direction
	th      [32]byte
	pub     [PublicKeySize]byte
	cur     epoch
	counter uint64 // next counter to use in cur
	sealed  uint64 // plaintext bytes sealed in cur
	scratch []byte // Tier 5 associated data
	sum     [HMACSize]byte
	nonce   [NonceSize]byte
}

// NewSealer returns the sealer for direction dir, at epoch 0, started now.
func NewSealer(s *SessionSecrets, dir Direction, now time.Time) *Sealer {
	return &Sealer{
		dir: dir,
		th:  s.TranscriptHash,
		pub: s.senderKey(dir),
		cur: newEpoch(s.AEAD, s.SessionKey, 0, s.TranscriptHash, dir, now),
	}
}

// MaxStartEpoch bounds the epoch NewSealerAt and NewOpenerAt start at: each
// epoch is one HKDF step from the session key. At one rotation a day it is
// 179 years.
const MaxStartEpoch = 1 << 16

// NewSealerAt returns a sealer at key epoch ep whose next frame uses
// counter: for tools, test vectors and state restored after a restart.
func NewSealerAt(s *SessionSecrets, dir Direction, ep uint32, counter uint64, now time.Time) (*Sealer, error) {
	if ep > MaxStartEpoch {
		return nil, ErrUnknownEpoch
	}
	sl := NewSealer(s, dir, now)
	sl.cur = newEpoch(s.AEAD, EpochKey(s.SessionKey, ep), ep, s.TranscriptHash, dir, now)
	sl.counter = counter
	return sl, nil
}

// Epoch returns the current key epoch.
func (s *Sealer) Epoch() uint32 { return s.cur.n }

// Counter returns the counter the next frame will use.
func (s *Sealer) Counter() uint64 { return s.counter }

// AEAD returns the session's cipher.
func (s *Sealer) AEAD() AEAD { return s.cur.alg }

// NeedsRotation reports whether the epoch reached RekeyAfterMessages frames
// (or, under AES-256-GCM, RekeyAfterBytesAESGCM bytes) or RekeyAfterTime of
// age; the session layer then rotates (§P16, §P23).
func (s *Sealer) NeedsRotation(now time.Time) bool {
	frames, bytes := s.cur.alg.rekeyAfter()
	return s.counter >= frames || s.sealed >= bytes || now.Sub(s.cur.start) >= RekeyAfterTime
}

// Rotate enters the next key epoch (draft §5.2); the counter restarts at 0.
func (s *Sealer) Rotate(now time.Time) {
	s.cur = s.cur.next(s.th, s.dir, now)
	s.counter, s.sealed = 0, 0
}

// Seal appends a sealed frame to dst and returns the extended slice. The
// caller sets h.Tier (3-5), h.Op, h.SessionID and the C, F and E flags; Seal
// fills in Sequence, Nonce and Timestamp (and KeyID, PublicKey and Tag at
// Tiers 4-5). frag must be non-nil exactly when h.Fragmented is set. With E
// set the payload is encrypted, otherwise it travels in clear and is
// authenticated. payload must not overlap dst's spare capacity. When dst
// has room for the frame, Seal does not allocate.
func (s *Sealer) Seal(dst []byte, h *Header, frag *FragmentHeader, payload []byte, now time.Time) ([]byte, error) {
	if !h.Tier.Sealed() {
		return dst, ErrWrongTier
	}
	if err := checkFrag(h, frag); err != nil {
		return dst, err
	}
	if frames, bytes := s.cur.alg.rejectAfter(); s.counter >= frames || s.sealed+uint64(len(payload)) > bytes {
		return dst, ErrKeyExhausted
	}
	if now.Sub(s.cur.start) >= RejectAfterTime {
		return dst, ErrKeyExpired
	}
	size := FrameSize(h.Tier, h.Fragmented, len(payload))
	if size > MaxFrameSize {
		return dst, ErrTooLarge
	}
	ctr := uint32(s.counter)
	h.Sequence = uint8(ctr)
	h.Nonce = uint16(ctr >> 8)
	h.Timestamp = uint32(now.Unix())
	if h.Tier >= Tier4 {
		h.KeyID = s.cur.n
		h.PublicKey = s.pub
		h.Tag = [TagSize]byte{}
	}
	nonce := s.cur.nonce(&s.nonce, h.Timestamp, ctr)

	start := len(dst)
	dst = slices.Grow(dst, size)
	dst, _ = h.AppendTo(dst) // h was checked by h.Tier.Sealed and checkFrag
	if frag != nil {
		dst = frag.AppendTo(dst)
	}
	prefixEnd := len(dst)

	if h.Tier < Tier5 {
		if h.Encrypted {
			dst = s.cur.aead.Seal(dst, nonce, payload, dst[start:prefixEnd])
		} else {
			dst = append(dst, payload...)
			dst = s.cur.aead.Seal(dst, nonce, nil, dst[start:])
		}
		s.counter++
		s.sealed += uint64(len(payload))
		return dst, nil
	}

	// Tier 5: the tag sits in the header, so the associated data (header
	// without its tag, sub-header, clear payload) is gathered in scratch.
	ad := append(s.scratch[:0], dst[start:start+tier5ADSize]...)
	ad = append(ad, dst[start+tier5ADSize+TagSize:prefixEnd]...)
	tagAt := start + tier5ADSize
	if h.Encrypted {
		dst = s.cur.aead.Seal(dst, nonce, payload, ad)
		copy(dst[tagAt:tagAt+TagSize], dst[len(dst)-TagSize:])
		dst = dst[:len(dst)-TagSize]
	} else {
		dst = append(dst, payload...)
		ad = append(ad, payload...)
		tag := s.cur.aead.Seal(s.sum[:0], nonce, nil, ad)
		copy(dst[tagAt:tagAt+TagSize], tag)
	}
	s.scratch = ad[:0]
	copy(h.Tag[:], dst[tagAt:tagAt+TagSize])
	mac := s.cur.hmac()
	mac.Write(dst[start:])
	dst = mac.Sum(dst)
	s.counter++
	s.sealed += uint64(len(payload))
	return dst, nil
}

// Opened is an authenticated frame.
type Opened struct {
	Header   Header
	Fragment FragmentHeader // valid when Header.Fragmented
	Counter  uint32         // the recovered frame counter
	Epoch    uint32         // the key epoch that authenticated it
	Payload  []byte         // the plaintext, appended to Open's dst
}

// Opener authenticates and decrypts the frames of one direction of a
// session (Tiers 3-5): it recovers the frame counter, checks the replay
// window, tries the right key epochs, checks the timestamp, and only then
// marks the counter as seen. It is not safe for concurrent use.
type Opener struct {
	dir     Direction
	th      [32]byte
	peerPub [PublicKeySize]byte

	cur       *recvEpoch
	prev      *recvEpoch // nil, or the previous epoch until prevUntil
	prevUntil time.Time
	nxt       *recvEpoch // nil until a frame needs the next epoch

	// Skew is the peer's clock minus ours, as measured at the handshake;
	// timestamps are checked against now+Skew (PROFILE.md §P17).
	Skew time.Duration

	scratch []byte
	ct      []byte // OpenInPlace's scratch: the next payload goes here
	sum     [HMACSize]byte
	nonce   [NonceSize]byte
}

// NewOpener returns the opener for frames travelling in direction dir, at
// epoch 0, started now.
func NewOpener(s *SessionSecrets, dir Direction, now time.Time) *Opener {
	return &Opener{
		dir:     dir,
		th:      s.TranscriptHash,
		peerPub: s.senderKey(dir),
		cur:     &recvEpoch{epoch: newEpoch(s.AEAD, s.SessionKey, 0, s.TranscriptHash, dir, now)},
	}
}

// NewOpenerAt returns an opener at key epoch ep; when any is set it has
// already accepted counter largest (which steers counter recovery).
func NewOpenerAt(s *SessionSecrets, dir Direction, ep uint32, largest uint64, any bool, now time.Time) (*Opener, error) {
	if ep > MaxStartEpoch {
		return nil, ErrUnknownEpoch
	}
	o := NewOpener(s, dir, now)
	o.cur = &recvEpoch{epoch: newEpoch(s.AEAD, EpochKey(s.SessionKey, ep), ep, s.TranscriptHash, dir, now)}
	if any {
		o.cur.filter.Accept(largest)
	}
	return o, nil
}

// Epoch returns the current receive epoch.
func (o *Opener) Epoch() uint32 { return o.cur.n }

// Largest returns the largest counter accepted in the current epoch.
func (o *Opener) Largest() (uint64, bool) { return o.cur.filter.Largest() }

// Open authenticates one whole frame and appends its plaintext to dst.
// Every rejection is one of the wire sentinels: ErrAuth for a forged or
// corrupted frame (or a wrong key), ErrReplay for a counter seen before or
// too old, ErrStale for a timestamp outside TimestampSkew, ErrUnknownEpoch
// or ErrKeyExpired for a key epoch the opener cannot use, and the parse
// errors of Parse. A rejected frame changes no state. Open does not
// allocate when dst has len(frame) bytes of spare capacity (Tier 5 needs
// room for the ciphertext and its tag together; the other tiers need room
// for the payload only).
func (o *Opener) Open(dst, frame []byte, now time.Time) (Opened, error) {
	return o.openFrame(dst, frame, now, false)
}

// maxScratch bounds the buffer an Opener keeps between frames.
const maxScratch = 16 << 10

// OpenInPlace is Open for a frame buffer the caller hands over: it copies
// nothing and, once warm, allocates nothing. The returned Payload is the
// caller's: either the frame's own buffer (authenticate-only frames, Tier
// 5) or the opener's scratch buffer, which the opener then swaps for the
// frame's (Tiers 3-4 with E=1 decrypt out of place, so that a failed epoch
// leaves the ciphertext for the next one). Either way frame must not be
// used afterwards, whether it opened or not.
func (o *Opener) OpenInPlace(frame []byte, now time.Time) (Opened, error) {
	return o.openFrame(nil, frame, now, true)
}

func (o *Opener) openFrame(dst, frame []byte, now time.Time, inPlace bool) (Opened, error) {
	f, err := Parse(frame)
	if err != nil {
		return Opened{}, err
	}
	swap := false
	if inPlace {
		dst = frame[len(f.Prefix):len(f.Prefix)]
		if f.Header.Encrypted && f.Header.Tier < Tier5 {
			// Decrypt out of place into the scratch buffer: a failed
			// attempt clears its output, and Tier 3 may need to try
			// another epoch with the same ciphertext. On success the
			// scratch holds the payload and the frame becomes the scratch.
			if n := len(f.Body); cap(o.ct) < n {
				o.ct = make([]byte, 0, n)
			}
			dst, swap = o.ct[:0], true
		}
	}
	if !f.Header.Tier.Sealed() {
		return Opened{}, ErrWrongTier
	}
	if f.Header.Tier >= Tier4 && subtle.ConstantTimeCompare(f.Header.PublicKey[:], o.peerPub[:]) != 1 {
		return Opened{}, ErrAuth
	}
	trunc := uint64(f.Header.Nonce)<<8 | uint64(f.Header.Sequence)

	// Candidate epochs: Tiers 4-5 name theirs in Key ID; Tier 3 tries the
	// current one, then the next, then the previous while in grace (at
	// most three AEAD opens, PROFILE.md §P33). The next epoch is derived
	// only when a frame needs it.
	single := f.Header.Tier >= Tier4
	var only *recvEpoch
	if single {
		if only = o.epochByID(f.Header.KeyID, now); only == nil {
			return Opened{}, ErrUnknownEpoch
		}
	}
	// What to report when nothing authenticates: a replay when the epoch
	// that should have taken the frame had seen its counter already.
	rejected := ErrAuth
	for i := 0; i < 3; i++ {
		var e *recvEpoch
		switch {
		case single && i > 0:
			return Opened{}, rejected
		case single:
			e = only
		case i == 0:
			e = o.cur
		case i == 1:
			e = o.nextEpoch(now)
		case o.prev != nil && now.Before(o.prevUntil):
			e = o.prev
		default:
			return Opened{}, rejected
		}
		last, any := e.filter.Largest()
		ctr := replay.Recover(last, any, trunc, counterBits)
		if ctr >= RejectAfterMessages || !e.filter.Check(ctr) {
			if e == o.cur || single {
				rejected = ErrReplay
			}
			continue
		}
		if now.Sub(e.start) >= RejectAfterTime {
			if single {
				rejected = ErrKeyExpired
			}
			continue
		}
		out, ok := o.open(&e.epoch, &f, frame, uint32(ctr), dst)
		if !ok {
			continue
		}
		// Authentic. The timestamp is checked only now, so that a forger
		// learns nothing from which check failed.
		if d := time.Duration(int64(f.Header.Timestamp)-now.Add(o.Skew).Unix()) * time.Second; d > TimestampSkew || d < -TimestampSkew {
			return Opened{}, ErrStale
		}
		e.filter.Accept(ctr)
		if e == o.nxt {
			o.prev, o.prevUntil = o.cur, now.Add(PreviousEpochGrace)
			o.cur, o.nxt = o.nxt, nil
		}
		if swap {
			// out, in the old scratch, is the caller's now. Keep the
			// frame's buffer as the next scratch unless it is large: an
			// idle session should not hold a large frame's memory.
			o.ct = nil
			if cap(frame) <= maxScratch {
				o.ct = frame[:0]
			}
		}
		return Opened{Header: f.Header, Fragment: f.Fragment, Counter: uint32(ctr), Epoch: e.n, Payload: out}, nil
	}
	return Opened{}, rejected
}

// epochByID returns the epoch named by a Tier 4-5 Key ID, or nil.
func (o *Opener) epochByID(id uint32, now time.Time) *recvEpoch {
	switch {
	case id == o.cur.n:
		return o.cur
	case id == o.cur.n+1 && o.cur.n != ^uint32(0):
		return o.nextEpoch(now)
	case o.prev != nil && id == o.prev.n && now.Before(o.prevUntil):
		return o.prev
	}
	return nil
}

// nextEpoch derives the next epoch once and keeps it until it is used.
func (o *Opener) nextEpoch(now time.Time) *recvEpoch {
	if o.nxt == nil {
		o.nxt = &recvEpoch{epoch: o.cur.next(o.th, o.dir, now)}
	}
	return o.nxt
}

// open verifies f under e and appends the plaintext to dst, which must not
// overlap the frame's ciphertext (Tier 5 copies it into dst's spare room
// first; other tiers may append in place since they only append clear
// bytes over themselves).
func (o *Opener) open(e *epoch, f *Frame, frame []byte, ctr uint32, dst []byte) ([]byte, bool) {
	nonce := e.nonce(&o.nonce, f.Header.Timestamp, ctr)
	if f.Header.Tier < Tier5 {
		if f.Header.Encrypted {
			ct := frame[len(f.Prefix):] // body and tag are contiguous
			out, err := e.aead.Open(dst, nonce, ct, f.Prefix)
			return out, err == nil
		}
		adEnd := len(frame) - TagSize
		if _, err := e.aead.Open(o.sum[:0], nonce, f.Trailer, frame[:adEnd]); err != nil {
			return nil, false
		}
		return append(dst, f.Body...), true
	}

	// Tier 5: HMAC over everything before the trailer, then the AEAD with
	// the tag taken from the header.
	mac := e.hmac()
	mac.Write(frame[:len(frame)-HMACSize])
	if !hmac.Equal(mac.Sum(o.sum[:0]), f.Trailer) {
		return nil, false
	}
	ad := append(o.scratch[:0], frame[:tier5ADSize]...)
	ad = append(ad, f.Prefix[tier5ADSize+TagSize:]...)
	defer func() { o.scratch = ad[:0] }()
	if f.Header.Encrypted {
		// The AEAD wants ciphertext‖tag: open in place in dst's spare room.
		n := len(f.Body)
		g := slices.Grow(dst, n+TagSize)
		buf := g[len(dst) : len(dst)+n+TagSize]
		copy(buf, f.Body)
		copy(buf[n:], frame[tier5ADSize:tier5ADSize+TagSize])
		out, err := e.aead.Open(buf[:0], nonce, buf, ad)
		if err != nil {
			return nil, false
		}
		return g[:len(dst)+len(out)], true
	}
	ad = append(ad, f.Body...)
	if _, err := e.aead.Open(o.sum[:0], nonce, frame[tier5ADSize:tier5ADSize+TagSize], ad); err != nil {
		return nil, false
	}
	return append(dst, f.Body...), true
}
