package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
)

var now = time.Unix(1_767_225_600, 0)

// det is a deterministic random source for tests.
type det struct{ n byte }

func (d *det) Read(p []byte) (int, error) {
	for i := range p {
		d.n++
		p[i] = d.n*37 + 11
	}
	return len(p), nil
}

func setup(t *testing.T) (*Root, *Identity) {
	t.Helper()
	r := &det{}
	root, err := NewRoot(r)
	if err != nil {
		t.Fatal(err)
	}
	priv, id, err := NewNodeKey(r)
	if err != nil {
		t.Fatal(err)
	}
	c, err := root.Issue(id, RoleNode, "grandparents-pi", priv.Public().(ed25519.PublicKey), now, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return root, &Identity{Cert: c, Private: priv}
}

func TestCertificateRoundTrip(t *testing.T) {
	root, id := setup(t)
	b, err := id.Cert.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(root.Public(), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if c.Name != "grandparents-pi" || c.Role != RoleNode || c.Node != id.Cert.Node || c.Family != root.Family() {
		t.Errorf("fields %+v", c)
	}
	// Every byte matters.
	for i := range b {
		x := bytes.Clone(b)
		x[i] ^= 0x40
		c, err := ParseCertificate(x)
		if err == nil {
			err = c.Verify(root.Public(), now.Add(time.Hour))
		}
		if !errors.Is(err, ErrCertificate) {
			t.Fatalf("byte %d changed: %v", i, err)
		}
	}
	for _, bad := range [][]byte{nil, b[:len(b)-1], append(bytes.Clone(b), 0), []byte("MCC1" + string(b[4:]))} {
		if _, err := ParseCertificate(bad); !errors.Is(err, ErrCertificate) {
			t.Errorf("malformed certificate accepted: %v", err)
		}
	}
}

func TestCertificateVerifyRejects(t *testing.T) {
	root, id := setup(t)
	other, _ := NewRoot(&det{n: 99})
	if err := id.Cert.Verify(other.Public(), now); !errors.Is(err, ErrCertificate) {
		t.Errorf("other family: %v", err)
	}
	if err := id.Cert.Verify(root.Public(), now.Add(366*24*time.Hour)); !errors.Is(err, ErrCertificate) {
		t.Errorf("expired: %v", err)
	}
	if err := id.Cert.Verify(root.Public(), now.Add(-time.Hour)); !errors.Is(err, ErrCertificate) {
		t.Errorf("not yet valid: %v", err)
	}
	if _, err := root.Issue(NodeID{}, RoleNode, strings.Repeat("x", 65), id.Cert.PublicKey, now, time.Hour); err == nil {
		t.Error("65-byte name issued")
	}
	if _, err := root.Issue(NodeID{}, RoleNode, "", id.Cert.PublicKey, now, time.Hour); err == nil {
		t.Error("empty name issued")
	}
}

func TestProof(t *testing.T) {
	root, id := setup(t)
	th := sha256.Sum256([]byte("transcript"))
	cert, _ := id.Cert.Marshal()
	sig := id.Prove(wire.InitiatorToResponder, th)
	c, err := VerifyPeer(root.Public(), cert, sig, wire.InitiatorToResponder, th, now, nil)
	if err != nil || c.Name != "grandparents-pi" {
		t.Fatalf("%v", err)
	}
	other := sha256.Sum256([]byte("another session"))
	for name, f := range map[string]func() error{
		"other session": func() error {
			_, err := VerifyPeer(root.Public(), cert, sig, wire.InitiatorToResponder, other, now, nil)
			return err
		},
		"other direction": func() error {
			_, err := VerifyPeer(root.Public(), cert, sig, wire.ResponderToInitiator, th, now, nil)
			return err
		},
		"short signature": func() error {
			_, err := VerifyPeer(root.Public(), cert, sig[:10], wire.InitiatorToResponder, th, now, nil)
			return err
		},
	} {
		if err := f(); !errors.Is(err, ErrProof) {
			t.Errorf("%s: %v", name, err)
		}
	}
	revoked := func(n NodeID) bool { return n == id.Cert.Node }
	if _, err := VerifyPeer(root.Public(), cert, sig, wire.InitiatorToResponder, th, now, revoked); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked: %v", err)
	}
}

func TestPairingCode(t *testing.T) {
	c, err := NewPairingCode(&det{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 19 || strings.Count(string(c), "-") != 3 {
		t.Fatalf("code %q", c)
	}
	typed := strings.ToLower(strings.ReplaceAll(string(c), "-", " "))
	typed = strings.NewReplacer("1", "l", "0", "o").Replace(typed)
	p, err := ParsePairingCode(typed)
	if err != nil || p != c {
		t.Fatalf("typed %q parsed to %q (%v), want %q", typed, p, err, c)
	}
	for _, bad := range []string{"", "ABCD", "ABCD-EFGH-JKMN-PQRS-T", "ABCD-EFGH-JKMN-PQRU", "ABCD-EFGH-JKMN-PQR!"} {
		if _, err := ParsePairingCode(bad); !errors.Is(err, ErrPairing) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	th := sha256.Sum256([]byte("t"))
	proof := c.Proof(wire.InitiatorToResponder, th, []byte("key"), []byte("name"))
	if !c.Check(proof, wire.InitiatorToResponder, th, []byte("key"), []byte("name")) {
		t.Fatal("own proof refused")
	}
	other, _ := NewPairingCode(&det{n: 5})
	for name, ok := range map[string]bool{
		"other code":      other.Check(proof, wire.InitiatorToResponder, th, []byte("key"), []byte("name")),
		"other direction": c.Check(proof, wire.ResponderToInitiator, th, []byte("key"), []byte("name")),
		"shifted fields":  c.Check(proof, wire.InitiatorToResponder, th, []byte("keyn"), []byte("ame")),
		"other session":   c.Check(proof, wire.InitiatorToResponder, sha256.Sum256(nil), []byte("key"), []byte("name")),
	} {
		if ok {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestFederationCode(t *testing.T) {
	a := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey)
	b := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)).Public().(ed25519.PublicKey)
	th := [32]byte{7}
	code := FederationCode(th, a, b)
	// The vector: recompute it from the formula in PROFILE.md §P40.
	lo, hi := a, b
	if bytes.Compare(lo, hi) > 0 {
		lo, hi = hi, lo
	}
	sum := sha256.Sum256(append(append(append([]byte("myclerk federation code v1"), th[:]...), lo...), hi...))
	n := binary.BigEndian.Uint32(sum[:4]) % 1_000_000
	if want := fmt.Sprintf("%03d %03d", n/1000, n%1000); code != want {
		t.Fatalf("code %q, want %q", code, want)
	}
	for _, tc := range []struct {
		name  string
		other string
		same  bool
	}{
		{"roots swapped", FederationCode(th, b, a), true},
		{"another transcript", FederationCode([32]byte{8}, a, b), false},
		{"another root", FederationCode(th, a, a), false},
	} {
		if (tc.other == code) != tc.same {
			t.Errorf("%s: %q vs %q", tc.name, tc.other, code)
		}
	}
	if len(code) != 7 || code[3] != ' ' {
		t.Errorf("code %q is not NNN NNN", code)
	}
}
