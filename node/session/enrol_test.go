package session

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
)

func enrolOnce(t *testing.T, f *family, r *Responder, code identity.PairingCode, name string) (*identity.Identity, error, error) {
	t.Helper()
	return enrolAs(t, f, r, code, name, identity.RoleNode)
}

func enrolAs(t *testing.T, f *family, r *Responder, code identity.PairingCode, name string, role identity.Role) (*identity.Identity, error, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cc, sc := transport.Pipe()
	errc := make(chan error, 1)
	go func() { _, err := r.Accept(ctx, sc); errc <- err }()
	id, root, err := Enrol(ctx, cc, *f.config(nil, wire.Tier4), code, name, role)
	serr := <-errc
	if err == nil && !root.Equal(f.root.Public()) {
		t.Fatal("pinned a different root key")
	}
	return id, err, serr
}

func TestEnrolment(t *testing.T) {
	f := newFamily(t)
	codes := &identity.Codes{}
	code, _ := identity.NewPairingCode(rand.Reader)
	codes.Add(code, identity.RoleNode, "", time.Now())
	var enrolled []*identity.Certificate
	r := &Responder{Config: f.config(f.hub, wire.Tier4)}
	r.Enrol = (&Enroller{Root: f.root, Codes: codes, Enrolled: func(_ context.Context, c *identity.Certificate) error {
		enrolled = append(enrolled, c)
		return nil
	}}).Handle

	typed, _ := identity.ParsePairingCode(string(code))
	id, err, serr := enrolOnce(t, f, r, typed, "vacation-mini-pc")
	if err != nil || !IsEnrolled(serr) {
		t.Fatalf("enrol: %v / %v", err, serr)
	}
	if id.Cert.Name != "vacation-mini-pc" || len(enrolled) != 1 || enrolled[0].Node != id.Cert.Node {
		t.Fatalf("enrolled %+v", id.Cert)
	}
	// The new identity opens ordinary sessions.
	f2 := &family{root: f.root, hub: f.hub, node: id}
	p := mustConnect(t, f2, wire.Tier4, wire.Tier4)
	if p.server.Peer().Name != "vacation-mini-pc" {
		t.Error("new node not recognised")
	}
	// The code was single-use.
	if _, err, serr := enrolOnce(t, f, r, code, "again"); err == nil || !errors.Is(serr, identity.ErrPairing) {
		t.Errorf("reused code: %v / %v", err, serr)
	}
	// A wrong code.
	other, _ := identity.NewPairingCode(rand.Reader)
	codes.Add(code, identity.RoleNode, "", time.Now())
	if _, err, serr := enrolOnce(t, f, r, other, "guess"); err == nil || !errors.Is(serr, identity.ErrPairing) {
		t.Errorf("wrong code: %v / %v", err, serr)
	}
	// An expired code.
	codes.Add(other, identity.RoleNode, "", time.Now().Add(-identity.PairingLifetime-time.Second))
	if _, err, _ := enrolOnce(t, f, r, other, "late"); err == nil {
		t.Error("expired code accepted")
	}
}

func TestEnrolmentNeedsTheHandler(t *testing.T) {
	f := newFamily(t)
	code, _ := identity.NewPairingCode(rand.Reader)
	r := &Responder{Config: f.config(f.hub, wire.Tier4)} // no Enrol: a plain node
	if _, err, serr := enrolOnce(t, f, r, code, "x"); err == nil || serr == nil {
		t.Errorf("enrolment at a node without a handler: %v / %v", err, serr)
	}
}

