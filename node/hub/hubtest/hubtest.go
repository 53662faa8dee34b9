// Package hubtest is a family for tests of code that talks to a hub: a
// root key, a hub, members certified by the root, and sessions to the hub
// over in-memory pipes, served by the hub as a listener's would be.
package hubtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/hub"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
)

// World is a family root, its hub and the hub's identity.
type World struct {
	T     testing.TB
	Root  *identity.Root
	HubID *identity.Identity
	Hub   *hub.Hub
}

// New makes a family with a hub configured by cfg (its logger is
// replaced by a silent one).
func New(t testing.TB, cfg hub.Config) *World {
	root, err := identity.NewRoot(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	w := &World{T: t, Root: root}
	w.HubID = w.Member(identity.RoleHub, "nas")
	cfg.Log = zerolog.Nop()
	if cfg.Family == (identity.FamilyID{}) {
		cfg.Family = root.Family()
	}
	w.Hub = hub.New(cfg)
	return w
}

// Member certifies a new family member.
func (w *World) Member(role identity.Role, name string) *identity.Identity {
	priv, id, err := identity.NewNodeKey(rand.Reader)
	if err != nil {
		w.T.Fatal(err)
	}
	c, err := w.Root.Issue(id, role, name, priv.Public().(ed25519.PublicKey), time.Now(), time.Hour)
	if err != nil {
		w.T.Fatal(err)
	}
	return &identity.Identity{Cert: c, Private: priv}
}

// Config is a Tier 3 session configuration for id.
func (w *World) Config(id *identity.Identity) *session.Config {
	return &session.Config{Identity: id, Root: w.Root.Public(), Tier: wire.Tier3, Floor: wire.Tier3, Rand: rand.Reader, Log: zerolog.Nop()}
}

// Connect opens a session from id to the hub, whose side the hub serves
// until the session ends; the session is closed when the test ends.
func (w *World) Connect(id *identity.Identity) *session.Session {
	return w.connect(w.Config(id), w.Config(w.HubID))
}

// ConnectForeign opens a session to the hub from id, a member of the
// family of foreign (federation): each end accepts the other's root.
func (w *World) ConnectForeign(id *identity.Identity, foreign *identity.Root) *session.Session {
	ccfg, scfg := w.Config(id), w.Config(w.HubID)
	ccfg.Root = foreign.Public()
	ccfg.Foreign = only(w.Root)
	scfg.Foreign = only(foreign)
	return w.connect(ccfg, scfg)
}

// Pair opens a session between id and the hub's identity without the hub
// serving it: the test plays the hub on the second session (to drive a
// node's side, as the hub would).
func (w *World) Pair(id *identity.Identity) (member, hubSide *session.Session) {
	cc, sc := transport.Pipe()
	ctx := context.Background()
	done := make(chan *session.Session, 1)
	go func() {
		s, err := (&session.Responder{Config: w.Config(w.HubID)}).Accept(ctx, sc)
		if err != nil {
			w.T.Error(err)
		}
		done <- s
	}()
	m, err := session.Dial(ctx, cc, w.Config(id))
	if err != nil {
		w.T.Fatal(err)
	}
	h := <-done
	if h == nil {
		w.T.FailNow()
	}
	w.T.Cleanup(func() { m.Close(context.Background()); h.Close(context.Background()) })
	return m, h
}

func only(r *identity.Root) func(identity.FamilyID) (ed25519.PublicKey, bool) {
	return func(id identity.FamilyID) (ed25519.PublicKey, bool) { return r.Public(), id == r.Family() }
}

func (w *World) connect(ccfg, scfg *session.Config) *session.Session {
	cc, sc := transport.Pipe()
	ctx := context.Background()
	go func() {
		s, err := (&session.Responder{Config: scfg}).Accept(ctx, sc)
		if err == nil {
			w.Hub.Serve(ctx, s)
		}
	}()
	s, err := session.Dial(ctx, cc, ccfg)
	if err != nil {
		w.T.Fatal(err)
	}
	w.T.Cleanup(func() { s.Close(context.Background()) })
	return s
}
