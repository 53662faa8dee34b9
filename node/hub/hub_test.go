package hub_test

import (
	"context"
	"crypto/rand"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/agent"
	"github.com/myclerk/myclerk-bridge/node/hub"
	"github.com/myclerk/myclerk-bridge/node/hub/hubtest"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

type world struct {
	*hubtest.World
	clock *clock
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newWorld(t *testing.T, cfg hub.Config) *world {
	c := &clock{now: time.Now()}
	cfg.Clock = c.Now
	return &world{World: hubtest.New(t, cfg), clock: c}
}

// client sends requests and matches answers by request ID; events are
// collected on the side.
type client struct {
	t      *testing.T
	s      *session.Session
	mu     sync.Mutex
	req    uint32
	events chan ops.Event
	wait   map[uint32]chan session.Message
}

func newClient(t *testing.T, s *session.Session) *client {
	c := &client{t: t, s: s, events: make(chan ops.Event, 100), wait: map[uint32]chan session.Message{}}
	go func() {
		for {
			m, err := s.Recv(context.Background())
			if err != nil {
				return
			}
			var id uint32
			switch m.Op {
			case wire.OpDeviceEvent:
				var e ops.Event
				ops.Unmarshal(m.Payload, &e)
				c.events <- e
				continue
			case wire.OpError:
				var e payload.Error
				e.Unmarshal(m.Payload)
				id = e.RefSeq
			default:
				var r ops.Reply
				ops.Unmarshal(m.Payload, &r)
				id = r.Req
			}
			c.mu.Lock()
			ch := c.wait[id]
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}()
	return c
}

// do sends a request and returns its reply, or the ERROR code.
func (c *client) do(op wire.Op, req ops.Request) (ops.Reply, wire.Code) {
	c.t.Helper()
	c.mu.Lock()
	c.req++
	req.Req = c.req
	ch := make(chan session.Message, 1)
	c.wait[req.Req] = ch
	c.mu.Unlock()
	b, _ := ops.Marshal(req)
	if err := c.s.Send(context.Background(), op, b); err != nil {
		c.t.Fatal(err)
	}
	select {
	case m := <-ch:
		if m.Op == wire.OpError {
			var e payload.Error
			e.Unmarshal(m.Payload)
			return ops.Reply{}, e.Code
		}
		var r ops.Reply
		if err := ops.Unmarshal(m.Payload, &r); err != nil {
			c.t.Fatal(err)
		}
		return r, wire.CodeOK
	case <-time.After(5 * time.Second):
		c.t.Fatalf("%v: no answer", op)
	}
	return ops.Reply{}, 0
}

// startNode connects a node with a fast simulated sensor.
func (w *world) startNode(name string) *agent.SimSensor {
	sensor := agent.NewSimSensor("temp", "Living room", 21, 20*time.Millisecond)
	s := w.Connect(w.Member(identity.RoleNode, name))
	go (&agent.Agent{Devices: []agent.Device{sensor}, Log: zerolog.Nop()}).Serve(context.Background(), s)
	// Wait until the hub knows the device.
	for i := 0; i < 200 && len(w.Hub.Devices()) == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	return sensor
}

func TestDevicesLocksEventsRelay(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	w.startNode("pi")
	a := newClient(t, w.Connect(w.Member(identity.RoleClient, "phone")))
	b := newClient(t, w.Connect(w.Member(identity.RoleClient, "laptop")))

	r, code := a.do(wire.OpDeviceList, ops.Request{})
	if code != wire.CodeOK || len(r.Devices) != 1 || r.Devices[0].ID != "pi/temp" || !r.Devices[0].Available || r.Devices[0].Owner != "pi" {
		t.Fatalf("list: %v %+v", code, r)
	}
	if r, code := a.do(wire.OpDeviceCapabilities, ops.Request{Device: "pi/temp"}); code != wire.CodeOK || r.Devices[0].Capabilities["unit"] != "celsius" {
		t.Fatalf("capabilities: %v %+v", code, r)
	}
	if _, code := a.do(wire.OpDeviceInfo, ops.Request{Device: "pi/nothing"}); code != wire.CodeNotFound {
		t.Errorf("unknown device: %v", code)
	}

	// Subscribe: readings arrive as events.
	if _, code := a.do(wire.OpDeviceSubscribe, ops.Request{Device: "pi/temp"}); code != wire.CodeOK {
		t.Fatal(code)
	}
	select {
	case e := <-a.events:
		if e.Device != "pi/temp" || e.Kind != "reading" || e.Values["temperature"] == "" {
			t.Errorf("event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}

	// Lock with a lease: exclusive until it expires or is released.
	if r, code := a.do(wire.OpDeviceLock, ops.Request{Device: "pi/temp", Lease: 60}); code != wire.CodeOK || r.Lease != 60 {
		t.Fatalf("lock: %v %+v", code, r)
	}
	if _, code := b.do(wire.OpDeviceLock, ops.Request{Device: "pi/temp"}); code != wire.CodeConflict {
		t.Errorf("second lock: %v", code)
	}
	if _, code := b.do(wire.OpDeviceConfigure, ops.Request{Device: "pi/temp", Settings: map[string]string{"interval": "2s"}}); code != wire.CodeConflict {
		t.Errorf("configure of a locked device: %v", code)
	}
	if r, _ := b.do(wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); r.Devices[0].LockedBy != "phone" {
		t.Errorf("info shows lock %+v", r.Devices[0])
	}
	w.clock.Add(61 * time.Second) // the lease expires
	if _, code := b.do(wire.OpDeviceLock, ops.Request{Device: "pi/temp", Lease: 10}); code != wire.CodeOK {
		t.Errorf("lock after the lease expired: %v", code)
	}
	if _, code := b.do(wire.OpDeviceUnlock, ops.Request{Device: "pi/temp"}); code != wire.CodeOK {
		t.Error(code)
	}

	// Configure is relayed to the node and its answer back.
	r, code = a.do(wire.OpDeviceConfigure, ops.Request{Device: "pi/temp", Settings: map[string]string{"interval": "2s"}})
	if code != wire.CodeOK || r.Result != "configured" || r.Devices[0].Capabilities["interval"] != "2s" || r.Devices[0].ID != "pi/temp" || !r.Devices[0].Available {
		t.Fatalf("relayed configure: %v %+v", code, r)
	}
	if r, _ := b.do(wire.OpDeviceCapabilities, ops.Request{Device: "pi/temp"}); r.Devices[0].Capabilities["interval"] != "2s" {
		t.Errorf("the hub did not record the new state: %+v", r.Devices[0])
	}
	if _, code := a.do(wire.OpDeviceConfigure, ops.Request{Device: "pi/temp", Settings: map[string]string{"colour": "red"}}); code != wire.CodeBadRequest {
		t.Errorf("bad setting relayed: %v", code)
	}
}

func TestACLModes(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeNone, Admins: []string{"admin"}})
	w.startNode("pi")
	admin := newClient(t, w.Connect(w.Member(identity.RoleClient, "admin")))
	guest := newClient(t, w.Connect(w.Member(identity.RoleClient, "guest")))

	if r, _ := guest.do(wire.OpDeviceList, ops.Request{}); len(r.Devices) != 0 {
		t.Errorf("guest sees %d devices without a grant", len(r.Devices))
	}
	if _, code := guest.do(wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); code != wire.CodeForbidden {
		t.Errorf("info without a grant: %v", code)
	}
	if _, code := guest.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "guest", Mode: ops.ModeReadWrite}); code != wire.CodeForbidden {
		t.Errorf("a guest granted itself: %v", code)
	}
	if _, code := admin.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "guest", Mode: ops.ModeRead}); code != wire.CodeOK {
		t.Fatal(code)
	}
	if _, code := guest.do(wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); code != wire.CodeOK {
		t.Errorf("info with read-only: %v", code)
	}
	if _, code := guest.do(wire.OpDeviceLock, ops.Request{Device: "pi/temp"}); code != wire.CodeForbidden {
		t.Errorf("lock with read-only: %v", code)
	}
	if _, code := guest.do(wire.OpDeviceConfigure, ops.Request{Device: "pi/temp"}); code != wire.CodeForbidden {
		t.Errorf("configure with read-only: %v", code)
	}
	if r, code := admin.do(wire.OpACLGet, ops.Request{Device: "pi/temp"}); code != wire.CodeOK || len(r.ACL) != 1 || r.ACL[0].Mode != ops.ModeRead {
		t.Errorf("acl get: %v %+v", code, r)
	}
	admin.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "guest", Mode: ops.ModeWrite})
	if _, code := guest.do(wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); code != wire.CodeForbidden {
		t.Errorf("info with write-only: %v", code)
	}
	if r, code := admin.do(wire.OpRouteCreate, ops.Request{Device: "pi/temp", Node: "guest", Priority: 5}); code != wire.CodeOK || r.Route == 0 {
		t.Fatalf("route create: %v", code)
	}
	// ROUTE_LIST shows only the routes of devices the caller may read.
	if r, _ := guest.do(wire.OpRouteList, ops.Request{}); len(r.Routes) != 0 {
		t.Errorf("write-only guest sees routes %+v", r.Routes)
	}
	// A route delivers the device's events without a subscription, while
	// the ACL lets the client read.
	admin.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "guest", Mode: ops.ModeRead})
	if r, _ := guest.do(wire.OpRouteList, ops.Request{}); len(r.Routes) != 1 || r.Routes[0].Node != "guest" {
		t.Errorf("routes %+v", r.Routes)
	}
	select {
	case e := <-guest.events:
		if e.Device != "pi/temp" {
			t.Errorf("routed event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event along the route")
	}
	admin.do(wire.OpACLRevoke, ops.Request{Device: "pi/temp", Node: "guest"})
	if r, code := guest.do(wire.OpACLGet, ops.Request{Device: "pi/temp"}); code != wire.CodeOK || r.Mode != ops.ModeNone {
		t.Errorf("mode after revoke: %v %v", code, r.Mode)
	}
}

