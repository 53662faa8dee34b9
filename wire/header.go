package wire

import (
	"encoding/binary"
	"fmt"
)

// Version is the only protocol version this profile speaks (draft §3.1).
const Version = 0

// Tier is a security tier, 0-5 (draft §2.2).
type Tier uint8

const (
	Tier0 Tier = iota // 1-byte header; only inside a sealed TUNNEL frame
	Tier1             // 4 bytes: op, sequence; no protection
	Tier2             // 6 bytes: + session ID; CRC-16 trailer
	Tier3             // 12 bytes: + timestamp, nonce; Poly1305 tag trailer
	Tier4             // 48 bytes: + key ID, X25519 key; Poly1305 tag trailer
	Tier5             // 64 bytes: + Poly1305 tag; HMAC-SHA256 trailer
)

// MaxTier is the highest tier defined.
const MaxTier = Tier5

// Header and trailer sizes per tier (PROFILE.md §P1, §P2).
var (
	headerSizes  = [...]int{1, 4, 6, 12, 48, 64}
	trailerSizes = [...]int{0, 0, 2, 16, 16, 32}
)

// Field sizes.
const (
	PublicKeySize = 32
	TagSize       = 16
	HMACSize      = 32
	CRCSize       = 2
)

// Valid reports whether t is a defined tier.
func (t Tier) Valid() bool { return t <= MaxTier }

// Sealed reports whether frames of tier t are authenticated (Tier 3 and up).
func (t Tier) Sealed() bool { return t >= Tier3 && t <= MaxTier }

// HeaderSize returns the header length of tier t in bytes, 0 if t is not a tier.
func (t Tier) HeaderSize() int {
	if !t.Valid() {
		return 0
	}
	return headerSizes[t]
}

// TrailerSize returns the trailer length of tier t in bytes: CRC-16 at Tier
// 2, the Poly1305 tag at Tiers 3-4, HMAC-SHA256 at Tier 5.
func (t Tier) TrailerSize() int {
	if !t.Valid() {
		return 0
	}
	return trailerSizes[t]
}

// Overhead returns header plus trailer plus, at Tier 5, nothing more (the
// tag is inside the header): the bytes a frame adds to its payload, not
// counting a fragment sub-header or a transport's length prefix.
func (t Tier) Overhead() int { return t.HeaderSize() + t.TrailerSize() }

func (t Tier) String() string { return fmt.Sprintf("tier%d", uint8(t)) }

// Flag bits of the first byte, RFC bit numbering (bit 0 is the MSB):
// V V T T T C F E  =  V<<6 | T<<3 | C<<2 | F<<1 | E.
const (
	FlagEncrypted  = 1 << 0
	FlagFragmented = 1 << 1
	FlagCompressed = 1 << 2
)

// Header is a decoded tier header. Fields a tier lacks are zero.
type Header struct {
	Tier       Tier
	Compressed bool // C: payload compressed with the session's algorithm
	Fragmented bool // F: a fragment sub-header follows the header
	Encrypted  bool // E: payload encrypted (Tier 3+ only); else authenticated only

	Op        Op                  // Tier 1+
	Sequence  uint8               // Tier 1+; at Tier 3+ counter bits 0-7
	SessionID uint16              // Tier 2+
	Timestamp uint32              // Tier 3+, Unix seconds
	Nonce     uint16              // Tier 3+; counter bits 8-23
	KeyID     uint32              // Tier 4+; the key epoch
	PublicKey [PublicKeySize]byte // Tier 4+; sender's ephemeral X25519 key
	Tag       [TagSize]byte       // Tier 5; Poly1305 tag
}

// Flags returns the first byte of h's encoding.
func (h *Header) Flags() byte {
	b := byte(Version<<6) | byte(h.Tier&7)<<3
	if h.Compressed {
		b |= FlagCompressed
	}
	if h.Fragmented {
		b |= FlagFragmented
	}
	if h.Encrypted {
		b |= FlagEncrypted
	}
	return b
}

// check enforces the rules every encoded or decoded header obeys.
func (h *Header) check() error {
	if !h.Tier.Valid() {
		return ErrTier
	}
	if h.Encrypted && !h.Tier.Sealed() {
		return ErrEncryptedBelow3
	}
	return nil
}

// AppendTo appends h's encoding (h.Tier.HeaderSize() bytes) to dst.
// A Tier 0 header is encoded only for use inside a TUNNEL frame.
func (h *Header) AppendTo(dst []byte) ([]byte, error) {
	if err := h.check(); err != nil {
		return dst, err
	}
	dst = append(dst, h.Flags())
	if h.Tier == Tier0 {
		return dst, nil
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Op))
	dst = append(dst, h.Sequence)
	if h.Tier == Tier1 {
		return dst, nil
	}
	dst = binary.BigEndian.AppendUint16(dst, h.SessionID)
	if h.Tier == Tier2 {
		return dst, nil
	}
	dst = binary.BigEndian.AppendUint32(dst, h.Timestamp)
	dst = binary.BigEndian.AppendUint16(dst, h.Nonce)
	if h.Tier == Tier3 {
		return dst, nil
	}
	dst = binary.BigEndian.AppendUint32(dst, h.KeyID)
	dst = append(dst, h.PublicKey[:]...)
	if h.Tier == Tier4 {
		return dst, nil
	}
	return append(dst, h.Tag[:]...), nil
}

// ParseFlags decodes the first byte into h (tier and C/F/E) and checks the
// version, the tier and the E rule.
func (h *Header) parseFlags(b byte) error {
	if b>>6 != Version {
		return ErrVersion
	}
	*h = Header{
		Tier:       Tier(b >> 3 & 7),
		Compressed: b&FlagCompressed != 0,
		Fragmented: b&FlagFragmented != 0,
		Encrypted:  b&FlagEncrypted != 0,
	}
	return h.check()
}

// Decode parses a header from the start of b and returns its length.
// Tier 0 headers are rejected with ErrTier0Outside: they are only valid
// inside a sealed frame (see ParseTier0).
func (h *Header) Decode(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, ErrTruncated
	}
	if err := h.parseFlags(b[0]); err != nil {
		return 0, err
	}
	if h.Tier == Tier0 {
		return 0, ErrTier0Outside
	}
	n := h.Tier.HeaderSize()
	if len(b) < n {
		return 0, ErrTruncated
	}
	h.Op = Op(binary.BigEndian.Uint16(b[1:]))
	h.Sequence = b[3]
	if h.Tier >= Tier2 {
		h.SessionID = binary.BigEndian.Uint16(b[4:])
	}
	if h.Tier >= Tier3 {
		h.Timestamp = binary.BigEndian.Uint32(b[6:])
		h.Nonce = binary.BigEndian.Uint16(b[10:])
	}
	if h.Tier >= Tier4 {
		h.KeyID = binary.BigEndian.Uint32(b[12:])
		copy(h.PublicKey[:], b[16:48])
	}
	if h.Tier == Tier5 {
		copy(h.Tag[:], b[48:64])
	}
	return n, nil
}
