package session

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
)

func enrolOnce(t *testing.T, f *family, r *Responder, code identity.PairingCode, name string) (*identity.Identity, error, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cc, sc := transport.Pipe()
	errc := make(chan error, 1)
	go func() { _, err := r.Accept(ctx, sc); errc <- err }()
	id, root, err := Enrol(ctx, cc, *f.config(nil, wire.Tier4), code, name, identity.RoleNode)
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
	codes.Add(code, identity.RoleNode, time.Now())
	var enrolled []*identity.Certificate
	r := &Responder{Config: f.config(f.hub, wire.Tier4)}
	r.Enrol = (&Enroller{Root: f.root, Codes: codes, Enrolled: func(c *identity.Certificate) { enrolled = append(enrolled, c) }}).Handle

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
	codes.Add(code, identity.RoleNode, time.Now())
	if _, err, serr := enrolOnce(t, f, r, other, "guess"); err == nil || !errors.Is(serr, identity.ErrPairing) {
		t.Errorf("wrong code: %v / %v", err, serr)
	}
	// An expired code.
	codes.Add(other, identity.RoleNode, time.Now().Add(-identity.PairingLifetime-time.Second))
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
