// Package identity is the family key hierarchy the draft names but never
// defines (PROFILE.md §P7, §P34): a family root key (Ed25519) certifies the
// identity key of every node; nodes prove their identity in each session by
// signing its transcript hash; a one-time pairing code enrols a new node.
//
// The package is pure: keys, clocks and randomness are parameters, and
// nothing is read from or written to disk here (see package keystore).
package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/myclerk/myclerk-bridge/wire"
)

// IDSize is the size of family and node identifiers.
const IDSize = 16

// FamilyID identifies a family: the first 16 bytes of
// SHA-256("myclerk-v0 family" ‖ root public key).
type FamilyID [IDSize]byte

// NodeID identifies a node within its family: 16 random bytes chosen at
// enrolment.
type NodeID [IDSize]byte

func (id FamilyID) String() string { return fmt.Sprintf("%x", id[:]) }
func (id NodeID) String() string   { return fmt.Sprintf("%x", id[:]) }

// Role is what a certificate lets its node do.
type Role uint8

const (
	RoleHub    Role = 1 // holds the registry, relays frames, runs the Matrix bridge
	RoleNode   Role = 2 // announces devices
	RoleClient Role = 3 // uses devices (phones, the client tool)
)

func (r Role) String() string {
	switch r {
	case RoleHub:
		return "hub"
	case RoleNode:
		return "node"
	case RoleClient:
		return "client"
	}
	return fmt.Sprintf("role-%d", uint8(r))
}

// ParseRole reads "hub", "node" or "client".
func ParseRole(s string) (Role, error) {
	for _, r := range []Role{RoleHub, RoleNode, RoleClient} {
		if r.String() == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("role %q: want hub, node or client", s)
}

// Errors. Verification failures are one value towards peers; the wrapped
// text says more for the log.
var (
	ErrCertificate = &wire.Error{Code: wire.CodeUnauthorized, Reason: "invalid certificate"}
	ErrProof       = &wire.Error{Code: wire.CodeUnauthorized, Reason: "invalid identity proof"}
	ErrRevoked     = &wire.Error{Code: wire.CodeUnauthorized, Reason: "node revoked"}
	ErrPairing     = &wire.Error{Code: wire.CodeUnauthorized, Reason: "invalid or expired pairing code"}
)

// Root is a family's root key pair. Its private half stays on the hub.
type Root struct {
	Private ed25519.PrivateKey
}

// NewRoot makes a root key from 32 bytes of rand.
func NewRoot(rand io.Reader) (*Root, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("failed to make the family root key: %w", err)
	}
	return &Root{Private: ed25519.NewKeyFromSeed(seed)}, nil
}

// Public returns the root public key, the family's trust anchor.
func (r *Root) Public() ed25519.PublicKey { return r.Private.Public().(ed25519.PublicKey) }

// Family returns the family ID.
func (r *Root) Family() FamilyID { return FamilyOf(r.Public()) }

// FamilyOf returns the ID of the family whose root public key is pub.
func FamilyOf(pub ed25519.PublicKey) FamilyID {
	h := sha256.New()
	h.Write([]byte("myclerk-v0 family"))
	h.Write(pub)
	var id FamilyID
	copy(id[:], h.Sum(nil))
	return id
}

// Certificate binds a node's identity key to its family.
//
//	"MCC0" ‖ family-id (16) ‖ node-id (16) ‖ role u8 ‖ name-len u8 ‖ name ‖
//	public-key (32) ‖ issued-at u64 ‖ expires-at u64 ‖ signature (64)
//
// The signature is the family root's Ed25519 signature over everything
// before it. Names follow CheckName (1-255 bytes; the length is a byte).
type Certificate struct {
	Family    FamilyID
	Node      NodeID
	Role      Role
	Name      string
	PublicKey ed25519.PublicKey
	IssuedAt  time.Time
	ExpiresAt time.Time
	Signature []byte
}

const (
	certMagic   = "MCC0"
	maxName     = MaxMatrixName
	certFixed   = 4 + IDSize + IDSize + 1 + 1 + ed25519.PublicKeySize + 8 + 8
	MaxCertSize = certFixed + maxName + ed25519.SignatureSize
)

func (c *Certificate) signed() ([]byte, error) {
	if n := len(c.Name); n == 0 || n > maxName || !utf8.ValidString(c.Name) {
		return nil, fmt.Errorf("%w: name must be 1-%d bytes of UTF-8", ErrCertificate, maxName)
	}
	if len(c.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key of %d bytes", ErrCertificate, len(c.PublicKey))
	}
	b := make([]byte, 0, MaxCertSize)
	b = append(b, certMagic...)
	b = append(b, c.Family[:]...)
	b = append(b, c.Node[:]...)
	b = append(b, byte(c.Role), byte(len(c.Name)))
	b = append(b, c.Name...)
	b = append(b, c.PublicKey...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.IssuedAt.Unix()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.ExpiresAt.Unix()))
	return b, nil
}

