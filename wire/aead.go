package wire

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"math"
	"strconv"

	"golang.org/x/crypto/chacha20poly1305"
)

// AEAD is a session's authenticated cipher (PROFILE.md §P23). It is fixed
// for the whole session by the capabilities the handshake selected, which
// the transcript hash binds into every key; frames carry no indicator.
type AEAD uint8

const (
	// ChaCha20Poly1305 (RFC 8439) is mandatory for every implementation
	// and the zero value: a session that negotiated nothing uses it.
	ChaCha20Poly1305 AEAD = iota
	// AES256GCM (NIST SP 800-38D) is used only when both ends offered the
	// encryption-aes256gcm capability, which an implementation does only
	// where the CPU runs AES and GHASH in constant-time hardware.
	AES256GCM
)

// NonceSize is the AEAD nonce: 12 bytes for both algorithms (§4).
const NonceSize = 12

var aeadNames = [...]string{ChaCha20Poly1305: "chacha20-poly1305", AES256GCM: "aes-256-gcm"}

func (a AEAD) String() string {
	if int(a) < len(aeadNames) {
		return aeadNames[a]
	}
	return "aead(" + strconv.Itoa(int(a)) + ")"
}

// Valid reports whether a is an algorithm of the profile.
func (a AEAD) Valid() bool { return a <= AES256GCM }

// ParseAEAD reads an AEAD's name as String writes it.
func ParseAEAD(name string) (AEAD, error) {
	for i, n := range aeadNames {
		if n == name {
			return AEAD(i), nil
		}
	}
	return 0, errors.New("unknown AEAD " + strconv.Quote(name) + ": want chacha20-poly1305 or aes-256-gcm")
}

// new returns the keyed cipher. Both take a 32-byte key and a 12-byte
// nonce and append a 16-byte tag, so the frame layout of §3 is the same.
func (a AEAD) new(key *[KeySize]byte) cipher.AEAD {
	var c cipher.AEAD
	var err error
	switch a {
	case AES256GCM:
		var b cipher.Block
		if b, err = aes.NewCipher(key[:]); err == nil {
			c, err = cipher.NewGCM(b)
		}
	case ChaCha20Poly1305:
		c, err = chacha20poly1305.New(key[:])
	default:
		panic("wire: unknown AEAD " + a.String()) // the session layer sets only valid ones
	}
	if err != nil {
		panic("wire: " + a.String() + ": " + err.Error()) // key, nonce and tag sizes are constant
	}
	return c
}

// rekeyAfter is the frame count and the plaintext byte count after which
// a sender rotates its epoch; rejectAfter those it refuses to seal.
// ChaCha20-Poly1305 is bounded by its counter only. AES-256-GCM is also
// bounded by bytes so that its confidentiality bound stays near 2^-60
// however large the frames (as TLS 1.3 bounds records, RFC 8446 §5.5):
// 2^36 bytes are 2^32 blocks, and (2^32)^2 / 2^128 = 2^-64.
func (a AEAD) rekeyAfter() (frames, bytes uint64) {
	if a == AES256GCM {
		return RekeyAfterMessages, RekeyAfterBytesAESGCM
	}
	return RekeyAfterMessages, math.MaxUint64
}

func (a AEAD) rejectAfter() (frames, bytes uint64) {
	if a == AES256GCM {
		return RejectAfterMessages, RejectAfterBytesAESGCM
	}
	return RejectAfterMessages, math.MaxUint64
}
