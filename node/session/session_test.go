package session

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

type family struct {
	root *identity.Root
	hub  *identity.Identity
	node *identity.Identity
}

func newFamily(t *testing.T) *family {
	t.Helper()
	root, err := identity.NewRoot(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &family{root: root, hub: member(t, root, identity.RoleHub, "nas"), node: member(t, root, identity.RoleNode, "pi")}
}

func member(t *testing.T, root *identity.Root, role identity.Role, name string) *identity.Identity {
	t.Helper()
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

func (f *family) config(id *identity.Identity, tier wire.Tier) *Config {
	return &Config{Identity: id, Root: f.root.Public(), Tier: tier, Floor: wire.Tier3, Rand: rand.Reader,
		Capabilities: []payload.Capability{payload.CapChaCha20, payload.CapFragmentation}, Log: zerolog.Nop()}
}

type pair struct{ client, server *Session }

// connect runs both sides of a handshake over conns and returns the
// sessions and the two errors.
func connect(t *testing.T, cc, sc transport.Conn, ccfg *Config, r *Responder) (pair, error, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var p pair
	var serr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.server, serr = r.Accept(ctx, sc)
	}()
	var cerr error
	p.client, cerr = Dial(ctx, cc, ccfg)
	wg.Wait()
	return p, cerr, serr
}

func mustConnect(t *testing.T, f *family, ctier, stier wire.Tier) pair {
	t.Helper()
	cc, sc := transport.Pipe()
	p, cerr, serr := connect(t, cc, sc, f.config(f.node, ctier), &Responder{Config: f.config(f.hub, stier)})
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	return p
}

func recv(t *testing.T, s *Session) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := s.Recv(ctx)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return m
}

func TestHandshakeAndTraffic(t *testing.T) {
	f := newFamily(t)
	p := mustConnect(t, f, wire.Tier5, wire.Tier4)
	if p.client.Tier() != wire.Tier4 || p.server.Tier() != wire.Tier4 {
		t.Errorf("negotiated %d/%d, want min(5, 4) = 4", p.client.Tier(), p.server.Tier())
	}
	if p.client.Peer().Name != "nas" || p.server.Peer().Name != "pi" {
		t.Errorf("peers %q %q", p.client.Peer().Name, p.server.Peer().Name)
	}
	if p.client.ID() != p.server.ID() || p.client.ID() == 0 {
		t.Errorf("session IDs %d %d", p.client.ID(), p.server.ID())
	}
	ctx := context.Background()
	if err := p.client.Send(ctx, wire.OpDeviceList, []byte("list")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, p.server); m.Op != wire.OpDeviceList || string(m.Payload) != "list" || m.Tier != wire.Tier4 {
		t.Errorf("server got %+v", m)
	}
	if err := p.server.Send(ctx, wire.OpDeviceInfo, []byte("reply")); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, p.client); m.Op != wire.OpDeviceInfo || string(m.Payload) != "reply" {
		t.Errorf("client got %+v", m)
	}
	st := p.client.Status()
	if st.Tier != wire.Tier4 || st.RequestedTier != wire.Tier5 || st.FramesSent < 2 || st.Peer.Name != "nas" {
		t.Errorf("status %+v", st)
	}
}

func TestNegotiationFloors(t *testing.T) {
	f := newFamily(t)
	// The client wants 5 and accepts nothing less; the hub grants at most 4.
	ccfg := f.config(f.node, wire.Tier5)
	ccfg.Floor = wire.Tier5
	cc, sc := transport.Pipe()
	_, cerr, serr := connect(t, cc, sc, ccfg, &Responder{Config: f.config(f.hub, wire.Tier4)})
	if !errors.Is(cerr, ErrBelowFloor) || serr == nil {
		t.Errorf("client below its floor: client %v, server %v", cerr, serr)
	}
	// The client asks for 3; the hub's floor is 4: refused with FORBIDDEN.
	scfg := f.config(f.hub, wire.Tier5)
	scfg.Floor = wire.Tier4
	cc, sc = transport.Pipe()
	_, cerr, serr = connect(t, cc, sc, f.config(f.node, wire.Tier3), &Responder{Config: scfg})
	if !errors.Is(cerr, ErrPeerError) || !errors.Is(serr, ErrBelowFloor) {
		t.Errorf("request below the hub's floor: client %v, server %v", cerr, serr)
	}
}

