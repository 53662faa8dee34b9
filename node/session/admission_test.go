package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
)

func TestSource(t *testing.T) {
	for _, tt := range []struct{ remote, want string }{
		{"tcp 192.0.2.1:5555", "192.0.2.1"},
		{"ws 192.0.2.1:5556", "192.0.2.1"},
		{"tcp [2001:db8::1]:5555", "2001:db8::1"},
		{"nats myclerk.fam.node.c.0123456789abcdef", "nats myclerk.fam.node"},
		{"nats myclerk.fam.hub.accept", "nats myclerk.fam.hub.accept"},
		{"pipe b", "pipe b"},
		{"matrix !room:example.org", "matrix !room:example.org"},
	} {
		if got := Source(tt.remote); got != tt.want {
			t.Errorf("Source(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}

func TestAdmission(t *testing.T) {
	type step struct {
		remote  string
		admit   bool // else: release the oldest slot held
		want    error
		holding int
	}
	a1, a2, b := "tcp 192.0.2.1:1", "ws 192.0.2.1:2", "tcp 192.0.2.9:1"
	tests := []struct {
		name           string
		max, perSource int
		steps          []step
	}{
		{"per source", 3, 2, []step{
			{a1, true, nil, 1}, {a2, true, nil, 2}, {a1, true, ErrBusy, 2}, {b, true, nil, 3},
		}},
		{"global", 2, 2, []step{
			{a1, true, nil, 1}, {b, true, nil, 2}, {"tcp 192.0.2.7:1", true, ErrBusy, 2},
		}},
		{"release frees the slot", 2, 1, []step{
			{a1, true, nil, 1}, {a2, true, ErrBusy, 1}, {"", false, nil, 0}, {a2, true, nil, 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAdmission(tt.max, tt.perSource)
			var held []func()
			refused := int64(0)
			for i, s := range tt.steps {
				if !s.admit {
					held[0]()
					held[0]() // twice: a release counts once
					held = held[1:]
				} else {
					rel, err := a.Admit(s.remote)
					if !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
						t.Fatalf("step %d: Admit(%s) = %v, want %v", i, s.remote, err, s.want)
					}
					if err == nil {
						held = append(held, rel)
					} else {
						refused++
					}
				}
				if a.InFlight() != s.holding || a.Refused() != refused {
					t.Fatalf("step %d: in flight %d, refused %d; want %d, %d", i, a.InFlight(), a.Refused(), s.holding, refused)
				}
			}
		})
	}
}

// TestResponderAdmission: over the cap a connection is told SERVICE_
// UNAVAILABLE in a Tier 1 ERROR and closed at once; the slot of a finished
// handshake is free again.
func TestResponderAdmission(t *testing.T) {
	f := newFamily(t)
	r := &Responder{Config: f.config(f.hub, wire.Tier3), Admission: NewAdmission(1, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// A stranger that says nothing holds the only slot.
	idle, idleS := transport.Pipe()
	held := make(chan error, 1)
	go func() { _, err := r.Accept(ctx, idleS); held <- err }()
	waitFor(t, func() bool { return r.Admission.InFlight() == 1 })

	cc, sc := transport.Pipe()
	if _, err := r.Accept(ctx, sc); !errors.Is(err, ErrBusy) {
		t.Fatalf("Accept over the cap: %v, want ErrBusy", err)
	}
	b, err := cc.ReadFrame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if perr := peerError(b); perr == nil || !errors.Is(perr, ErrPeerError) {
		t.Fatalf("the refused peer read %x, want a Tier 1 ERROR", b)
	}
	if _, err := cc.ReadFrame(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("after the ERROR: %v, want the connection closed", err)
	}

	idle.Close()
	<-held
	waitFor(t, func() bool { return r.Admission.InFlight() == 0 })
	cc, sc = transport.Pipe()
	if _, cerr, serr := connect(t, cc, sc, f.config(f.node, wire.Tier3), r); cerr != nil || serr != nil {
		t.Fatalf("a handshake after the slot was freed: %v, %v", cerr, serr)
	}
}
