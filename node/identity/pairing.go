package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/myclerk/myclerk-bridge/wire"
)

// PairingCode is a one-time enrolment secret the hub shows a person, who
// types it on the new node: 16 symbols of Crockford's base32 (80 bits),
// written XXXX-XXXX-XXXX-XXXX (PROFILE.md §P35).
type PairingCode string

const (
	crockford   = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	codeSymbols = 16
)

// NewPairingCode draws a code from rand.
func NewPairingCode(rand io.Reader) (PairingCode, error) {
	var b [codeSymbols]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fmt.Errorf("failed to make a pairing code: %w", err)
	}
	var s strings.Builder
	for i, x := range b {
		if i > 0 && i%4 == 0 {
			s.WriteByte('-')
		}
		s.WriteByte(crockford[x&31])
	}
	return PairingCode(s.String()), nil
}

// ParsePairingCode reads a code as a person may type it: any case, with or
// without dashes and spaces, I and L for 1, O for 0.
func ParsePairingCode(s string) (PairingCode, error) {
	var out strings.Builder
	n := 0
	for _, r := range strings.ToUpper(s) {
		switch r {
		case '-', ' ':
			continue
		case 'I', 'L':
			r = '1'
		case 'O':
			r = '0'
		}
		if !strings.ContainsRune(crockford, r) || n == codeSymbols {
			return "", fmt.Errorf("%w: want %d symbols of 0-9 and A-Z without I, L, O, U", ErrPairing, codeSymbols)
		}
		if n > 0 && n%4 == 0 {
			out.WriteByte('-')
		}
		out.WriteRune(r)
		n++
	}
	if n != codeSymbols {
		return "", fmt.Errorf("%w: %d symbols, want %d", ErrPairing, n, codeSymbols)
	}
	return PairingCode(out.String()), nil
}

// key is HKDF-SHA256(IKM = the code's 16 symbols, salt = "myclerk-v0 pairing").
func (c PairingCode) key() []byte {
	k, err := hkdf.Key(sha256.New, []byte(strings.ReplaceAll(string(c), "-", "")), []byte("myclerk-v0 pairing"), "", 32)
	if err != nil {
		panic("identity: hkdf.Key: " + err.Error()) // constant sizes
	}
	return k
}

// Proof is HMAC-SHA256(key, "myclerk-v0 enrol " ‖ direction ‖ transcript
// hash ‖ data…): it shows the other end of this session holds the code,
// and binds what it sends (a public key and name, or a certificate and
// root key) to the session.
func (c PairingCode) Proof(dir wire.Direction, th [32]byte, data ...[]byte) []byte {
	m := hmac.New(sha256.New, c.key())
	m.Write([]byte("myclerk-v0 enrol " + dir.String()))
	m.Write(th[:])
	for _, d := range data {
		var n [2]byte
		n[0], n[1] = byte(len(d)>>8), byte(len(d))
		m.Write(n[:]) // length-prefixed, so fields cannot shift into each other
		m.Write(d)
	}
	return m.Sum(nil)
}

// Check reports, in constant time, whether proof is c's proof of data.
func (c PairingCode) Check(proof []byte, dir wire.Direction, th [32]byte, data ...[]byte) bool {
	return hmac.Equal(proof, c.Proof(dir, th, data...))
}

// FederationCode is the code the people of two federating families
// compare (PROFILE.md §P40): six digits from SHA-256 over a label, the
// session's handshake transcript hash and both families' root keys in
// byte order. Both bridges of one session derive the same code; a man in
// the middle, who must run two sessions with two transcripts (and could
// not forge either root's certificates), shows each side another.
func FederationCode(th [32]byte, a, b ed25519.PublicKey) string {
	if bytes.Compare(a, b) > 0 {
		a, b = b, a
	}
	h := sha256.New()
	h.Write([]byte("myclerk federation code v1"))
	h.Write(th[:])
	h.Write(a)
	h.Write(b)
	n := binary.BigEndian.Uint32(h.Sum(nil)[:4]) % 1_000_000
	return fmt.Sprintf("%03d %03d", n/1000, n%1000)
}