func TestIdentityRejected(t *testing.T) {
	f := newFamily(t)
	other := newFamily(t)
	// A node of another family.
	cc, sc := transport.Pipe()
	_, cerr, serr := connect(t, cc, sc, other.config(other.node, wire.Tier4), &Responder{Config: f.config(f.hub, wire.Tier4)})
	if !errors.Is(serr, identity.ErrCertificate) || cerr == nil {
		t.Errorf("foreign node: client %v, server %v", cerr, serr)
	}
	// A revoked node.
	scfg := f.config(f.hub, wire.Tier4)
	scfg.Revoked = func(id identity.NodeID) bool { return id == f.node.Cert.Node }
	cc, sc = transport.Pipe()
	_, cerr, serr = connect(t, cc, sc, f.config(f.node, wire.Tier4), &Responder{Config: scfg})
	if !errors.Is(serr, identity.ErrRevoked) || !errors.Is(cerr, ErrPeerError) {
		t.Errorf("revoked node: client %v, server %v", cerr, serr)
	}
	// A stolen certificate without its key: the proof fails.
	thief := &identity.Identity{Cert: f.node.Cert, Private: member(t, f.root, identity.RoleNode, "x").Private}
	cc, sc = transport.Pipe()
	_, cerr, serr = connect(t, cc, sc, f.config(thief, wire.Tier4), &Responder{Config: f.config(f.hub, wire.Tier4)})
	if !errors.Is(serr, identity.ErrProof) || cerr == nil {
		t.Errorf("stolen certificate: client %v, server %v", cerr, serr)
	}
}

// tamper is a Conn that lets a test change frames in flight.
type tamper struct {
	transport.Conn
	mu  sync.Mutex
	fix func(n int, b []byte) []byte
	n   int
}

func (c *tamper) WriteFrame(ctx context.Context, b []byte) error {
	c.mu.Lock()
	if c.fix != nil {
		b = c.fix(c.n, bytes.Clone(b))
	}
	c.n++
	c.mu.Unlock()
	return c.Conn.WriteFrame(ctx, b)
}

func TestDowngradeInFlightFails(t *testing.T) {
	f := newFamily(t)
	cc, sc := transport.Pipe()
	// A man in the middle rewrites SESSION_INIT's requested tier from 5 to
	// 3 (and fixes the digest): the transcripts differ, so the first
	// sealed frame fails and the handshake does not complete.
	cc = &tamper{Conn: cc, fix: func(n int, b []byte) []byte {
		if n != 0 {
			return b
		}
		fr, _ := wire.ParseHandshake(b)
		var init payload.SessionInit
		init.Unmarshal(fr.Body)
		init.RequestedTier = 3
		p, _ := init.Marshal()
		h := fr.Header
		out, _ := wire.AppendHandshake(nil, &h, p)
		return out
	}}
	ccfg := f.config(f.node, wire.Tier5)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r := &Responder{Config: f.config(f.hub, wire.Tier5)}
	var serr error
	done := make(chan struct{})
	go func() { _, serr = r.Accept(ctx, sc); close(done) }()
	_, cerr := Dial(ctx, cc, ccfg)
	<-done
	if cerr == nil || serr == nil {
		t.Fatalf("tampered handshake completed: client %v, server %v", cerr, serr)
	}
}

func TestPolicyForbidden(t *testing.T) {
	f := newFamily(t)
	cc, sc := transport.Pipe()
	scfg := f.config(f.hub, wire.Tier5)
	scfg.Policy = &Policy{}
	if err := scfg.Policy.RaiseOp(wire.OpDeviceLock, wire.Tier5); err != nil {
		t.Fatal(err)
	}
	if err := scfg.Policy.RaiseOp(wire.OpDeviceLock, wire.Tier1); err == nil {
		t.Fatal("a policy lowered a minimum")
	}
	p, cerr, serr := connect(t, cc, sc, f.config(f.node, wire.Tier3), &Responder{Config: scfg})
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	ctx := context.Background()
	go p.server.Recv(ctx) // the server answers by itself
	if err := p.client.Send(ctx, wire.OpDeviceLock, []byte("lock 7")); err != nil {
		t.Fatal(err)
	}
	m := recv(t, p.client)
	var e payload.Error
	if m.Op != wire.OpError || e.Unmarshal(m.Payload) != nil || e.Code != wire.CodeForbidden || e.RequiredTier != 5 {
		t.Fatalf("want ERROR FORBIDDEN required 5, got %+v %+v", m, e)
	}
	if p.server.Status().Rejected != 1 {
		t.Errorf("rejections counted: %d", p.server.Status().Rejected)
	}
}

