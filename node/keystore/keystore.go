// Package keystore keeps a node's keys on disk: the family root key (on
// the hub), the node's identity key and certificate, and the pinned family
// root public key. Private key files are written with mode 0600 in a 0700
// directory and refused when others can read them, as ssh does.
package keystore

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/myclerk/myclerk-bridge/node/identity"
)

// File names inside a key directory.
const (
	RootKeyFile  = "family-root.key" // hub only: the family root private key
	RootPubFile  = "family-root.pub" // every node: the pinned root public key
	NodeKeyFile  = "node.key"        // the node's identity private key
	NodeCertFile = "node.crt"        // the node's certificate
)

const (
	pemPrivate = "PRIVATE KEY"
	pemRootPub = "MYCLERK FAMILY ROOT KEY"
	pemCert    = "MYCLERK NODE CERTIFICATE"
)

// ErrNotFound means the directory holds no such key yet.
var ErrNotFound = errors.New("keystore: not found")

// Dir is a key directory.
type Dir string

func (d Dir) path(name string) string { return filepath.Join(string(d), name) }

// write stores data atomically with the given mode.
func (d Dir) write(name string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("failed to create key directory %s: %w", d, err)
	}
	tmp, err := os.CreateTemp(string(d), "."+name+".*")
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", d.path(name), err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write %s: %w", d.path(name), err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write %s: %w", d.path(name), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write %s: %w", d.path(name), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", d.path(name), err)
	}
	if err := os.Rename(tmp.Name(), d.path(name)); err != nil {
		return fmt.Errorf("failed to write %s: %w", d.path(name), err)
	}
	return nil
}

// read returns a file's contents; private files must not be readable by
// group or others.
func (d Dir) read(name string, private bool) ([]byte, error) {
	p := d.path(name)
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, p)
	}
	if err != nil {
		return nil, err
	}
	if private && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keystore: %s has mode %04o; a private key must be readable by its owner only (chmod 600 %s)", p, st.Mode().Perm(), p)
	}
	return os.ReadFile(p)
}

func decodePEM(b []byte, typ, file string) ([]byte, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != typ {
		return nil, fmt.Errorf("keystore: %s does not hold a %s PEM block", file, typ)
	}
	return blk.Bytes, nil
}

func (d Dir) writeKey(name string, k ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	return d.write(name, pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: der}), 0o600)
}

func (d Dir) readKey(name string) (ed25519.PrivateKey, error) {
	b, err := d.read(name, true)
	if err != nil {
		return nil, err
	}
	der, err := decodePEM(b, pemPrivate, d.path(name))
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keystore: %s: %w", d.path(name), err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("keystore: %s is not an Ed25519 key", d.path(name))
	}
	return ek, nil
}

// SaveRoot stores the family root key (hub) and its public half.
func (d Dir) SaveRoot(r *identity.Root) error {
	if err := d.writeKey(RootKeyFile, r.Private); err != nil {
		return err
	}
	return d.SaveRootPublic(r.Public())
}

// LoadRoot reads the family root key.
func (d Dir) LoadRoot() (*identity.Root, error) {
	k, err := d.readKey(RootKeyFile)
	if err != nil {
		return nil, err
	}
	return &identity.Root{Private: k}, nil
}

// SaveRootPublic pins the family root public key.
func (d Dir) SaveRootPublic(pub ed25519.PublicKey) error {
	return d.write(RootPubFile, pem.EncodeToMemory(&pem.Block{Type: pemRootPub, Bytes: pub}), 0o644)
}

// LoadRootPublic reads the pinned family root public key.
func (d Dir) LoadRootPublic() (ed25519.PublicKey, error) {
	b, err := d.read(RootPubFile, false)
	if err != nil {
		return nil, err
	}
	raw, err := decodePEM(b, pemRootPub, d.path(RootPubFile))
	if err != nil {
		return nil, err
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("keystore: %s holds %d bytes, want %d", d.path(RootPubFile), len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

// SaveIdentity stores the node's key and certificate.
func (d Dir) SaveIdentity(id *identity.Identity) error {
	cert, err := id.Cert.Marshal()
	if err != nil {
		return err
	}
	if err := d.writeKey(NodeKeyFile, id.Private); err != nil {
		return err
	}
	return d.write(NodeCertFile, pem.EncodeToMemory(&pem.Block{Type: pemCert, Bytes: cert}), 0o644)
}

// LoadIdentity reads the node's key and certificate and checks that they
// belong together.
func (d Dir) LoadIdentity() (*identity.Identity, error) {
	k, err := d.readKey(NodeKeyFile)
	if err != nil {
		return nil, err
	}
	b, err := d.read(NodeCertFile, false)
	if err != nil {
		return nil, err
	}
	raw, err := decodePEM(b, pemCert, d.path(NodeCertFile))
	if err != nil {
		return nil, err
	}
	c, err := identity.ParseCertificate(raw)
	if err != nil {
		return nil, fmt.Errorf("keystore: %s: %w", d.path(NodeCertFile), err)
	}
	if !c.PublicKey.Equal(k.Public()) {
		return nil, fmt.Errorf("keystore: %s is not the certificate of %s", d.path(NodeCertFile), d.path(NodeKeyFile))
	}
	return &identity.Identity{Cert: c, Private: k}, nil
}
