package wire

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"slices"
)

// Frame is a frame parsed for structure only: header, fragment sub-header,
// body and trailer located and checked for size, the Tier 2 CRC verified.
// Nothing is authenticated: sealed frames go through an Opener. The slices
// alias the parsed input.
type Frame struct {
	Header   Header
	Fragment FragmentHeader // valid when Header.Fragmented
	Prefix   []byte         // header and fragment sub-header
	Body     []byte         // payload (Tiers 1-2, E=0) or ciphertext (E=1)
	Trailer  []byte         // CRC-16 (Tier 2), tag (Tiers 3-4), HMAC (Tier 5)
}

// Parse locates the parts of one whole frame. It rejects frames over
// MaxFrameSize, unknown versions and tiers, E below Tier 3, Tier 0, a
// malformed fragment sub-header, a frame too short for its tier's trailer,
// and (at Tier 2) a CRC mismatch. On ErrCRC the returned Frame is still
// filled in, for diagnostics.
func Parse(b []byte) (Frame, error) {
	var f Frame
	if len(b) > MaxFrameSize {
		return f, ErrTooLarge
	}
	n, err := f.Header.Decode(b)
	if err != nil {
		return f, err
	}
	if f.Header.Fragmented {
		if f.Fragment, err = DecodeFragmentHeader(b[n:]); err != nil {
			return f, err
		}
		n += FragmentHeaderSize
	}
	t := f.Header.Tier.TrailerSize()
	if len(b)-n < t {
		return f, ErrTruncated
	}
	f.Prefix, f.Body, f.Trailer = b[:n], b[n:len(b)-t], b[len(b)-t:]
	if f.Header.Tier == Tier2 && binary.BigEndian.Uint16(f.Trailer) != CRC16(b[:len(b)-t]) {
		return f, ErrCRC
	}
	return f, nil
}

// FrameSize returns the encoded size of a frame of tier t with a payload of
// n bytes, with or without a fragment sub-header.
func FrameSize(t Tier, fragmented bool, n int) int {
	s := t.Overhead() + n
	if fragmented {
		s += FragmentHeaderSize
	}
	return s
}

// MaxPayload returns the largest payload one frame of tier t can carry.
func MaxPayload(t Tier, fragmented bool) int {
	return MaxFrameSize - FrameSize(t, fragmented, 0)
}

// AppendPlain appends an unprotected frame (Tier 1, or Tier 2 with its CRC
// trailer) to dst. frag must be non-nil exactly when h.Fragmented is set.
// Sealed tiers go through a Sealer.
func AppendPlain(dst []byte, h *Header, frag *FragmentHeader, payload []byte) ([]byte, error) {
	if h.Tier != Tier1 && h.Tier != Tier2 {
		return dst, ErrWrongTier
	}
	if err := checkFrag(h, frag); err != nil {
		return dst, err
	}
	size := FrameSize(h.Tier, h.Fragmented, len(payload))
	if size > MaxFrameSize {
		return dst, ErrTooLarge
	}
	start := len(dst)
	dst = slices.Grow(dst, size)
	dst, err := h.AppendTo(dst)
	if err != nil {
		return dst[:start], err
	}
	if frag != nil {
		dst = frag.AppendTo(dst)
	}
	dst = append(dst, payload...)
	if h.Tier == Tier2 {
		dst = binary.BigEndian.AppendUint16(dst, CRC16(dst[start:]))
	}
	return dst, nil
}

func checkFrag(h *Header, frag *FragmentHeader) error {
	if h.Fragmented != (frag != nil) {
		return ErrFragment
	}
	if frag != nil {
		return frag.Validate()
	}
	return nil
}

// AppendTier0 appends a Tier 0 frame (one flags byte and the payload) to
// dst. A Tier 0 frame is only ever the plaintext of a sealed TUNNEL frame
// (PROFILE.md §P11): it inherits that frame's session, counter and
// protection, so its only flag is C.
func AppendTier0(dst []byte, compressed bool, payload []byte) []byte {
	h := Header{Tier: Tier0, Compressed: compressed}
	return append(append(dst, h.Flags()), payload...)
}