func TestForgedAndReplayedFramesDropped(t *testing.T) {
	f := newFamily(t)
	cc, sc := transport.Pipe()
	var captured [][]byte
	tc := &tamper{Conn: cc}
	p, cerr, serr := connect(t, tc, sc, f.config(f.node, wire.Tier3), &Responder{Config: f.config(f.hub, wire.Tier3)})
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	tc.mu.Lock()
	tc.fix = func(_ int, b []byte) []byte { captured = append(captured, bytes.Clone(b)); return b }
	tc.mu.Unlock()
	ctx := context.Background()
	p.client.Send(ctx, wire.OpGPIOLineSet, []byte("on"))
	if m := recv(t, p.server); string(m.Payload) != "on" {
		t.Fatalf("%+v", m)
	}
	forged := bytes.Clone(captured[0])
	forged[len(forged)-1] ^= 1
	cc.WriteFrame(ctx, forged)      // bad tag
	cc.WriteFrame(ctx, captured[0]) // replay
	cc.WriteFrame(ctx, []byte{0x30, 0, 0, 0})
	p.client.Send(ctx, wire.OpGPIOLineSet, []byte("off"))
	if m := recv(t, p.server); string(m.Payload) != "off" {
		t.Fatalf("after forgeries: %+v", m)
	}
	if got := p.server.Status().Rejected; got != 3 {
		t.Errorf("rejected %d frames, want 3", got)
	}
}

func TestFragmentedMessage(t *testing.T) {
	f := newFamily(t)
	cc, sc := transport.Pipe()
	ccfg := f.config(f.node, wire.Tier3)
	ccfg.MaxFrame = 512
	p, cerr, serr := connect(t, cc, sc, ccfg, &Responder{Config: f.config(f.hub, wire.Tier3)})
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	big := bytes.Repeat([]byte("0123456789"), 1000)
	if err := p.client.Send(context.Background(), wire.OpStreamData, big); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, p.server); !bytes.Equal(m.Payload, big) {
		t.Fatalf("reassembled %d bytes", len(m.Payload))
	}
}

func TestRotationUnderTraffic(t *testing.T) {
	f := newFamily(t)
	p := mustConnect(t, f, wire.Tier3, wire.Tier3)
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		if i%5 == 4 {
			if err := p.client.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
		}
		p.client.Send(ctx, wire.OpStreamData, []byte{byte(i)})
		if m := recv(t, p.server); m.Payload[0] != byte(i) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	if st := p.client.Status(); st.SendEpoch != 4 {
		t.Errorf("send epoch %d, want 4", st.SendEpoch)
	}
	if st := p.server.Status(); st.RecvEpoch != 4 {
		t.Errorf("receive epoch %d, want 4", st.RecvEpoch)
	}
}

func TestKeepaliveCloseRevoke(t *testing.T) {
	f := newFamily(t)
	p := mustConnect(t, f, wire.Tier3, wire.Tier3)
	ctx := context.Background()
	go p.server.Recv(ctx)
	p.client.Send(ctx, wire.OpKeepalive, nil)
	p.client.Send(ctx, wire.OpNOP, nil)
	p.client.Send(ctx, wire.OpDeviceList, nil)
	// KEEPALIVE_ACK is consumed by the client's Recv; the reply to
	// DEVICE_LIST never comes, so close from the client and see the server end.
	p.client.Close(ctx)
	time.Sleep(10 * time.Millisecond)
	if _, err := p.client.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("client after close: %v", err)
	}

	p = mustConnect(t, f, wire.Tier3, wire.Tier3)
	errc := make(chan error, 1)
	go func() { _, err := p.client.Recv(ctx); errc <- err }()
	p.server.Revoke(ctx)
	if err := <-errc; !errors.Is(err, ErrRevoked) {
		t.Errorf("client after revoke: %v", err)
	}
}

