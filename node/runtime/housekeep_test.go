package runtime

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/store"
)

// A hub's store does not grow without bound: Housekeep forgets expired
// ticket nonces and sessions older than the availability window, and
// keeps the rest (the hub also runs it at start and every hour).
func TestHousekeep(t *testing.T) {
	c := config.Default()
	c.DataDir = t.TempDir()
	c.Listen = config.Listen{TCP: "127.0.0.1:0", NATS: "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := StartHub(ctx, c, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	st := h.Store
	var node identity.NodeID
	node[0] = 7
	old, err := st.Sessions.Connected(ctx, node, now.Add(-store.CoreWindow-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Sessions.Disconnected(ctx, old, now.Add(-store.CoreWindow-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	recent, err := st.Sessions.Connected(ctx, node, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Sessions.Disconnected(ctx, recent, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	for i, exp := range []time.Time{now.Add(-time.Minute), now.Add(time.Hour)} {
		if first, err := st.UsedTickets.MarkUsed(ctx, [8]byte{byte(i)}, exp); err != nil || !first {
			t.Fatalf("MarkUsed: %v %v", first, err)
		}
	}

	if err := h.Housekeep(ctx, now); err != nil {
		t.Fatal(err)
	}
	// The recent session still counts; the old one is gone (pruning it
	// again removes nothing), and so is the expired ticket's nonce (it can
	// be marked again), while the live ticket's stays.
	if a, err := st.Sessions.Availability(ctx, node, now.Add(-2*time.Hour), now); err != nil || a < 0.45 {
		t.Errorf("availability of the recent session: %v, %v", a, err)
	}
	if n, err := st.Sessions.Prune(ctx, now.Add(-store.CoreWindow)); err != nil || n != 0 {
		t.Errorf("old sessions left after Housekeep: %d, %v", n, err)
	}
	if first, err := st.UsedTickets.MarkUsed(ctx, [8]byte{0}, now.Add(time.Hour)); err != nil || !first {
		t.Errorf("the expired ticket's nonce was kept: first use %v, %v", first, err)
	}
	if first, err := st.UsedTickets.MarkUsed(ctx, [8]byte{1}, now.Add(time.Hour)); err != nil || first {
		t.Errorf("the live ticket's nonce was forgotten: first use %v, %v", first, err)
	}
}