// ParseTier0 parses the plaintext of a TUNNEL frame as a Tier 0 frame. It
// rejects another version or tier, and F or E set (the outer frame
// fragments and encrypts).
func ParseTier0(b []byte) (compressed bool, payload []byte, err error) {
	if len(b) == 0 {
		return false, nil, ErrTruncated
	}
	var h Header
	if err := h.parseFlags(b[0]); err != nil {
		return false, nil, err
	}
	if h.Tier != Tier0 {
		return false, nil, ErrTier
	}
	if h.Fragmented {
		return false, nil, ErrFragment
	}
	return h.Compressed, b[1:], nil
}

// Handshake reports whether op travels in a handshake frame: SESSION_INIT,
// SESSION_ACK, SESSION_RESUME and SESSION_RESUMED (PROFILE.md §P24).
func (op Op) Handshake() bool {
	return op == OpSessionInit || op == OpSessionAck || op == OpSessionResume || op == OpSessionResumed
}

// AppendHandshake appends a handshake frame to dst: a Tier 4 frame with E=0
// and F=0 whose header carries the sender's ephemeral public key and whose
// 16-byte trailer is the first 16 bytes of SHA-256 over the rest of the
// frame. No key exists yet, so the trailer only detects corruption, like
// the Tier 2 CRC; the handshake is authenticated by the transcript hash that
// every traffic key is bound to (PROFILE.md §P6, §P24). The caller sets
// h.Op, h.SessionID, h.Timestamp and h.PublicKey; Sequence, Nonce, KeyID and
// the flags must be zero.
func AppendHandshake(dst []byte, h *Header, payload []byte) ([]byte, error) {
	if err := checkHandshake(h); err != nil {
		return dst, err
	}
	size := FrameSize(Tier4, false, len(payload))
	if size > MaxFrameSize {
		return dst, ErrTooLarge
	}
	start := len(dst)
	dst = slices.Grow(dst, size)
	dst, _ = h.AppendTo(dst)
	dst = append(dst, payload...)
	sum := sha256.Sum256(dst[start:])
	return append(dst, sum[:TagSize]...), nil
}

// ParseHandshake parses a handshake frame and checks its digest trailer.
func ParseHandshake(b []byte) (Frame, error) {
	f, err := Parse(b)
	if err != nil {
		return f, err
	}
	if err := checkHandshake(&f.Header); err != nil {
		return f, err
	}
	sum := sha256.Sum256(b[:len(b)-TagSize])
	if subtle.ConstantTimeCompare(sum[:TagSize], f.Trailer) != 1 {
		return f, ErrCRC
	}
	return f, nil
}

func checkHandshake(h *Header) error {
	switch {
	case h.Tier != Tier4:
		return ErrWrongTier
	case !h.Op.Handshake():
		return ErrMalformed
	case h.Encrypted || h.Compressed || h.Fragmented || h.Sequence != 0 || h.Nonce != 0 || h.KeyID != 0:
		return ErrMalformed
	}
	return nil
}

// AppendLengthPrefix appends the 4-byte big-endian length that precedes a
// frame of n bytes on a stream transport (PROFILE.md §P12).
func AppendLengthPrefix(dst []byte, n int) ([]byte, error) {
	if n < 1 || n > MaxFrameSize {
		return dst, ErrTooLarge
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n)), nil
}

// ParseLengthPrefix reads a stream transport's length prefix and checks it
// before anything is allocated: 0 is malformed, over MaxFrameSize too large.
func ParseLengthPrefix(b []byte) (int, error) {
	if len(b) < LengthPrefixSize {
		return 0, ErrTruncated
	}
	n := binary.BigEndian.Uint32(b)
	switch {
	case n == 0:
		return 0, ErrTruncated
	case n > MaxFrameSize:
		return 0, ErrTooLarge
	}
	return int(n), nil
}