// Issue signs a certificate for a node key with the root key. The name
// must pass CheckName for the role.
func (r *Root) Issue(node NodeID, role Role, name string, pub ed25519.PublicKey, now time.Time, lifetime time.Duration) (*Certificate, error) {
	if err := CheckName(name, role); err != nil {
		return nil, err
	}
	c := &Certificate{Family: r.Family(), Node: node, Role: role, Name: name, PublicKey: pub,
		IssuedAt: now.Truncate(time.Second), ExpiresAt: now.Add(lifetime).Truncate(time.Second)}
	b, err := c.signed()
	if err != nil {
		return nil, err
	}
	c.Signature = ed25519.Sign(r.Private, b)
	return c, nil
}

// Marshal returns the certificate's encoding.
func (c *Certificate) Marshal() ([]byte, error) {
	b, err := c.signed()
	if err != nil {
		return nil, err
	}
	if len(c.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: unsigned", ErrCertificate)
	}
	return append(b, c.Signature...), nil
}

// ParseCertificate decodes a certificate strictly; a name that fails
// CheckName is refused (ErrCertificate). It does not verify it.
func ParseCertificate(b []byte) (*Certificate, error) {
	if len(b) < certFixed+ed25519.SignatureSize+1 || len(b) > MaxCertSize || !bytes.HasPrefix(b, []byte(certMagic)) {
		return nil, fmt.Errorf("%w: %d bytes or bad magic", ErrCertificate, len(b))
	}
	c := &Certificate{}
	p := b[4:]
	copy(c.Family[:], p)
	copy(c.Node[:], p[IDSize:])
	p = p[2*IDSize:]
	c.Role, p = Role(p[0]), p[1:]
	n := int(p[0])
	p = p[1:]
	if n == 0 || n > maxName || len(b) != certFixed+n+ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: name length %d does not fit", ErrCertificate, n)
	}
	c.Name, p = string(p[:n]), p[n:]
	if err := CheckName(c.Name, c.Role); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCertificate, err)
	}
	c.PublicKey, p = bytes.Clone(p[:ed25519.PublicKeySize]), p[ed25519.PublicKeySize:]
	c.IssuedAt = time.Unix(int64(binary.BigEndian.Uint64(p)), 0)
	c.ExpiresAt = time.Unix(int64(binary.BigEndian.Uint64(p[8:])), 0)
	c.Signature = bytes.Clone(p[16:])
	return c, nil
}

// Verify checks the certificate against the family's root public key at
// time now: family, signature, validity period.
func (c *Certificate) Verify(root ed25519.PublicKey, now time.Time) error {
	if c.Family != FamilyOf(root) {
		return fmt.Errorf("%w: family %s is not %s", ErrCertificate, c.Family, FamilyOf(root))
	}
	b, err := c.signed()
	if err != nil {
		return err
	}
	if !ed25519.Verify(root, b, c.Signature) {
		return fmt.Errorf("%w: bad signature", ErrCertificate)
	}
	if now.Before(c.IssuedAt.Add(-wire.TimestampSkew)) || !now.Before(c.ExpiresAt) {
		return fmt.Errorf("%w: valid %s to %s", ErrCertificate, c.IssuedAt.UTC().Format(time.RFC3339), c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// Identity is a node's certificate and private key.
type Identity struct {
	Cert    *Certificate
	Private ed25519.PrivateKey
}

// NewNodeKey makes a node identity key pair and a node ID from rand.
func NewNodeKey(rand io.Reader) (ed25519.PrivateKey, NodeID, error) {
	var seed [ed25519.SeedSize + IDSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, NodeID{}, fmt.Errorf("failed to make a node key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed[:ed25519.SeedSize]), NodeID(seed[ed25519.SeedSize:]), nil
}

// proofMessage is what a node signs to prove its identity in a session:
// "myclerk-v0 auth " ‖ direction ‖ transcript hash.
func proofMessage(dir wire.Direction, th [32]byte) []byte {
	return append([]byte("myclerk-v0 auth "+dir.String()), th[:]...)
}

// Prove signs the session's transcript hash for the direction this node
// sends in.
func (id *Identity) Prove(dir wire.Direction, th [32]byte) []byte {
	return ed25519.Sign(id.Private, proofMessage(dir, th))
}

// VerifyPeer checks a peer's certificate and proof: the certificate is
// valid for the family root at now, the node is not revoked, and the
// signature covers this session's transcript hash in the peer's direction.
func VerifyPeer(root ed25519.PublicKey, certBytes, sig []byte, dir wire.Direction, th [32]byte, now time.Time, revoked func(NodeID) bool) (*Certificate, error) {
	c, err := ParseCertificate(certBytes)
	if err != nil {
		return nil, err
	}
	if err := c.Verify(root, now); err != nil {
		return nil, err
	}
	if revoked != nil && revoked(c.Node) {
		return nil, fmt.Errorf("%w: %s (%s)", ErrRevoked, c.Name, c.Node)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(c.PublicKey, proofMessage(dir, th), sig) {
		return nil, fmt.Errorf("%w: signature of %s does not cover this session", ErrProof, c.Name)
	}
	return c, nil
}

// IsZero reports whether id is the zero ID (no node).
func (id NodeID) IsZero() bool { return id == NodeID{} }
