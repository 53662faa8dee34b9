package vectors

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/inspect"
)

// SealedVector is one sealed frame with every input that made it. To
// check an implementation: seal Plaintext under Keys in Direction at Epoch
// with Counter and Timestamp and the header fields, and compare with Frame;
// open Frame with an opener that has accepted Largest and compare with
// Plaintext. Nonce and AssociatedData show the AEAD's inputs.
type SealedVector struct {
	Name           string               `json:"name"`
	Keys           *inspect.KeyMaterial `json:"keys"`
	Direction      string               `json:"direction"`
	Epoch          uint32               `json:"epoch"`
	Counter        uint32               `json:"counter"`
	Largest        *uint64              `json:"largest_accepted,omitempty"`
	Tier           uint8                `json:"tier"`
	Op             string               `json:"op"`
	SessionID      uint16               `json:"session_id"`
	Timestamp      uint32               `json:"timestamp"`
	Compressed     bool                 `json:"compressed,omitempty"`
	Encrypted      bool                 `json:"encrypted"`
	Fragment       *inspect.Fragment    `json:"fragment,omitempty"`
	Plaintext      Hex                  `json:"plaintext"`
	Nonce          Hex                  `json:"aead_nonce"`
	AssociatedData Hex                  `json:"associated_data"`
	Frame          Hex                  `json:"frame"`
}

type sealCase struct {
	name       string
	dir        wire.Direction
	epoch      uint32
	counter    uint32
	largest    *uint64
	tier       wire.Tier
	op         wire.Op
	enc, compr bool
	frag       *wire.FragmentHeader
	plain      []byte
}

func (c sealCase) build(sec *wire.SessionSecrets) (SealedVector, error) {
	s, err := wire.NewSealerAt(sec, c.dir, c.epoch, uint64(c.counter), Time)
	if err != nil {
		return SealedVector{}, err
	}
	h := wire.Header{Tier: c.tier, Op: c.op, SessionID: 1, Encrypted: c.enc, Compressed: c.compr, Fragmented: c.frag != nil}
	b, err := s.Seal(nil, &h, c.frag, c.plain, Time)
	if err != nil {
		return SealedVector{}, fmt.Errorf("vector %s: %w", c.name, err)
	}
	k := wire.DeriveDirectional(wire.EpochKey(sec.SessionKey, c.epoch), sec.TranscriptHash, c.dir)
	nonce := make([]byte, 12)
	binary.BigEndian.PutUint32(nonce, h.Timestamp)
	copy(nonce[4:], k.Random[:])
	binary.BigEndian.PutUint32(nonce[8:], c.counter)
	prefix := h.Tier.HeaderSize()
	if c.frag != nil {
		prefix += wire.FragmentHeaderSize
	}
	var ad []byte
	switch {
	case c.tier == wire.Tier5:
		ad = append(append([]byte(nil), b[:48]...), b[64:prefix]...)
	default:
		ad = append([]byte(nil), b[:prefix]...)
	}
	if !c.enc {
		ad = append(ad, c.plain...)
	}
	v := SealedVector{Name: c.name, Keys: inspect.FromSecrets(sec), Direction: c.dir.String(), Epoch: c.epoch,
		Counter: c.counter, Largest: c.largest, Tier: uint8(c.tier), Op: c.op.String(), SessionID: 1,
		Timestamp: h.Timestamp, Compressed: c.compr, Encrypted: c.enc, Plaintext: c.plain,
		Nonce: nonce, AssociatedData: ad, Frame: b}
	if c.frag != nil {
		v.Fragment = &inspect.Fragment{MessageID: c.frag.MessageID, Index: c.frag.Index, Total: c.frag.Total}
	}
	return v, nil
}

