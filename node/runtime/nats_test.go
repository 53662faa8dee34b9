package runtime

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
)

// The hub's embedded NATS server lets in its enrolled nodes only: a client
// without credentials is refused, a node's session over NATS works, and a
// revoked node's NATS connection is closed and refused again.
func TestHubNATSCredentials(t *testing.T) {
	c := config.Default()
	c.DataDir = t.TempDir()
	c.Listen = config.Listen{TCP: "127.0.0.1:0", NATS: "127.0.0.1:0", Metrics: "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := StartHub(ctx, c, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	url := h.Addrs["nats"]
	if nc, err := nats.Connect(url); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("a client without credentials: %v", err)
	}

	pi, err := h.IssueMember(ctx, "pi", identity.RoleNode)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := ParseEndpoint(url)
	if err != nil {
		t.Fatal(err)
	}
	nc := config.Default()
	nc.Name = "pi"
	s, done, err := Open(ctx, nc, ep, pi, h.Root.Public(), nil, zerolog.Nop())
	if err != nil {
		t.Fatalf("a node's session over NATS: %v", err)
	}
	defer done()
	if err := s.Send(ctx, wire.OpDeviceList, nil); err != nil {
		t.Fatal(err)
	}

	// /health tells a stranger nothing about the family.
	resp, err := http.Get(strings.TrimSuffix(h.Addrs["metrics"], "metrics") + "health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != `{"status":"ok"}` || strings.Contains(string(body), h.Root.Family().String()) {
		t.Fatalf("/health: %s", body)
	}

	// Revoked: the live NATS connection is closed within the poll.
	creds, err := transport.NATSCredentials(pi.Private)
	if err != nil {
		t.Fatal(err)
	}
	dropped := make(chan struct{}, 1)
	raw, err := nats.Connect(url, creds, nats.DisconnectErrHandler(func(*nats.Conn, error) { dropped <- struct{}{} }))
	if err != nil {
		t.Fatalf("the enrolled node's key: %v", err)
	}
	defer raw.Close()
	if err := h.Store.Nodes.Revoke(ctx, pi.Cert.Node, time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dropped:
	case <-time.After(3 * revocationPoll):
		t.Fatal("the revoked node's NATS connection stayed open")
	}
	if nc, err := nats.Connect(url, creds); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("the revoked node connected again: %v", err)
	}
}
