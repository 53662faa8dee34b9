package tests

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/node/transport/natstest"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
	"github.com/myclerk/myclerk-bridge/wire/ticket"
)

type fam struct {
	root      *identity.Root
	hub, node *identity.Identity
}

func newFam(t testing.TB) *fam {
	t.Helper()
	root, err := identity.NewRoot(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(role identity.Role, name string) *identity.Identity {
		priv, id, err := identity.NewNodeKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		c, err := root.Issue(id, role, name, priv.Public().(ed25519.PublicKey), time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return &identity.Identity{Cert: c, Private: priv}
	}
	return &fam{root: root, hub: issue(identity.RoleHub, "nas"), node: issue(identity.RoleNode, "pi")}
}

func (f *fam) cfg(id *identity.Identity) *session.Config {
	return &session.Config{Identity: id, Root: f.root.Public(), Tier: wire.Tier3, Floor: wire.Tier3,
		Rand: rand.Reader, Capabilities: []payload.Capability{payload.CapChaCha20}, Log: zerolog.Nop()}
}

// echo serves one accepted connection: every message comes back with
// the same op.
func echo(r *session.Responder, c transport.Conn) {
	s, err := r.Accept(context.Background(), c)
	if err != nil {
		return
	}
	for {
		m, err := s.Recv(context.Background())
		if err != nil {
			return
		}
		s.Send(context.Background(), m.Op, m.Payload)
	}
}

// natsServer is a real nats-server process on a free loopback port, or
// the embedded server when the binary is not installed.
type natsServer struct {
	url  string
	port int
	cmd  *exec.Cmd
	emb  *natstest.Server
}

func natsBinary() string {
	for _, p := range []string{"/usr/sbin/nats-server", "/usr/bin/nats-server"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath("nats-server")
	return p
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startNATS(t *testing.T, port int) *natsServer {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if bin := natsBinary(); bin != "" {
		cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				return &natsServer{url: "nats://" + addr, port: port, cmd: cmd}
			}
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Kill()
		t.Fatal("nats-server did not start")
	}
	e, err := natstest.StartServer(addr)
	if err != nil {
		t.Fatal(err)
	}
	return &natsServer{url: e.URL(), port: port, emb: e}
}

func (n *natsServer) stop() {
	if n.cmd != nil {
		n.cmd.Process.Kill()
		n.cmd.Wait()
	}
	if n.emb != nil {
		n.emb.Shutdown()
	}
}

// dialer opens one connection to the hub over a transport.
type dialer func(ctx context.Context) (transport.Conn, error)

// serveAll starts the hub side of every transport and returns a dialer
// for each.
func serveAll(t *testing.T, f *fam) map[string]dialer {
	r := &session.Responder{Config: f.cfg(f.hub)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go echo(r, transport.NewStream(c))
		}
	}()
	wsl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: transport.WebSocketHandler(func(c transport.Conn) { echo(r, c) })}
	go srv.Serve(wsl)
	t.Cleanup(func() { srv.Close() })

	ns := startNATS(t, freePort(t))
	t.Cleanup(ns.stop)
	hubNC, err := nats.Connect(ns.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hubNC.Close)
	nl, err := transport.ListenNATS(hubNC, "fam", "hub")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nl.Close() })
	go func() {
		for {
			c, err := nl.Accept(context.Background())
			if err != nil {
				return
			}
			go echo(r, c)
		}
	}()
	clientNC, err := nats.Connect(ns.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clientNC.Close)
	return map[string]dialer{
		"tcp": func(ctx context.Context) (transport.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
			if err != nil {
				return nil, err
			}
			return transport.NewStream(c), nil
		},
		"ws": func(ctx context.Context) (transport.Conn, error) {
			return transport.DialWebSocket(ctx, "ws://"+wsl.Addr().String()+"/")
		},
		"nats": func(ctx context.Context) (transport.Conn, error) {
			return transport.DialNATS(clientNC, "fam", "pi", "hub")
		},
	}
}