func sealedFile(hs *handshakeVector) (*File, error) {
	msg := []byte("turn on the porch light")
	i2r, r2i := wire.InitiatorToResponder, wire.ResponderToInitiator
	cases := []sealCase{
		{name: "tier3 encrypted, first frame", dir: i2r, tier: wire.Tier3, op: wire.OpGPIOLineSet, enc: true, plain: msg},
		{name: "tier3 authenticate-only", dir: r2i, tier: wire.Tier3, op: wire.OpGPIOLineGet, plain: []byte("line 17 = 1")},
		{name: "tier3 empty payload", dir: i2r, counter: 1, largest: ptr[uint64](0), tier: wire.Tier3, op: wire.OpKeepalive, enc: true},
		{name: "tier3 counter 0x0100: Nonce field carries bits 8-23", dir: i2r, counter: 0x0100, largest: ptr[uint64](0xff), tier: wire.Tier3, op: wire.OpDeviceList, enc: true, plain: []byte{0x90}},
		{name: "tier3 counter 0x01000005: bits 24-31 recovered from the largest accepted", dir: i2r, counter: 0x01000005, largest: ptr[uint64](0x01000001), tier: wire.Tier3, op: wire.OpStreamData, enc: true, plain: msg},
		{name: "tier3 fragmented", dir: i2r, counter: 2, largest: ptr[uint64](1), tier: wire.Tier3, op: wire.OpStreamData, enc: true,
			frag: &wire.FragmentHeader{MessageID: 7, Index: 1, Total: 3}, plain: []byte("middle part")},
		{name: "tier3 compressed flag (payload is the session codec's output)", dir: r2i, counter: 4, largest: ptr[uint64](3), tier: wire.Tier3, op: wire.OpDeviceInfo, enc: true, compr: true, plain: []byte{0x28, 0xb5, 0x2f, 0xfd}},
		{name: "tier4 encrypted", dir: i2r, tier: wire.Tier4, op: wire.OpKeyExchangeInit, enc: true, plain: msg},
		{name: "tier4 authenticate-only", dir: r2i, tier: wire.Tier4, op: wire.OpSessionRotate},
		{name: "tier5 encrypted", dir: i2r, tier: wire.Tier5, op: wire.OpDeviceLock, enc: true, plain: msg},
		{name: "tier5 authenticate-only", dir: r2i, tier: wire.Tier5, op: wire.OpDeviceUnlock, plain: []byte("unlock 3")},
		{name: "tier5 fragmented", dir: i2r, counter: 9, largest: ptr[uint64](8), tier: wire.Tier5, op: wire.OpGPURequest, enc: true,
			frag: &wire.FragmentHeader{MessageID: 0xdeadbeef, Index: 0, Total: 2}, plain: []byte("first half")},
		{name: "TUNNEL: a Tier 0 frame as the plaintext of a Tier 3 frame", dir: i2r, counter: 10, largest: ptr[uint64](9), tier: wire.Tier3, op: wire.OpTunnel, enc: true,
			plain: wire.AppendTier0(nil, false, []byte("tunnelled bytes"))},
	}
	// The same session keys under AES-256-GCM, the optional AEAD (§P23):
	// only the cipher changes, the layout and the key schedule do not.
	aesCases := []sealCase{
		{name: "aes-256-gcm tier3 encrypted", dir: i2r, tier: wire.Tier3, op: wire.OpGPIOLineSet, enc: true, plain: msg},
		{name: "aes-256-gcm tier3 authenticate-only", dir: r2i, tier: wire.Tier3, op: wire.OpGPIOLineGet, plain: []byte("line 17 = 1")},
		{name: "aes-256-gcm tier3 fragmented", dir: i2r, counter: 2, largest: ptr[uint64](1), tier: wire.Tier3, op: wire.OpStreamData, enc: true,
			frag: &wire.FragmentHeader{MessageID: 7, Index: 1, Total: 3}, plain: []byte("middle part")},
		{name: "aes-256-gcm tier4 encrypted", dir: r2i, tier: wire.Tier4, op: wire.OpKeyExchangeInit, enc: true, plain: msg},
		{name: "aes-256-gcm tier5 encrypted", dir: i2r, tier: wire.Tier5, op: wire.OpDeviceLock, enc: true, plain: msg},
		{name: "aes-256-gcm tier5 authenticate-only", dir: r2i, tier: wire.Tier5, op: wire.OpDeviceUnlock, plain: []byte("unlock 3")},
	}
	aesSecrets := hs.secrets
	aesSecrets.AEAD = wire.AES256GCM
	var out []SealedVector
	for _, set := range []struct {
		cases []sealCase
		sec   *wire.SessionSecrets
	}{{cases, &hs.secrets}, {aesCases, &aesSecrets}} {
		for _, c := range set.cases {
			v, err := c.build(set.sec)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	}
	return &File{Name: "sealed.json", Description: "Sealed frames, Tiers 3-5 (PROFILE.md §P4, §P8, §P9, §P11, §P13, §P23): " +
		"nonce = timestamp ‖ random ‖ counter (each 32-bit big-endian); Sequence = counter bits 0-7, header Nonce = bits 8-23; " +
		"the session's AEAD (keys.aead; absent means ChaCha20-Poly1305, aes-256-gcm is AES-256-GCM with the same 32-byte key) with associated_data = header ‖ fragment sub-header (Tier 5: header without its tag), plus the payload when E=0; " +
		"Tiers 3-4: tag is the trailer; Tier 5: tag in the header, trailer = HMAC-SHA256(mac_key, everything before it). Keys: keyschedule.json.",
		Vectors: out}, nil
}

func rotationFile(hs *handshakeVector) (*File, error) {
	cases := []sealCase{
		{name: "tier3 at epoch 1 (receiver tries the next epoch)", dir: wire.InitiatorToResponder, epoch: 1, tier: wire.Tier3, op: wire.OpGPIOLineSet, enc: true, plain: []byte("epoch one")},
		{name: "tier4 at epoch 2 (Key ID = 2)", dir: wire.ResponderToInitiator, epoch: 2, tier: wire.Tier4, op: wire.OpSessionRotate, enc: true, plain: []byte("epoch two")},
		{name: "tier5 at epoch 3", dir: wire.InitiatorToResponder, epoch: 3, tier: wire.Tier5, op: wire.OpDeviceLock, enc: true, plain: []byte("epoch three")},
	}
	var out []SealedVector
	for _, c := range cases {
		v, err := c.build(&hs.secrets)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return &File{Name: "rotation.json", Description: "Frames after key rotation (PROFILE.md §P16): the chain key of epoch n is in keyschedule.json; each epoch restarts the counter at 0.", Vectors: out}, nil
}

// RejectVector is a frame (or a length prefix) that must be rejected, the
// receiver state it meets, and the reason and protocol code expected.
type RejectVector struct {
	Name         string               `json:"name"`
	Frame        Hex                  `json:"frame,omitempty"`
	LengthPrefix Hex                  `json:"length_prefix,omitempty"`
	Keys         *inspect.KeyMaterial `json:"keys,omitempty"`
	Direction    string               `json:"direction,omitempty"`
	Epoch        uint32               `json:"epoch,omitempty"`
	Largest      *uint64              `json:"largest_accepted,omitempty"`
	Now          int64                `json:"now,omitempty"`
	Reason       string               `json:"reason"`
	Code         string               `json:"code"`
}

func rejectsFile(hs *handshakeVector) (*File, error) {
	sec := &hs.secrets
	km := inspect.FromSecrets(sec)
	now := Time.Unix()
	good := func(tier wire.Tier, counter uint32) []byte {
		v, _ := sealCase{name: "r", dir: wire.InitiatorToResponder, counter: counter, tier: tier, op: wire.OpGPIOLineSet, enc: true, plain: []byte("on")}.build(sec)
		return v.Frame
	}
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		if i < 0 {
			i += len(c)
		}
		c[i] ^= 0x01
		return c
	}
	other := *sec
	other.SessionKey[0] ^= 1
	t2, _ := wire.AppendPlain(nil, &wire.Header{Tier: wire.Tier2, Op: wire.OpDeviceList}, nil, []byte("x"))
	hsF := []byte(hs.SessionInitFrame)
	t4 := good(wire.Tier4, 0)
	unknownEpoch := append([]byte(nil), t4...)
	binary.BigEndian.PutUint32(unknownEpoch[12:], 7)
	t5 := good(wire.Tier5, 0)

	type rc struct {
		name    string
		frame   []byte
		prefix  []byte
		keyed   bool
		keys    *inspect.KeyMaterial
		dir     wire.Direction
		largest *uint64
		now     int64
		err     *wire.Error
	}
	cases := []rc{
		{name: "bad tag (last byte flipped)", frame: flip(good(wire.Tier3, 0), -1), keyed: true, err: wire.ErrAuth},
		{name: "ciphertext bit flipped", frame: flip(good(wire.Tier3, 0), 13), keyed: true, err: wire.ErrAuth},
		{name: "header bit flipped (session id)", frame: flip(good(wire.Tier3, 0), 5), keyed: true, err: wire.ErrAuth},
		{name: "wrong key", frame: good(wire.Tier3, 0), keyed: true, keys: inspect.FromSecrets(&other), err: wire.ErrAuth},
		{name: "wrong direction", frame: good(wire.Tier3, 0), keyed: true, dir: wire.ResponderToInitiator, err: wire.ErrAuth},
		{name: "replay: counter 0 already accepted", frame: good(wire.Tier3, 0), keyed: true, largest: ptr[uint64](0), err: wire.ErrReplay},
		{name: "too old: counter below the replay window", frame: good(wire.Tier4, 5), keyed: true, largest: ptr[uint64](5 + wire.ReplayWindow + 1), err: wire.ErrReplay},
		{name: "stale timestamp (6 minutes late)", frame: good(wire.Tier3, 0), keyed: true, now: now + 360, err: wire.ErrStale},
		{name: "timestamp from the future (6 minutes early)", frame: good(wire.Tier3, 0), keyed: true, now: now - 360, err: wire.ErrStale},
		{name: "tier 4 unknown key epoch", frame: unknownEpoch, keyed: true, err: wire.ErrUnknownEpoch},
		{name: "tier 4 foreign public key", frame: flip(t4, 20), keyed: true, err: wire.ErrAuth},
		{name: "tier 5 HMAC trailer flipped", frame: flip(t5, -1), keyed: true, err: wire.ErrAuth},
		{name: "tier 5 header tag flipped", frame: flip(t5, 50), keyed: true, err: wire.ErrAuth},
		{name: "truncated tier 3 frame", frame: good(wire.Tier3, 0)[:20], err: wire.ErrTruncated},
		{name: "truncated tier 5 header", frame: t5[:40], err: wire.ErrTruncated},
		{name: "empty frame", frame: []byte{}, err: wire.ErrTruncated},
		{name: "unknown tier 6", frame: []byte{0x30, 0, 1, 0}, err: wire.ErrTier},
		{name: "unknown tier 7", frame: []byte{0x38, 0, 1, 0}, err: wire.ErrTier},
		{name: "unknown version 1", frame: []byte{0x48, 0, 1, 0}, err: wire.ErrVersion},
		{name: "E set at tier 1", frame: []byte{0x09, 0, 1, 0}, err: wire.ErrEncryptedBelow3},
		{name: "E set at tier 2", frame: []byte{0x11, 0, 1, 0, 0, 0, 0, 0}, err: wire.ErrEncryptedBelow3},
		{name: "tier 0 outside a sealed frame", frame: []byte{0x00, 'h', 'i'}, err: wire.ErrTier0Outside},
		{name: "tier 2 CRC mismatch", frame: flip(t2, -1), err: wire.ErrCRC},
		{name: "fragment index not below total", frame: []byte{0x0a, 0x02, 0x12, 0, 0, 0, 0, 1, 0, 2, 0, 2, 'x'}, err: wire.ErrFragment},
		{name: "fragment total of 1", frame: []byte{0x0a, 0x02, 0x12, 0, 0, 0, 0, 1, 0, 0, 0, 1, 'x'}, err: wire.ErrFragment},
		{name: "handshake digest mismatch", frame: flip(hsF, -1), err: wire.ErrCRC},
		{name: "length prefix over MaxFrameSize", prefix: []byte{0x00, 0x10, 0x00, 0x01}, err: wire.ErrTooLarge},
		{name: "length prefix 4 GiB", prefix: []byte{0xff, 0xff, 0xff, 0xff}, err: wire.ErrTooLarge},
		{name: "length prefix zero", prefix: []byte{0, 0, 0, 0}, err: wire.ErrTruncated},
	}
	var out []RejectVector
	for _, c := range cases {
		v := RejectVector{Name: c.name, Frame: c.frame, LengthPrefix: c.prefix, Reason: c.err.Reason, Code: c.err.Code.String()}
		if c.keyed {
			v.Keys, v.Direction, v.Largest, v.Now = km, c.dir.String(), c.largest, now
			if c.keys != nil {
				v.Keys = c.keys
			}
			if c.now != 0 {
				v.Now = c.now
			}
		}
		if got := Reject(&v); got != nil {
			return nil, fmt.Errorf("reject vector %q: %w", c.name, got)
		}
		out = append(out, v)
	}
	return &File{Name: "rejects.json", Description: "Frames a receiver must reject, with the reason (wire error) and the protocol error code (§9.1 and PROFILE.md §P19). Keyed vectors are opened with keys, direction and epoch at `now` (Unix seconds) by a receiver that has accepted largest_accepted; the others fail before any key is used.", Vectors: out}, nil
}

// Reject runs a reject vector through the wire package and returns an
// error unless it is rejected for the stated reason.
func Reject(v *RejectVector) error {
	var err error
	switch {
	case v.LengthPrefix != nil:
		_, err = wire.ParseLengthPrefix(v.LengthPrefix)
	case v.Keys != nil:
		sec, kerr := v.Keys.Secrets()
		if kerr != nil {
			return kerr
		}
		dir, derr := inspect.ParseDirection(v.Direction)
		if derr != nil {
			return derr
		}
		var largest uint64
		if v.Largest != nil {
			largest = *v.Largest
		}
		now := time.Unix(v.Now, 0)
		o, oerr := wire.NewOpenerAt(sec, dir, v.Epoch, largest, v.Largest != nil, now)
		if oerr != nil {
			return oerr
		}
		_, err = o.Open(nil, v.Frame, now)
	case len(v.Frame) > 0 && v.Frame[0]>>3&7 == 4 && v.Frame[0]&7 == 0 && len(v.Frame) > 3 && wire.Op(binary.BigEndian.Uint16(v.Frame[1:])).Handshake():
		_, err = wire.ParseHandshake(v.Frame)
	default:
		_, err = wire.Parse(v.Frame)
	}
	if err == nil {
		return fmt.Errorf("accepted, want %q", v.Reason)
	}
	if wire.ReasonOf(err) != v.Reason || wire.CodeOf(err).String() != v.Code {
		return fmt.Errorf("rejected with %q (%s), want %q (%s)", wire.ReasonOf(err), wire.CodeOf(err), v.Reason, v.Code)
	}
	return nil
}
