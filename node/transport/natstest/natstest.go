// Package natstest runs a NATS server without credentials, for tests of
// the NATS transport itself (subjects, containers, reconnection) where
// who may connect is not the point. A hub never runs one: its embedded
// server is transport.EmbeddedNATS, which checks every client's key.
package natstest

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is a NATS server that lets anyone in.
type Server struct {
	srv *server.Server
}

// Start starts one on addr (port 0 picks a free one); tb's cleanup stops it.
func Start(tb testing.TB, addr string) *Server {
	tb.Helper()
	s, err := StartServer(addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Shutdown)
	return s
}

// StartServer starts one on addr; the caller stops it with Shutdown.
func StartServer(addr string) (*Server, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("NATS address %q: %w", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("NATS port %q: %w", port, err)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	srv, err := server.NewServer(&server.Options{Host: host, Port: p, NoSigs: true, NoLog: true, MaxPayload: 2 << 20})
	if err != nil {
		return nil, fmt.Errorf("failed to configure a test NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("the test NATS server did not start on %s", addr)
	}
	return &Server{srv: srv}, nil
}

// URL is where clients connect.
func (s *Server) URL() string { return s.srv.ClientURL() }

// Shutdown stops the server; a second call does nothing.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}