func TestDeadPeer(t *testing.T) {
	f := newFamily(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ccfg := f.config(f.node, wire.Tier3)
	ccfg.Clock = clock
	cc, sc := transport.Pipe()
	p, cerr, serr := connect(t, cc, sc, ccfg, &Responder{Config: f.config(f.hub, wire.Tier3)})
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	_ = p
	mu.Lock()
	now = now.Add(time.Minute) // the server never answers
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.client.Keepalive(ctx, time.Millisecond, 30*time.Second)
	if _, err := p.client.Recv(ctx); !errors.Is(err, ErrDeadPeer) {
		t.Errorf("after the peer went silent: %v", err)
	}
}

func TestOverTCP(t *testing.T) {
	f := newFamily(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := &Responder{Config: f.config(f.hub, wire.Tier4)}
	const clients = 8
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				s, err := r.Accept(context.Background(), transport.NewStream(c))
				if err != nil {
					return
				}
				for {
					m, err := s.Recv(context.Background())
					if err != nil {
						return
					}
					s.Send(context.Background(), m.Op, append([]byte("echo "), m.Payload...))
				}
			}()
		}
	}()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			s, err := Dial(context.Background(), transport.NewStream(c), f.config(f.node, wire.Tier4))
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close(context.Background())
			for j := 0; j < 20; j++ {
				s.Send(context.Background(), wire.OpDeviceInfo, []byte{byte(j)})
				m, err := s.Recv(context.Background())
				if err != nil || !bytes.Equal(m.Payload, []byte{'e', 'c', 'h', 'o', ' ', byte(j)}) {
					t.Errorf("echo %d: %v %q", j, err, m.Payload)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestFederatedPeer: hubs of two families accept each other only through
// Foreign, which names the other family's root, and both ends hold the
// same handshake hash (what the federation code is derived from).
func TestFederatedPeer(t *testing.T) {
	a, b := newFamily(t), newFamily(t)
	pinned := func(f *family) func(identity.FamilyID) (ed25519.PublicKey, bool) {
		return func(id identity.FamilyID) (ed25519.PublicKey, bool) {
			if id == f.root.Family() {
				return f.root.Public(), true
			}
			return nil, false
		}
	}
	for _, tc := range []struct {
		name           string
		client, server func(identity.FamilyID) (ed25519.PublicKey, bool)
		ok             bool
	}{
		{"both pinned", pinned(a), pinned(b), true},
		{"server knows no foreign root", pinned(a), nil, false},
		{"server pinned a third family", pinned(a), pinned(newFamily(t)), false},
		{"client pinned a third family", pinned(newFamily(t)), pinned(b), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ccfg, scfg := b.config(b.hub, wire.Tier4), a.config(a.hub, wire.Tier4)
			ccfg.Foreign, scfg.Foreign = tc.client, tc.server
			cc, sc := transport.Pipe()
			p, cerr, serr := connect(t, cc, sc, ccfg, &Responder{Config: scfg})
			if tc.ok != (cerr == nil && serr == nil) {
				t.Fatalf("client %v, server %v; want success %v", cerr, serr, tc.ok)
			}
			if !tc.ok {
				return
			}
			if p.server.Peer().Family != b.root.Family() || p.client.Peer().Family != a.root.Family() {
				t.Errorf("peers: %v / %v", p.server.Peer().Family, p.client.Peer().Family)
			}
			if p.client.HandshakeHash() != p.server.HandshakeHash() || p.client.HandshakeHash() == ([32]byte{}) {
				t.Error("the two ends hold different handshake hashes")
			}
		})
	}
}

// tap records the frames a Conn reads.
type tap struct {
	transport.Conn
	mu     sync.Mutex
	frames [][]byte
}

func (c *tap) ReadFrame(ctx context.Context) ([]byte, error) {
	b, err := c.Conn.ReadFrame(ctx)
	c.mu.Lock()
	c.frames = append(c.frames, bytes.Clone(b))
	c.mu.Unlock()
	return b, err
}

// stale is a Conn whose first reads are frames of an earlier session.
type stale struct {
	transport.Conn
	old [][]byte
}

func (c *stale) ReadFrame(ctx context.Context) ([]byte, error) {
	if len(c.old) > 0 {
		b := c.old[0]
		c.old = c.old[1:]
		return b, nil
	}
	return c.Conn.ReadFrame(ctx)
}

// TestDialerSkipsStaleFrames: over a Matrix room an earlier session's last
// frames can arrive before the answer to a new hello; the dialer skips
// sealed session frames (a bounded number) but not garbage.
func TestDialerSkipsStaleFrames(t *testing.T) {
	f := newFamily(t)
	cc, sc := transport.Pipe()
	tc := &tap{Conn: cc}
	p, cerr, serr := connect(t, tc, sc, f.config(f.node, wire.Tier4), &Responder{Config: f.config(f.hub, wire.Tier4)})
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	if err := p.server.Send(context.Background(), wire.OpDeviceList, []byte("old")); err != nil {
		t.Fatal(err)
	}
	recv(t, p.client)
	tc.mu.Lock()
	old := tc.frames[len(tc.frames)-1]
	tc.mu.Unlock()

	for _, tc := range []struct {
		name  string
		stale [][]byte
		ok    bool
	}{
		{"one old frame", [][]byte{old}, true},
		{"many old frames", slices.Repeat([][]byte{old}, maxStale), true},
		{"too many old frames", slices.Repeat([][]byte{old}, maxStale+1), false},
		{"garbage", [][]byte{{0xff, 0x00}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := transport.Pipe()
			_, cerr, _ := connect(t, &stale{Conn: cc, old: tc.stale}, sc, f.config(f.node, wire.Tier4), &Responder{Config: f.config(f.hub, wire.Tier4)})
			if (cerr == nil) != tc.ok {
				t.Errorf("dial: %v; want success %v", cerr, tc.ok)
			}
		})
	}
}
