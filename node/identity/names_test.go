package identity

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		role Role
		ok   bool
	}{
		{"pi", RoleNode, true},
		{"grandparents-pi", RoleNode, true},
		{"Laptop_2", RoleClient, true},
		{"0", RoleHub, true},
		{strings.Repeat("a", MaxPlainName), RoleNode, true},
		{strings.Repeat("a", MaxPlainName+1), RoleNode, false},
		{"", RoleNode, false},
		{"-pi", RoleNode, false},
		{"_pi", RoleNode, false},
		{"pi/serial0", RoleNode, false},
		{"nas@1a2b3c4d", RoleNode, false}, // a federated hub's label
		{"nas@1a2b3c4d", RoleClient, false},
		{"my pi", RoleNode, false},
		{"pi.local", RoleNode, false},
		{"admin\x1b[2J", RoleClient, false},
		{"adm\u00efn", RoleClient, false},
		{"pi\n", RoleNode, false},
		{"@alice:example.com", RoleClient, true},
		{"@alice:example.com:8448", RoleClient, true},
		{"@alice:[::1]:8448", RoleClient, true},
		{"@alice:1.2.3.4", RoleClient, true},
		{"@Old.User=x/y+z:example.com", RoleClient, true}, // historical localparts
		{"@alice:example.com", RoleNode, false},           // Matrix IDs name clients only
		{"@alice:example.com", RoleHub, false},
		{"@alice", RoleClient, false},
		{"@:example.com", RoleClient, false},
		{"@alice:", RoleClient, false},
		{"@al ice:example.com", RoleClient, false},
		{"@alice\x1b:example.com", RoleClient, false},
		{"@alice:exa_mple.com", RoleClient, false},
		{"@alice:example.com@1a2b3c4d", RoleClient, false},
		{"@alice:example.com:port", RoleClient, false},
		{"@alice:example.com:123456", RoleClient, false},
		{"@alice:[::1", RoleClient, false},
		{"@alice:[zz]", RoleClient, false},
		{"@a:" + strings.Repeat("b", MaxMatrixName-3), RoleClient, true},
		{"@a:" + strings.Repeat("b", MaxMatrixName-2), RoleClient, false},
	} {
		err := CheckName(tc.name, tc.role)
		if tc.ok && err != nil {
			t.Errorf("CheckName(%q, %v) = %v, want nil", tc.name, tc.role, err)
		}
		if !tc.ok && !errors.Is(err, ErrName) {
			t.Errorf("CheckName(%q, %v) = %v, want ErrName", tc.name, tc.role, err)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\x1b\n") {
			t.Errorf("CheckName(%q): the error carries the raw name: %q", tc.name, err)
		}
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"pi", "pi"},
		{"@alice:example.com", "@alice:example.com"},
		{"a\x1b[31mred", `a\x1b[31mred`},
		{"tab\there", `tab\x09here`},
		{`back\slash`, `back\\slash`},
		{"\u00e9", `\xc3\xa9`},
		{"del\x7f", `del\x7f`},
	} {
		if got := Printable(tc.in); got != tc.want {
			t.Errorf("Printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestNamesInCertificates: Issue refuses an invalid name, and a
// certificate that carries one (signed by the root all the same) is
// refused when read.
func TestNamesInCertificates(t *testing.T) {
	root, id := setup(t)
	for _, tc := range []struct {
		name string
		role Role
	}{
		{"evil\x1b]0;owned\x07", RoleClient},
		{"nas@1a2b3c4d", RoleNode},
		{"@alice:example.com", RoleNode},
		{"pi/serial0", RoleNode},
	} {
		if _, err := root.Issue(NodeID{1}, tc.role, tc.name, id.Cert.PublicKey, now, time.Hour); !errors.Is(err, ErrName) {
			t.Errorf("Issue(%q, %v) = %v, want ErrName", tc.name, tc.role, err)
		}
		c := &Certificate{Family: root.Family(), Node: NodeID{1}, Role: tc.role, Name: tc.name, PublicKey: id.Cert.PublicKey,
			IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
		b, err := c.signed()
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, ed25519.Sign(root.Private, b)...)
		if _, err := ParseCertificate(b); !errors.Is(err, ErrCertificate) || !errors.Is(err, ErrName) {
			t.Errorf("ParseCertificate with name %q = %v, want ErrCertificate and ErrName", tc.name, err)
		}
		if _, err := VerifyPeer(root.Public(), b, id.Prove(0, [32]byte{}), 0, [32]byte{}, now, nil); err == nil {
			t.Errorf("VerifyPeer accepted a certificate named %q", tc.name)
		}
	}
	long := "@a:" + strings.Repeat("b", 60) + ".example.com"
	c, err := root.Issue(NodeID{2}, RoleClient, long, id.Cert.PublicKey, now, time.Hour)
	if err != nil {
		t.Fatalf("Issue of a %d-byte Matrix ID: %v", len(long), err)
	}
	b, err := c.Marshal()
	if err == nil {
		_, err = ParseCertificate(b)
	}
	if err != nil {
		t.Errorf("a %d-byte Matrix ID does not round-trip: %v", len(long), err)
	}
}
