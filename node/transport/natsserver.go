package transport

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedNATS is a NATS server inside this process: what a hub runs when
// no NATS URL is configured, so a family needs no other server. A family
// that outgrows one machine points its nodes at a NATS cluster instead.
type EmbeddedNATS struct {
	srv *server.Server
}

// StartEmbeddedNATS starts a NATS server on addr ("127.0.0.1:4223"; port 0
// picks a free one) and waits until it accepts clients.
func StartEmbeddedNATS(addr string) (*EmbeddedNATS, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS port %q: %w", port, err)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	srv, err := server.NewServer(&server.Options{Host: host, Port: p, NoSigs: true, NoLog: true, MaxPayload: 2 << 20})
	if err != nil {
		return nil, fmt.Errorf("failed to configure the embedded NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("the embedded NATS server did not start on %s", addr)
	}
	return &EmbeddedNATS{srv: srv}, nil
}

// URL is where clients connect.
func (e *EmbeddedNATS) URL() string { return e.srv.ClientURL() }

// Addr is the host:port the server listens on.
func (e *EmbeddedNATS) Addr() string { return e.srv.Addr().String() }

// Shutdown stops the server.
func (e *EmbeddedNATS) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
