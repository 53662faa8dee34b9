package session

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/node/transport/natstest"
	"github.com/myclerk/myclerk-bridge/wire"
)

// natsSessions opens a Tier 3 session over an embedded NATS server and
// returns both ends and the client's NATS connection.
func natsSessions(t *testing.T) (pair, *nats.Conn) {
	f := newFamily(t)
	e := natstest.Start(t, "127.0.0.1:0")
	var err error
	var ncs [2]*nats.Conn
	for i := range ncs {
		if ncs[i], err = nats.Connect(e.URL()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ncs[i].Close)
	}
	l, err := transport.ListenNATS(ncs[1], "fam", "hub")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var p pair
	done := make(chan error, 1)
	go func() {
		sc, err := l.Accept(ctx)
		if err == nil {
			p.server, err = (&Responder{Config: f.config(f.hub, wire.Tier3)}).Accept(ctx, sc)
		}
		done <- err
	}()
	cc, err := transport.DialNATS(ncs[0], "fam", "pi", "hub")
	if err != nil {
		t.Fatal(err)
	}
	p.client, err = Dial(ctx, cc, f.config(f.node, wire.Tier3))
	if serr := <-done; err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	t.Cleanup(func() { p.client.conn.Close(); p.server.conn.Close() })
	return p, ncs[0]
}

// TestNATSMessageDropped: a message that is no frame (a malformed
// container) is counted and logged as a rejection; the session goes on.
func TestNATSMessageDropped(t *testing.T) {
	p, nc := natsSessions(t)
	ctx := context.Background()
	peer := strings.TrimPrefix(p.client.conn.RemoteAddr(), "nats ") // the server's end
	if err := nc.Publish(peer, []byte{wire.ContainerMarker, 0, 0, 0, 9, 0x19}); err != nil {
		t.Fatal(err)
	}
	if err := p.client.Send(ctx, wire.OpStreamData, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, p.server); string(m.Payload) != "after" {
		t.Fatalf("%+v", m)
	}
	if got := p.server.Status().Rejected; got != 1 {
		t.Errorf("rejected %d, want 1", got)
	}
}

// TestNATSSessionCoalesces: a burst of frames over a session reaches the
// peer whole and in order, in fewer NATS messages than frames (both ends
// read containers), and an answer comes back at once.
func TestNATSSessionCoalesces(t *testing.T) {
	p, nc := natsSessions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 1000 // fewer than a connection's buffer: none dropped even uncoalesced
	before := nc.Stats().OutMsgs
	go func() {
		for i := range n {
			if err := p.client.Send(ctx, wire.OpStreamData, []byte(fmt.Sprintf("%d %0500d", i, i))); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range n {
		m, err := p.server.RecvBorrowed(ctx)
		if err != nil || !strings.HasPrefix(string(m.Payload), fmt.Sprintf("%d ", i)) {
			t.Fatalf("message %d: %.12q %v", i, m.Payload, err)
		}
	}
	msgs := nc.Stats().OutMsgs - before
	t.Logf("%d frames in %d NATS messages", n, msgs)
	if msgs >= n {
		t.Errorf("%d frames in %d messages: nothing coalesced", n, msgs)
	}
	if err := p.server.Send(ctx, wire.OpStreamData, []byte("done")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, p.client); string(m.Payload) != "done" {
		t.Fatalf("%+v", m)
	}
}
