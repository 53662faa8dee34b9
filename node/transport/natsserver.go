package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedNATS is a NATS server inside this process: what a hub runs when
// no NATS URL is configured, so a family needs no other server. A family
// that outgrows one machine points its nodes at a NATS cluster instead.
//
// It lets in only the users of its NATSAuth (PROFILE.md §P36,
// "Credentials"): no anonymous user, no system account, no other
// listener than the clients'.
type EmbeddedNATS struct {
	srv  *server.Server
	auth *NATSAuth
}

// StartEmbeddedNATS starts a NATS server on addr ("127.0.0.1:4223"; port 0
// picks a free one) that lets in auth's users, and waits until it accepts
// clients. It loads the users once before it starts.
func StartEmbeddedNATS(ctx context.Context, addr string, auth *NATSAuth) (*EmbeddedNATS, error) {
	if auth == nil || auth.Load == nil {
		return nil, errors.New("the embedded NATS server needs credentials to check")
	}
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
	if err := auth.Refresh(ctx); err != nil {
		return nil, err
	}
	srv, err := server.NewServer(&server.Options{Host: host, Port: p, NoSigs: true, NoLog: true, MaxPayload: 2 << 20,
		// Every client signs the nonce with its key; auth checks it.
		CustomClientAuthentication: auth, AlwaysEnableNonce: true,
		// No $SYS account whose subjects a client could ask.
		NoSystemAccount: true})
	if err != nil {
		return nil, fmt.Errorf("failed to configure the embedded NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("the embedded NATS server did not start on %s", addr)
	}
	return &EmbeddedNATS{srv: srv, auth: auth}, nil
}

// URL is where clients connect.
func (e *EmbeddedNATS) URL() string { return e.srv.ClientURL() }

// Addr is the host:port the server listens on.
func (e *EmbeddedNATS) Addr() string { return e.srv.Addr().String() }

// connzLimit bounds how many connections Reauthorize looks at in one go.
const connzLimit = 1 << 16

// Reauthorize loads the users again and closes every connection whose key
// is no longer among them (a revoked node's); it returns how many it
// closed.
func (e *EmbeddedNATS) Reauthorize(ctx context.Context) (int, error) {
	if err := e.auth.Refresh(ctx); err != nil {
		return 0, err
	}
	cz, err := e.srv.Connz(&server.ConnzOptions{Username: true, Limit: connzLimit})
	if err != nil {
		return 0, fmt.Errorf("failed to list the NATS connections: %w", err)
	}
	closed := 0
	for _, c := range cz.Conns {
		if e.auth.allowed(c.AuthorizedUser) {
			continue
		}
		if err := e.srv.DisconnectClientByID(c.Cid); err == nil {
			closed++
		}
	}
	return closed, nil
}

// Shutdown stops the server.
func (e *EmbeddedNATS) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
