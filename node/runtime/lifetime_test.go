package runtime

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/agent"
	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/store"
	"github.com/myclerk/myclerk-bridge/wire"
)

// syncBuffer is a log sink goroutines may write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHubStopsCleanly: a hub with sessions over TCP, WebSocket and NATS,
// and devices announced, stops when its context ends; Wait returns once
// every goroutine it started has, with no store write after the store
// closed, and the database file alone (no -wal, no -shm) holds the state.
func TestHubStopsCleanly(t *testing.T) {
	before := goruntime.NumGoroutine()
	c := config.Default()
	c.DataDir = t.TempDir()
	c.Listen = config.Listen{TCP: "127.0.0.1:0", WebSocket: "127.0.0.1:0", NATS: "127.0.0.1:0", Metrics: "127.0.0.1:0"}
	c.Session.Keepalive = 50 * time.Millisecond
	var logs syncBuffer
	log := zerolog.New(&logs).Level(zerolog.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := StartHub(ctx, c, log)
	if err != nil {
		t.Fatal(err)
	}

	// A node on each transport serving a sensor, and a client.
	var served sync.WaitGroup
	var names []string
	for _, addr := range []string{h.Addrs["tcp"], h.Addrs["websocket"], h.Addrs["nats"]} {
		ep, err := ParseEndpoint(addr)
		if err != nil {
			t.Fatal(err)
		}
		name := "node-" + ep.Scheme
		names = append(names, name)
		id, err := h.IssueMember(ctx, name, identity.RoleNode)
		if err != nil {
			t.Fatal(err)
		}
		s, done, err := Open(ctx, c, ep, id, h.Root.Public(), nil, zerolog.Nop())
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		served.Add(1)
		go func() {
			defer served.Done()
			defer done()
			a := &agent.Agent{Devices: []agent.Device{agent.NewSimSensor("temp", "t", 20, 10*time.Millisecond)}, Log: zerolog.Nop()}
			a.Serve(context.Background(), s) // ends when the hub closes the session
		}()
	}
	for i := 0; i < 400 && len(h.Registry.Devices()) < 3; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(h.Registry.Devices()); n != 3 {
		t.Fatalf("%d devices announced, want 3", n)
	}
	// A member subscribed, so events flow while the hub stops.
	cid, err := h.IssueMember(ctx, "phone", identity.RoleClient)
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := ParseEndpoint(h.Addrs["tcp"])
	cs, cdone, err := Open(ctx, c, ep, cid, h.Root.Public(), nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ops.Marshal(ops.Request{Req: 1, Device: "node-tcp/temp"})
	if err := cs.Send(ctx, wire.OpDeviceSubscribe, b); err != nil {
		t.Fatal(err)
	}
	served.Add(1)
	go func() {
		defer served.Done()
		defer cdone()
		for {
			if _, err := cs.Recv(context.Background()); err != nil {
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // traffic: readings, keepalives

	cancel()
	if err := h.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	ended := make(chan struct{})
	go func() { served.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the members' sessions did not end when the hub stopped")
	}
	if strings.Contains(logs.String(), "database is closed") {
		t.Errorf("a store write after the store closed:\n%s", logs.String())
	}
	// Every goroutine is gone (a few may take a moment to return after
	// what they waited on closed).
	after := goruntime.NumGoroutine()
	for i := 0; i < 100 && after > before; i++ {
		time.Sleep(20 * time.Millisecond)
		after = goruntime.NumGoroutine()
	}
	if after > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before the hub, %d after it stopped:\n%s", before, after, buf[:goruntime.Stack(buf, true)])
	}

	// A backup of the database file alone is complete.
	backup := filepath.Join(t.TempDir(), "copy.db")
	copyFile(t, c.DatabaseURI(), backup)
	st, err := store.Open(context.Background(), store.DriverSQLite, backup)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nodes, err := st.Nodes.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	devs, err := st.Devices.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 4 || len(devs) != 3 {
		t.Errorf("the copy of %s holds %d nodes and %d devices, want 4 and 3", filepath.Base(c.DatabaseURI()), len(nodes), len(devs))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