// TestEnrolmentRefusals: a refused name or role, and an enrolment the hub
// could not record, are answered with ERROR of their code and no
// certificate; a refusal before the code is used leaves it valid. Among
// the names refused: another than the code is bound to, an admin's under
// a code bound to none, and a Matrix user ID (the bridge's to issue).
func TestEnrolmentRefusals(t *testing.T) {
	admin := func(name string) string {
		if strings.EqualFold(name, "boss") {
			return "boss"
		}
		return ""
	}
	taken := func(_ context.Context, name string) error {
		if strings.EqualFold(name, "admin") {
			return identity.ErrNameTaken
		}
		return nil
	}
	broken := func(context.Context, *identity.Certificate) error { return errors.New("database is locked") }
	conflict := func(context.Context, *identity.Certificate) error { return identity.ErrNameTaken } // lost a race
	for _, tc := range []struct {
		what      string
		name      string
		codeRole  identity.Role
		bound     string // the code's name
		enrolled  func(context.Context, *identity.Certificate) error
		want      wire.Code
		codeKept  bool
		wantInMsg string
	}{
		{"a taken name", "admin", identity.RoleNode, "", nil, wire.CodeConflict, true, "taken"},
		{"a taken name in another case", "ADMIN", identity.RoleNode, "", nil, wire.CodeConflict, true, "taken"},
		{"a federated hub's label", "nas@1a2b3c4d", identity.RoleNode, "", nil, wire.CodeBadRequest, true, "invalid name"},
		{"an escape sequence", "pi\x1b[2J", identity.RoleNode, "", nil, wire.CodeBadRequest, true, `\x1b`},
		{"a code for another role", "pi", identity.RoleClient, "", nil, wire.CodeForbidden, true, "role"},
		{"a code for another name", "mallory", identity.RoleClient, "laptop", nil, wire.CodeForbidden, true, "the pairing code is for another name"},
		{"a code for the name in another case", "Laptop", identity.RoleClient, "laptop", nil, wire.CodeForbidden, true, "for another name"},
		{"an admin's name with an unbound code", "boss", identity.RoleClient, "", nil, wire.CodeForbidden, true, "invite -name boss"},
		{"an admin's name in another case", "BOSS", identity.RoleNode, "", nil, wire.CodeForbidden, true, "invite -name boss"},
		{"a Matrix user ID", "@carol:example.com", identity.RoleClient, "", nil, wire.CodeBadRequest, true, "Matrix user ID"},
		{"an admin's Matrix user ID", "@boss:example.com", identity.RoleClient, "", nil, wire.CodeBadRequest, true, "Matrix user ID"},
		{"a store that fails", "pi", identity.RoleNode, "", broken, wire.CodeServiceUnavailable, false, "could not record"},
		{"a lost race for the name", "pi", identity.RoleNode, "", conflict, wire.CodeConflict, false, "taken"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			f := newFamily(t)
			codes := &identity.Codes{}
			code, _ := identity.NewPairingCode(rand.Reader)
			codes.Add(code, tc.codeRole, tc.bound, time.Now())
			enrolled := tc.enrolled
			if enrolled == nil {
				enrolled = func(context.Context, *identity.Certificate) error { return nil }
			}
			r := &Responder{Config: f.config(f.hub, wire.Tier4)}
			r.Enrol = (&Enroller{Root: f.root, Codes: codes, NameFree: taken, Admin: admin, Enrolled: enrolled}).Handle
			id, err, serr := enrolAs(t, f, r, code, tc.name, identity.RoleNode)
			if tc.codeRole == identity.RoleClient && tc.what != "a code for another role" {
				id, err, serr = enrolAs(t, f, r, code, tc.name, identity.RoleClient)
			}
			if id != nil || err == nil || serr == nil || IsEnrolled(serr) {
				t.Fatalf("enrolled %q: %v / %v", tc.name, err, serr)
			}
			if wire.CodeOf(serr) != tc.want {
				t.Errorf("hub's error %v has code %v, want %v", serr, wire.CodeOf(serr), tc.want)
			}
			if !errors.Is(err, ErrPeerError) || !strings.Contains(err.Error(), tc.want.String()) || !strings.Contains(err.Error(), tc.wantInMsg) {
				t.Errorf("the node was told %v, want %v with %q", err, tc.want, tc.wantInMsg)
			}
			if kept := codes.Pending(time.Now()) == 1; kept != tc.codeKept {
				t.Errorf("code kept: %v, want %v", kept, tc.codeKept)
			}
			if tc.codeKept { // the person retries with another name
				if id, err, serr := enrolAs(t, f, r, code, "laptop", tc.codeRole); err != nil || !IsEnrolled(serr) || id.Cert.Name != "laptop" {
					t.Errorf("retry: %v / %v", err, serr)
				}
			}
		})
	}
}

// TestBoundCodeEnrolsItsName: a code bound to an admin's name enrols that
// name, and only it.
func TestBoundCodeEnrolsItsName(t *testing.T) {
	f := newFamily(t)
	codes := &identity.Codes{}
	code, _ := identity.NewPairingCode(rand.Reader)
	codes.Add(code, identity.RoleClient, "boss", time.Now())
	r := &Responder{Config: f.config(f.hub, wire.Tier4)}
	r.Enrol = (&Enroller{Root: f.root, Codes: codes, Admin: func(name string) string { return map[string]string{"boss": "boss"}[name] }}).Handle
	if _, err, _ := enrolAs(t, f, r, code, "guest", identity.RoleClient); !errors.Is(err, ErrPeerError) {
		t.Errorf("another name: %v", err)
	}
	id, err, serr := enrolAs(t, f, r, code, "boss", identity.RoleClient)
	if err != nil || !IsEnrolled(serr) || id.Cert.Name != "boss" || id.Cert.Role != identity.RoleClient {
		t.Fatalf("the code's own name: %v / %v", err, serr)
	}
	if codes.Pending(time.Now()) != 0 {
		t.Error("the code is still usable after it enrolled its name")
	}
}

// TestPeerRoles: a node dialing its hub accepts only a hub; the hub,
// asking nothing of roles, accepts the node.
func TestPeerRoles(t *testing.T) {
	f := newFamily(t)
	impostor := member(t, f.root, identity.RoleClient, "nas")
	for _, tc := range []struct {
		what   string
		server *identity.Identity
		roles  []identity.Role
		ok     bool
	}{
		{"the hub", f.hub, []identity.Role{identity.RoleHub}, true},
		{"a client posing as the hub", impostor, []identity.Role{identity.RoleHub}, false},
		{"a node", member(t, f.root, identity.RoleNode, "pi2"), []identity.Role{identity.RoleHub}, false},
		{"anyone, when no role is asked", impostor, nil, true},
	} {
		ccfg := f.config(f.node, wire.Tier3)
		ccfg.PeerRoles = tc.roles
		cc, sc := transport.Pipe()
		_, cerr, _ := connect(t, cc, sc, ccfg, &Responder{Config: f.config(tc.server, wire.Tier3)})
		if tc.ok && cerr != nil {
			t.Errorf("%s: %v", tc.what, cerr)
		}
		if !tc.ok && !errors.Is(cerr, ErrPeerRole) {
			t.Errorf("%s: got %v, want ErrPeerRole", tc.what, cerr)
		}
	}
}
