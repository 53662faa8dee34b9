package session

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/node/transport/transporttest"
	"github.com/myclerk/myclerk-bridge/wire"
)

func tcpPair(t *testing.T, f *family, ctier, stier wire.Tier, maxFrame int) pair {
	t.Helper()
	c, s := transporttest.LoopbackTCP(t)
	ccfg := f.config(f.node, ctier)
	ccfg.MaxFrame = maxFrame
	p, cerr, serr := connect(t, transport.NewStream(c), transport.NewStream(s), ccfg, &Responder{Config: f.config(f.hub, stier)})
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: %v / %v", cerr, serr)
	}
	return p
}

// RecvBorrowed hands out each message correctly, whatever came before it:
// sizes up and down, fragmented messages (the reassembler's memory, not
// reused), Tier 5 (opened in place), and a Recv in between.
func TestRecvBorrowed(t *testing.T) {
	f := newFamily(t)
	for _, tier := range []wire.Tier{wire.Tier3, wire.Tier5} {
		p := tcpPair(t, f, tier, tier, 4096) // larger messages are fragmented
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sizes := []int{1000, 10, 3000, 0, 9000, 200, 64 << 10, 1, 2000}
		go func() {
			for i, n := range sizes {
				p.client.Send(ctx, wire.OpStreamData, bytes.Repeat([]byte{byte(i + 1)}, n))
			}
		}()
		for i, n := range sizes {
			var m Message
			var err error
			if i == 5 {
				m, err = p.server.Recv(ctx)
			} else {
				m, err = p.server.RecvBorrowed(ctx)
			}
			if err != nil {
				t.Fatalf("tier %d message %d: %v", tier, i, err)
			}
			if want := bytes.Repeat([]byte{byte(i + 1)}, n); !bytes.Equal(m.Payload, want) {
				t.Fatalf("tier %d message %d: %d bytes, want %d of %d", tier, i, len(m.Payload), n, i+1)
			}
		}
		cancel()
	}
}

// Over TCP a steady stream of messages received with RecvBorrowed
// allocates nothing; Recv allocates each frame, which the caller keeps.
func TestRecvBorrowedAllocatesNothing(t *testing.T) {
	f := newFamily(t)
	p := tcpPair(t, f, wire.Tier3, wire.Tier3, 0)
	ctx := context.Background()
	payload := make([]byte, 1024)
	const runs = 50
	measure := func(recv func(context.Context) (Message, error)) float64 {
		// Both buffers of the swap are warm after two messages; the
		// frames of the measured runs wait in the socket already.
		for range runs + 3 {
			if err := p.client.Send(ctx, wire.OpStreamData, payload); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			recv(ctx)
		}
		return testing.AllocsPerRun(runs, func() {
			if m, err := recv(ctx); err != nil || len(m.Payload) != len(payload) {
				t.Fatalf("recv: %d bytes, %v", len(m.Payload), err)
			}
		})
	}
	owned := measure(p.server.Recv)
	borrowed := measure(p.server.RecvBorrowed)
	if borrowed > 0.1 || borrowed >= owned {
		t.Errorf("RecvBorrowed: %.2f allocations per message (Recv: %.2f), want none", borrowed, owned)
	}
}