// TestConcurrentSessionsEveryTransport opens many sessions at once on each
// transport and checks each one's echoes.
func TestConcurrentSessionsEveryTransport(t *testing.T) {
	f := newFam(t)
	dialers := serveAll(t, f)
	const sessions, messages = 24, 20
	for name, dial := range dialers {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for i := 0; i < sessions; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := dial(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					s, err := session.Dial(ctx, c, f.cfg(f.node))
					if err != nil {
						t.Error(err)
						return
					}
					defer s.Close(ctx)
					for j := 0; j < messages; j++ {
						p := []byte(fmt.Sprintf("%s session %d message %d", name, i, j))
						if err := s.Send(ctx, wire.OpDeviceInfo, p); err != nil {
							t.Error(err)
							return
						}
						m, err := s.Recv(ctx)
						if err != nil || string(m.Payload) != string(p) {
							t.Errorf("echo: %q %v", m.Payload, err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// TestNATSRestartMidTraffic stops the NATS server in the middle of a
// session's traffic and starts it again on the same port: the client
// reconnects by itself, the session carries on, and no frame is accepted
// twice.
func TestNATSRestartMidTraffic(t *testing.T) {
	f := newFam(t)
	port := freePort(t)
	ns := startNATS(t, port)
	defer func() { ns.stop() }()
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond), nats.ReconnectBufSize(8 << 20)}
	hubNC, err := nats.Connect(ns.url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer hubNC.Close()
	nodeNC, err := nats.Connect(ns.url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nodeNC.Close()

	nl, err := transport.ListenNATS(hubNC, "fam", "hub")
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	received := make(chan uint32, 1024)
	go func() {
		c, err := nl.Accept(ctx)
		if err != nil {
			return
		}
		s, err := (&session.Responder{Config: f.cfg(f.hub)}).Accept(ctx, c)
		if err != nil {
			t.Error(err)
			return
		}
		for {
			m, err := s.Recv(ctx)
			if err != nil {
				close(received)
				return
			}
			received <- binary.BigEndian.Uint32(m.Payload)
		}
	}()
	c, err := transport.DialNATS(nodeNC, "fam", "pi", "hub")
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.Dial(ctx, c, f.cfg(f.node))
	if err != nil {
		t.Fatal(err)
	}
	send := func(i uint32) {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], i)
		s.Send(ctx, wire.OpStreamData, b[:])
	}
	seen := map[uint32]bool{}
	collect := func(until uint32) {
		deadline := time.After(20 * time.Second)
		for !seen[until] {
			select {
			case i, ok := <-received:
				if !ok {
					t.Fatal("the hub's session ended")
				}
				if seen[i] {
					t.Fatalf("message %d accepted twice", i)
				}
				seen[i] = true
			case <-deadline:
				t.Fatalf("message %d never arrived", until)
			}
		}
	}
	for i := uint32(0); i < 50; i++ {
		send(i)
	}
	collect(49)

	ns.stop()
	for i := uint32(50); i < 60; i++ {
		send(i) // buffered by nats.go while disconnected
	}
	ns = startNATS(t, port)
	// Wait for both clients to be back, then send more.
	for deadline := time.Now().Add(20 * time.Second); !hubNC.IsConnected() || !nodeNC.IsConnected(); {
		if time.Now().After(deadline) {
			t.Fatal("clients did not reconnect")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := uint32(60); i < 110; i++ {
		send(i)
	}
	collect(109)
	if !strings.Contains(c.RemoteAddr(), "nats") {
		t.Error(c.RemoteAddr())
	}
}

// TestResumeAfterDroppedTCPConnection: a node's TCP connection drops; it
// comes back on a new connection with its ticket (no full handshake), and
// the spent ticket does not work again. Rotation happens under traffic.
func TestResumeAfterDroppedTCPConnection(t *testing.T) {
	f := newFam(t)
	var kr ticket.Keyring
	kr.Add(ticket.Key{ID: 1, Secret: [32]byte{1, 2, 3}})
	r := &session.Responder{Config: f.cfg(f.hub), Tickets: &session.Tickets{Keys: &kr,
		Lookup: func(context.Context, identity.NodeID) (*identity.Certificate, error) { return f.node.Cert, nil }}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go echo(r, transport.NewStream(c))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dial := func() transport.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return transport.NewStream(c)
	}
	roundTrip := func(s *session.Session, p string) {
		t.Helper()
		if err := s.Send(ctx, wire.OpStreamData, []byte(p)); err != nil {
			t.Fatal(err)
		}
		m, err := s.Recv(ctx)
		if err != nil || string(m.Payload) != p {
			t.Fatalf("echo %q: %q %v", p, m.Payload, err)
		}
	}
	conn := dial()
	s, err := session.Dial(ctx, conn, f.cfg(f.node))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if i%10 == 9 {
			s.Rotate(ctx)
		}
		roundTrip(s, fmt.Sprintf("before %d", i))
	}
	tk, ok := s.Ticket()
	if !ok {
		t.Fatal("no ticket")
	}
	conn.Close() // the connection drops
	if _, err := s.Recv(ctx); err == nil {
		t.Fatal("the dropped session still reads")
	}
	s2, err := session.Resume(ctx, dial(), f.cfg(f.node), tk)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	roundTrip(s2, "after resume")
	if _, err := session.Resume(ctx, dial(), f.cfg(f.node), tk); err == nil {
		t.Fatal("a spent ticket resumed again")
	}
}
