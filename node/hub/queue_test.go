package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/hub"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
)

// TestLockEventsInOrder: a lock then an unlock reach a subscriber in that
// order, every time (PROFILE.md §P42: one ordered queue per session).
func TestLockEventsInOrder(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	w.startNode("pi")
	owner := newClient(t, w.Connect(w.Member(identity.RoleClient, "phone")))
	watcher := newClient(t, w.Connect(w.Member(identity.RoleClient, "laptop")))
	if _, code := watcher.do(wire.OpDeviceSubscribe, ops.Request{Device: "pi/temp"}); code != wire.CodeOK {
		t.Fatal(code)
	}
	const rounds = 200
	got := make(chan []string, 1)
	go func() {
		var seen []string
		for len(seen) < 2*rounds {
			select {
			case e := <-watcher.events:
				if e.Kind == "lock" {
					seen = append(seen, e.Values["locked-by"])
				}
			case <-time.After(10 * time.Second):
				got <- seen
				return
			}
		}
		got <- seen
	}()
	for i := 0; i < rounds; i++ {
		if _, code := owner.do(wire.OpDeviceLock, ops.Request{Device: "pi/temp"}); code != wire.CodeOK {
			t.Fatal(code)
		}
		if _, code := owner.do(wire.OpDeviceUnlock, ops.Request{Device: "pi/temp"}); code != wire.CodeOK {
			t.Fatal(code)
		}
	}
	seen := <-got
	if len(seen) != 2*rounds {
		t.Fatalf("%d lock events, want %d", len(seen), 2*rounds)
	}
	for i, by := range seen {
		want := "phone"
		if i%2 == 1 {
			want = ""
		}
		if by != want {
			t.Fatalf("lock event %d: locked-by %q, want %q (lock and unlock out of order)", i, by, want)
		}
	}
}

// TestStalledSubscriber: a subscriber that never reads (its transport
// blocks once the pipe is full) holds up neither the node's events to
// others nor the node's session; once its queue is full it loses its
// subscription and is told so (kind "overflow").
func TestStalledSubscriber(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite, SendQueue: 8})
	w.startNode("pi")
	stuck := w.Connect(w.Member(identity.RoleClient, "stuck"))
	b, _ := ops.Marshal(ops.Request{Req: 1, Device: "pi/temp"})
	if err := stuck.Send(context.Background(), wire.OpDeviceSubscribe, b); err != nil {
		t.Fatal(err)
	}
	for { // read up to the answer, then never again
		m, err := stuck.Recv(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if m.Op == wire.OpDeviceSubscribe {
			break
		}
	}
	reader := newClient(t, w.Connect(w.Member(identity.RoleClient, "reader")))
	if _, code := reader.do(wire.OpDeviceSubscribe, ops.Request{Device: "pi/temp"}); code != wire.CodeOK {
		t.Fatal(code)
	}
	// Readings come every 20 ms: 150 of them overflow the pipe (64 frames)
	// and the queue (8) many times over.
	for n := 0; n < 150; n++ {
		select {
		case <-reader.events:
		case <-time.After(10 * time.Second):
			t.Fatalf("the reader got %d readings, then none: the stalled subscriber holds up the node", n)
		}
	}
	// The node's session still serves what the hub relays (the node
	// itself refuses the setting).
	if _, code := reader.do(wire.OpDeviceConfigure, ops.Request{Device: "pi/temp", Settings: map[string]string{"colour": "red"}}); code != wire.CodeBadRequest {
		t.Fatalf("relayed configure while a subscriber stalls: %v, want the node's BAD_REQUEST", code)
	}
	// The stalled subscriber, reading at last, finds readings, then the
	// notice, then nothing more of the device: its subscription ended.
	told := false
	for !told {
		m, err := recvWithin(stuck, 5*time.Second)
		if err != nil {
			t.Fatalf("no overflow notice: %v", err)
		}
		if m.Op != wire.OpDeviceEvent {
			continue
		}
		var e ops.Event
		if err := ops.Unmarshal(m.Payload, &e); err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Kind == hub.OverflowKind:
			if e.Device != "pi/temp" || e.Values["subscription"] != "ended" {
				t.Fatalf("notice %+v", e)
			}
			told = true
		case e.Kind != "reading":
			t.Fatalf("event %+v", e)
		}
	}
	if m, err := recvWithin(stuck, 300*time.Millisecond); err == nil {
		t.Errorf("a message after the subscription ended: %v %x", m.Op, m.Payload)
	}
}

func recvWithin(s *session.Session, d time.Duration) (session.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.Recv(ctx)
}
