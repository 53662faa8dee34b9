package tests

import (
	"context"
	"sort"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
)

// BenchmarkMatrixRoundTrip measures a round trip through the homeserver:
// one side sends, the other answers, the first sees the answer. "frame"
// is a Tier 3 MyClerk message over eu.myclerk.frame events (seal, send,
// sync, open, and back); "message" is a plain m.room.message echoed the
// same way, the baseline of the same run. It needs Dendrite (tests/run
// builds it) and reports p50/p99 in milliseconds.
func BenchmarkMatrixRoundTrip(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mx := newMatrixPair(b, ctx)

	// Baseline: bob echoes every m.room.message from alice.
	message := messageEcho(ctx, mx.alice, mx.bob, mx.room.RoomID, 10*time.Second)
	mx.sync(ctx)

	f := newFam(b)
	go func() {
		s, err := (&session.Responder{Config: f.cfg(f.hub)}).Accept(ctx, mx.cb)
		if err != nil {
			return
		}
		for {
			m, err := s.Recv(ctx)
			if err != nil {
				return
			}
			s.Send(ctx, m.Op, m.Payload)
		}
	}()
	cfg := f.cfg(f.node)
	cfg.MaxFrame = 36 << 10
	s, err := session.Dial(ctx, mx.ca, cfg)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 256)

	b.Run("frame", func(b *testing.B) {
		var d []time.Duration
		for b.Loop() {
			t0 := time.Now()
			if err := s.Send(ctx, wire.OpStreamData, payload); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Recv(ctx); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t0))
		}
		reportLatency(b, d)
	})
	b.Run("message", message)
}

// messageEcho makes bob answer every m.room.message alice sends with "re: "
// and the same body, and returns the sub-benchmark that times alice's round
// trips in room: the baseline the Matrix benchmarks measure against. Both
// clients must be syncing before it runs.
func messageEcho(ctx context.Context, alice, bob *mautrix.Client, room id.RoomID, timeout time.Duration) func(*testing.B) {
	replies := make(chan string, 16)
	bob.Syncer.(mautrix.ExtensibleSyncer).OnEventType(event.EventMessage, func(ctx context.Context, evt *event.Event) {
		if c := evt.Content.AsMessage(); evt.Sender == alice.UserID && c != nil {
			bob.SendText(ctx, evt.RoomID, "re: "+c.Body)
		}
	})
	alice.Syncer.(mautrix.ExtensibleSyncer).OnEventType(event.EventMessage, func(_ context.Context, evt *event.Event) {
		if c := evt.Content.AsMessage(); evt.Sender == bob.UserID && c != nil {
			replies <- c.Body
		}
	})
	return func(b *testing.B) {
		var d []time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := alice.SendText(ctx, room, "ping with a body of a few bytes"); err != nil {
				b.Fatal(err)
			}
			select {
			case <-replies:
			case <-time.After(timeout):
				b.Fatal("no reply")
			}
			d = append(d, time.Since(t0))
		}
		reportLatency(b, d)
	}
}

// reportLatency reports the p50 and p99 of round trips d in milliseconds.
func reportLatency(b *testing.B, d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}
