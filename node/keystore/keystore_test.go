package keystore

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
)

func TestRoundTripAndPermissions(t *testing.T) {
	d := Dir(filepath.Join(t.TempDir(), "keys"))
	if _, err := d.LoadIdentity(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty dir: %v", err)
	}
	root, _ := identity.NewRoot(rand.Reader)
	priv, nid, _ := identity.NewNodeKey(rand.Reader)
	c, _ := root.Issue(nid, identity.RoleHub, "nas", priv.Public().(ed25519.PublicKey), time.Now(), time.Hour)
	if err := d.SaveRoot(root); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveIdentity(&identity.Identity{Cert: c, Private: priv}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{RootKeyFile: 0o600, NodeKeyFile: 0o600, RootPubFile: 0o644, NodeCertFile: 0o644} {
		st, err := os.Stat(filepath.Join(string(d), name))
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %04o", name, st.Mode().Perm(), err, want)
		}
	}
	if st, _ := os.Stat(string(d)); st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %04o", st.Mode().Perm())
	}
	r2, err := d.LoadRoot()
	if err != nil || !r2.Public().Equal(root.Public()) {
		t.Fatal(err)
	}
	pub, err := d.LoadRootPublic()
	if err != nil || !pub.Equal(root.Public()) {
		t.Fatal(err)
	}
	id, err := d.LoadIdentity()
	if err != nil || id.Cert.Name != "nas" || !id.Private.Equal(priv) {
		t.Fatal(err)
	}
	// A key readable by others is refused, naming the file and the fix.
	os.Chmod(filepath.Join(string(d), NodeKeyFile), 0o644)
	if _, err := d.LoadIdentity(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: %v", err)
	}
	os.Chmod(filepath.Join(string(d), NodeKeyFile), 0o600)
	// A certificate of another key is refused.
	other, _, _ := identity.NewNodeKey(rand.Reader)
	c2, _ := root.Issue(nid, identity.RoleHub, "nas", other.Public().(ed25519.PublicKey), time.Now(), time.Hour)
	d.SaveIdentity(&identity.Identity{Cert: c2, Private: other})
	os.WriteFile(filepath.Join(string(d), NodeKeyFile), mustRead(t, filepath.Join(string(d), NodeKeyFile)), 0o600)
	d.writeKey(NodeKeyFile, priv)
	if _, err := d.LoadIdentity(); err == nil {
		t.Error("mismatched key and certificate accepted")
	}
	// Garbage is refused with the file's name.
	os.WriteFile(filepath.Join(string(d), RootPubFile), []byte("junk"), 0o644)
	if _, err := d.LoadRootPublic(); err == nil || !strings.Contains(err.Error(), RootPubFile) {
		t.Errorf("garbage root key: %v", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
