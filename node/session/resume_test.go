package session

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/ticket"
)

func ticketResponder(t *testing.T, f *family) *Responder {
	var kr ticket.Keyring
	var secret [32]byte
	rand.Read(secret[:])
	kr.Add(ticket.Key{ID: 1, Secret: secret})
	return &Responder{Config: f.config(f.hub, wire.Tier4), Tickets: &Tickets{Keys: &kr,
		Lookup: func(_ context.Context, id identity.NodeID) (*identity.Certificate, error) {
			if id == f.node.Cert.Node {
				return f.node.Cert, nil
			}
			return nil, errors.New("unknown node")
		}}}
}

func resumeOnce(t *testing.T, f *family, r *Responder, tk Ticket) (*Session, *Session, error, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cc, sc := transport.Pipe()
	type res struct {
		s   *Session
		err error
	}
	ch := make(chan res, 1)
	go func() { s, err := r.Accept(ctx, sc); ch <- res{s, err} }()
	cs, err := Resume(ctx, cc, f.config(f.node, wire.Tier4), tk)
	sr := <-ch
	return cs, sr.s, err, sr.err
}

// firstTicket opens a full session and returns its ticket.
func firstTicket(t *testing.T, f *family, r *Responder) (pair, Ticket) {
	t.Helper()
	cc, sc := transport.Pipe()
	p, cerr, serr := connect(t, cc, sc, f.config(f.node, wire.Tier4), r)
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	ctx := context.Background()
	p.server.Send(ctx, wire.OpDeviceInfo, []byte("hello")) // the ticket came before it
	recv(t, p.client)
	tk, ok := p.client.Ticket()
	if !ok {
		t.Fatal("no ticket after the handshake")
	}
	return p, tk
}

func TestResume(t *testing.T) {
	f := newFamily(t)
	r := ticketResponder(t, f)
	p, tk := firstTicket(t, f, r)
	p.client.conn.Close() // the connection drops

	cs, ss, cerr, serr := resumeOnce(t, f, r, tk)
	if cerr != nil || serr != nil {
		t.Fatalf("resume: %v / %v", cerr, serr)
	}
	if ss.Peer() == nil || ss.Peer().Name != "pi" || cs.Peer().Name != "nas" {
		t.Error("resumed peers unknown")
	}
	ctx := context.Background()
	cs.Send(ctx, wire.OpDeviceList, []byte("after resume"))
	if m := recv(t, ss); string(m.Payload) != "after resume" {
		t.Fatalf("%+v", m)
	}
	// A new ticket came with the resumption; the old one is spent.
	tk2, ok := cs.Ticket()
	if !ok || tk2.Ticket == tk.Ticket {
		t.Fatal("no fresh ticket after resuming")
	}
	if _, _, cerr, serr := resumeOnce(t, f, r, tk); !errors.Is(cerr, ErrPeerError) || !errors.Is(serr, wire.ErrTicket) {
		t.Errorf("replayed ticket: %v / %v", cerr, serr)
	}
	if _, _, cerr, serr := resumeOnce(t, f, r, tk2); cerr != nil || serr != nil {
		t.Errorf("second ticket: %v / %v", cerr, serr)
	}
}

func TestResumeRejects(t *testing.T) {
	f := newFamily(t)
	r := ticketResponder(t, f)
	_, tk := firstTicket(t, f, r)

	forged := tk
	forged.Ticket[50] ^= 1
	if _, _, cerr, serr := resumeOnce(t, f, r, forged); cerr == nil || !errors.Is(serr, wire.ErrTicket) {
		t.Errorf("forged ticket: %v / %v", cerr, serr)
	}
	wrongSecret := tk
	wrongSecret.Secret[0] ^= 1 // a thief with the ticket but not the secret
	if _, _, cerr, serr := resumeOnce(t, f, r, wrongSecret); cerr == nil || serr == nil {
		t.Errorf("ticket without its secret: %v / %v", cerr, serr)
	}
	_, tk = firstTicket(t, f, r)
	r.Config.Revoked = func(id identity.NodeID) bool { return id == f.node.Cert.Node }
	if _, _, cerr, serr := resumeOnce(t, f, r, tk); !errors.Is(cerr, ErrPeerError) || !errors.Is(serr, identity.ErrRevoked) {
		t.Errorf("revoked node: %v / %v", cerr, serr)
	}
	r.Config.Revoked = nil
	_, tk = firstTicket(t, f, r)
	r.Tickets.Keys.Remove(1) // the ticket key was retired
	if _, _, cerr, serr := resumeOnce(t, f, r, tk); cerr == nil || !errors.Is(serr, wire.ErrTicket) {
		t.Errorf("retired ticket key: %v / %v", cerr, serr)
	}
}

func TestRekeyUnderTraffic(t *testing.T) {
	f := newFamily(t)
	p := mustConnect(t, f, wire.Tier4, wire.Tier4)
	ctx := context.Background()
	// The server echoes in the background; the client sends, re-keys in the
	// middle of traffic, and every message still arrives once.
	go func() {
		for {
			m, err := p.server.Recv(ctx)
			if err != nil {
				return
			}
			p.server.Send(ctx, m.Op, m.Payload)
		}
	}()
	seen := 0
	for i := 0; i < 30; i++ {
		if i == 10 || i == 20 {
			if err := p.client.Rekey(ctx); err != nil {
				t.Fatal(err)
			}
		}
		p.client.Send(ctx, wire.OpStreamData, []byte{byte(i)})
		m := recv(t, p.client)
		if m.Payload[0] != byte(i) {
			t.Fatalf("echo %d: %v", i, m.Payload)
		}
		seen++
	}
	if p.client.Rekeys() != 2 {
		t.Errorf("client completed %d key exchanges, want 2", p.client.Rekeys())
	}
	if err := p.server.Rekey(ctx); err == nil {
		t.Error("the responder started a key exchange")
	}
	// A ticket issued before a re-key still resumes (it carries its own secret).
	if _, ok := p.client.Ticket(); ok {
		t.Log("ticket present")
	}
}

func TestAutomaticRekeyAfter24Hours(t *testing.T) {
	f := newFamily(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ccfg, scfg := f.config(f.node, wire.Tier4), f.config(f.hub, wire.Tier4)
	ccfg.Clock, scfg.Clock = clock, clock
	cc, sc := transport.Pipe()
	p, cerr, serr := connect(t, cc, sc, ccfg, &Responder{Config: scfg})
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			if _, err := p.server.Recv(ctx); err != nil {
				return
			}
		}
	}()
	go func() {
		for {
			if _, err := p.client.Recv(ctx); err != nil {
				return
			}
		}
	}()
	mu.Lock()
	now = now.Add(wire.RekeyAfterTime + time.Minute)
	mu.Unlock()
	go p.client.Keepalive(ctx, 5*time.Millisecond, 48*time.Hour)
	for i := 0; i < 400 && p.client.Rekeys() == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if p.client.Rekeys() != 1 {
		t.Fatalf("no key exchange after 24 hours (%d)", p.client.Rekeys())
	}
}
