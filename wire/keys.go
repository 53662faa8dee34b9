package wire

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"io"
)

// KeySize is the size of every symmetric key of the schedule.
const KeySize = 32

// Direction names one of the two traffic directions of a session.
type Direction uint8

const (
	InitiatorToResponder Direction = iota // "i2r"
	ResponderToInitiator                  // "r2i"
)

func (d Direction) String() string {
	if d == InitiatorToResponder {
		return "i2r"
	}
	return "r2i"
}

// Labels of the key schedule (PROFILE.md §P5, §P6, §P16, §P18).
const (
	sessionInfo     = "myclerk-session-v0" // draft §5.1, verbatim
	rotateSalt      = "rotate"             // draft §5.2, verbatim
	resumeInfo      = "myclerk-resume-v0"
	labelKey        = "myclerk-v0 key "
	labelRandom     = "myclerk-v0 random "
	labelMAC        = "myclerk-v0 mac "
	labelResumption = "myclerk-v0 resumption"
)

// GenerateKey returns a new ephemeral X25519 private key made of 32 bytes
// read from rand (crypto/rand.Reader in production). It reads the bytes
// itself because ecdh's GenerateKey ignores its reader since Go 1.26, and
// the caller's randomness is what the caller must get.
func GenerateKey(rand io.Reader) (*ecdh.PrivateKey, error) {
	var b [KeySize]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, err
	}
	return ecdh.X25519().NewPrivateKey(b[:])
}

// SharedSecret is X25519(priv, peer) (RFC 7748 §6.1). It rejects a peer
// key that yields the all-zero output (a low-order point) with ErrBadKey.
func SharedSecret(priv *ecdh.PrivateKey, peer [PublicKeySize]byte) ([KeySize]byte, error) {
	var out [KeySize]byte
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return out, ErrBadKey
	}
	s, err := priv.ECDH(pub)
	if err != nil {
		return out, ErrBadKey
	}
	copy(out[:], s)
	return out, nil
}

// SessionKey is draft §5.1 exactly as written:
// HKDF-SHA256(IKM = shared, salt = nonce_i ‖ nonce_r, info =
// "myclerk-session-v0", L = 32).
func SessionKey(shared [KeySize]byte, nonceI, nonceR [8]byte) [KeySize]byte {
	salt := append(nonceI[:len(nonceI):len(nonceI)], nonceR[:]...)
	return hkdfKey(shared[:], salt, []byte(sessionInfo))
}

// TranscriptHash is SHA-256 of the raw SESSION_INIT frame followed by the
// raw SESSION_ACK frame (PROFILE.md §P6). Every key below the session key
// is bound to it, so a handshake altered in flight yields keys that fail on
// the first frame.
func TranscriptHash(init, ack []byte) [32]byte {
	h := sha256.New()
	h.Write(init)
	h.Write(ack)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// RotateKey is draft §5.2: HKDF-SHA256(IKM = current, salt = "rotate",
// info = epoch as 4 bytes big-endian, L = 32), where epoch is the number of
// the epoch being entered (the rotation counter: 1 for the first rotation).
func RotateKey(current [KeySize]byte, epoch uint32) [KeySize]byte {
	var info [4]byte
	binary.BigEndian.PutUint32(info[:], epoch)
	return hkdfKey(current[:], []byte(rotateSalt), info[:])
}

// EpochKey returns the chain key of epoch n: the session key rotated n times.
func EpochKey(sessionKey [KeySize]byte, n uint32) [KeySize]byte {
	k := sessionKey
	for e := uint32(1); e <= n; e++ {
		k = RotateKey(k, e)
	}
	return k
}

// DirectionalKeys are the keys one direction of one epoch uses.
type DirectionalKeys struct {
	Key    [KeySize]byte // ChaCha20-Poly1305 key
	Random [4]byte       // the §4 nonce's Random field, never sent
	MACKey [KeySize]byte // HMAC-SHA256 key of the Tier 5 trailer
}

// DeriveDirectional derives the keys of direction dir from an epoch's chain
// key with HKDF-Expand-SHA256, each under its own label followed by the
// transcript hash (PROFILE.md §P5, §P6):
//
//	key    = Expand(chain, "myclerk-v0 key "    ‖ dir ‖ th, 32)
//	random = Expand(chain, "myclerk-v0 random " ‖ dir ‖ th, 4)
//	mac    = Expand(chain, "myclerk-v0 mac "    ‖ dir ‖ th, 32)
//
// where dir is the ASCII "i2r" or "r2i".
func DeriveDirectional(chain [KeySize]byte, th [32]byte, dir Direction) DirectionalKeys {
	var k DirectionalKeys
	d := dir.String()
	copy(k.Key[:], expand(chain, labelKey+d, th, KeySize))
	copy(k.Random[:], expand(chain, labelRandom+d, th, 4))
	copy(k.MACKey[:], expand(chain, labelMAC+d, th, KeySize))
	return k
}

// ResumptionSecret is the secret a resumption ticket carries (PROFILE.md
// §P18): Expand(session key, "myclerk-v0 resumption" ‖ th, 32). It is never
// a traffic key.
func ResumptionSecret(sessionKey [KeySize]byte, th [32]byte) [KeySize]byte {
	var out [KeySize]byte
	copy(out[:], expand(sessionKey, labelResumption, th, KeySize))
	return out
}

// ResumedSessionKey is the session key of a resumed session: HKDF-SHA256(
// IKM = shared ‖ resumption secret, salt = nonce_i ‖ nonce_r, info =
// "myclerk-resume-v0", L = 32). The fresh ephemeral exchange keeps forward
// secrecy; the secret proves the ticket holder.
func ResumedSessionKey(shared, secret [KeySize]byte, nonceI, nonceR [8]byte) [KeySize]byte {
	ikm := append(shared[:len(shared):len(shared)], secret[:]...)
	salt := append(nonceI[:len(nonceI):len(nonceI)], nonceR[:]...)
	return hkdfKey(ikm, salt, []byte(resumeInfo))
}

// hkdfExtract and hkdfExpand are RFC 5869 with SHA-256; every derivation
// of the schedule goes through them (and the RFC 5869 A.1-A.3 known-answer
// tests do too). Lengths are constants <= 255*32, so they cannot fail.
func hkdfExtract(salt, ikm []byte) []byte {
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		panic("wire: hkdf.Extract: " + err.Error())
	}
	return prk
}

func hkdfExpand(prk, info []byte, n int) []byte {
	b, err := hkdf.Expand(sha256.New, prk, string(info), n)
	if err != nil {
		panic("wire: hkdf.Expand: " + err.Error())
	}
	return b
}

// hkdfKey is HKDF-SHA256(IKM, salt, info, 32).
func hkdfKey(ikm, salt, info []byte) [KeySize]byte {
	var k [KeySize]byte
	copy(k[:], hkdfExpand(hkdfExtract(salt, ikm), info, KeySize))
	return k
}

// RekeyTranscript binds an in-session re-handshake to the session it
// replaces (PROFILE.md §P38): SHA-256(old transcript hash ‖
// KEY_EXCHANGE_INIT payload ‖ KEY_EXCHANGE_RESPONSE payload).
func RekeyTranscript(old [32]byte, init, resp []byte) [32]byte {
	h := sha256.New()
	h.Write(old[:])
	h.Write(init)
	h.Write(resp)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func expand(prk [KeySize]byte, label string, th [32]byte, n int) []byte {
	return hkdfExpand(prk[:], append([]byte(label), th[:]...), n)
}