func TestNodeDisconnectMakesDevicesUnavailable(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	s := w.Connect(w.Member(identity.RoleNode, "pi"))
	go (&agent.Agent{Devices: []agent.Device{agent.NewSimSensor("temp", "t", 20, time.Hour)}, Log: zerolog.Nop()}).Serve(context.Background(), s)
	for i := 0; i < 200 && len(w.Hub.Devices()) == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	s.Close(context.Background())
	for i := 0; i < 200 && w.Hub.Devices()[0].Available; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if w.Hub.Devices()[0].Available {
		t.Error("device still available after its node left")
	}
	c := newClient(t, w.Connect(w.Member(identity.RoleClient, "phone")))
	if _, code := c.do(wire.OpDeviceConfigure, ops.Request{Device: "pi/temp"}); code != wire.CodeServiceUnavailable {
		t.Errorf("configure of an offline device: %v", code)
	}
}

// TestForeignPeer: a hub of another family (federation) gets exactly what
// the ACL grants its qualified name: no default mode, no devices of its
// own, no ACL changes; and a gate holds its requests until it opens.
func TestForeignPeer(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite, Admins: []string{"admin"}})
	w.startNode("pi")
	other, err := identity.NewRoot(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ohub := &hubtest.World{T: t, Root: other}
	visitor := ohub.Member(identity.RoleHub, "nas")
	f := newClient(t, w.ConnectForeign(visitor, other))
	admin := newClient(t, w.Connect(w.Member(identity.RoleClient, "admin")))
	name := hub.PeerName(visitor.Cert, w.Root.Family())
	if name != "nas@"+other.Family().String()[:8] {
		t.Fatalf("PeerName = %q", name)
	}

	if r, code := f.do(wire.OpDeviceList, ops.Request{}); code != wire.CodeOK || len(r.Devices) != 0 {
		t.Fatalf("a foreign hub sees %v %+v before any grant", code, r.Devices)
	}
	// Ungranted and missing devices get the same answer.
	if _, code := f.do(wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); code != wire.CodeNotFound {
		t.Errorf("info before a grant: %v", code)
	}
	if _, code := f.do(wire.OpDeviceInfo, ops.Request{Device: "pi/none"}); code != wire.CodeNotFound {
		t.Errorf("info of a missing device: %v", code)
	}
	if r, code := f.do(wire.OpACLGet, ops.Request{Device: "pi/temp"}); code != wire.CodeNotFound {
		t.Errorf("acl get before a grant: %v %+v", code, r)
	}
	if _, code := f.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: name, Mode: ops.ModeReadWrite}); code != wire.CodeForbidden {
		t.Errorf("a foreign hub granted itself access: %v", code)
	}
	if _, code := admin.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: name, Mode: ops.ModeRead}); code != wire.CodeOK {
		t.Fatalf("grant to %s: %v", name, code)
	}
	if r, code := f.do(wire.OpDeviceList, ops.Request{}); code != wire.CodeOK || len(r.Devices) != 1 || r.Devices[0].ID != "pi/temp" {
		t.Fatalf("after the grant: %v %+v", code, r.Devices)
	}
	if _, code := f.do(wire.OpDeviceLock, ops.Request{Device: "pi/temp"}); code != wire.CodeForbidden {
		t.Errorf("lock with read-only access: %v", code)
	}
	b, _ := ops.Marshal(ops.Announce{Devices: []ops.Device{{ID: "cam", Kind: "camera"}}})
	f.s.Send(context.Background(), wire.OpDeviceAnnounce, b)
	time.Sleep(50 * time.Millisecond)
	for _, d := range w.Hub.Devices() {
		if d.ID != "pi/temp" {
			t.Errorf("a foreign hub announced %s", d.ID)
		}
	}
}

func TestServeGated(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	w.startNode("pi")
	var open atomic.Bool
	untrusted := &wire.Error{Code: wire.CodeFederationUntrusted, Reason: "not confirmed yet"}
	cc, sc := transport.Pipe()
	ctx := context.Background()
	go func() {
		s, err := (&session.Responder{Config: w.Config(w.HubID)}).Accept(ctx, sc)
		if err == nil {
			w.Hub.ServeGated(ctx, s, func() error {
				if open.Load() {
					return nil
				}
				return untrusted
			})
		}
	}()
	s, err := session.Dial(ctx, cc, w.Config(w.Member(identity.RoleClient, "phone")))
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, s)
	if _, code := c.do(wire.OpDeviceList, ops.Request{}); code != wire.CodeFederationUntrusted {
		t.Fatalf("closed gate: %v", code)
	}
	open.Store(true)
	if r, code := c.do(wire.OpDeviceList, ops.Request{}); code != wire.CodeOK || len(r.Devices) != 1 {
		t.Fatalf("open gate: %v %+v", code, r)
	}
}
