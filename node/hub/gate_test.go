package hub_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/myclerk/myclerk-bridge/node/hub"
	"github.com/myclerk/myclerk-bridge/node/hub/hubtest"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/metrics"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// TestDispatchOrder: the dispatcher checks tier, role, served, ACL and
// lock in that order, whatever else is wrong with a request.
func TestDispatchOrder(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite, Admins: []string{"admin"}})
	w.startNode("pi")
	admin := newClient(t, w.Connect(w.Member(identity.RoleClient, "admin")))
	reader := newClient(t, w.Connect(w.Member(identity.RoleClient, "reader")))
	writer := newClient(t, w.Connect(w.Member(identity.RoleClient, "writer")))
	other, _ := identity.NewRoot(rand.Reader)
	visitor := (&hubtest.World{T: t, Root: other}).Member(identity.RoleHub, "nas")
	foreign := newClient(t, w.ConnectForeign(visitor, other))
	if _, code := admin.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "reader", Mode: ops.ModeRead}); code != wire.CodeOK {
		t.Fatal(code)
	}
	if _, code := admin.do(wire.OpDeviceLock, ops.Request{Device: "pi/temp", Lease: 60}); code != wire.CodeOK {
		t.Fatal(code)
	}
	cases := []struct {
		name string
		c    *client
		op   wire.Op
		req  ops.Request
		want wire.Code
	}{
		{"role before ACL: a federated hub may not grant, even a missing device", foreign, wire.OpACLGrant, ops.Request{Device: "pi/none", Node: "x", Mode: 1}, wire.CodeForbidden},
		{"served before ACL: an op nobody serves yet", reader, wire.OpGPIOLineSet, ops.Request{Device: "pi/none"}, wire.CodeUnsupported},
		{"an op no table defines", reader, 0x0700, ops.Request{Device: "pi/temp"}, wire.CodeUnsupported},
		{"ACL before lock: read-only may not configure", reader, wire.OpDeviceConfigure, ops.Request{Device: "pi/temp"}, wire.CodeForbidden},
		{"lock: read-write may not configure what another locked", writer, wire.OpDeviceConfigure, ops.Request{Device: "pi/temp"}, wire.CodeConflict},
		{"lock: nor unlock it", writer, wire.OpDeviceUnlock, ops.Request{Device: "pi/temp"}, wire.CodeConflict},
		{"a lock does not refuse reading", writer, wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}, wire.CodeOK},
		{"admin ops: not the owner, not an admin", writer, wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "reader", Mode: 3}, wire.CodeForbidden},
		{"admin ops on a route's device", writer, wire.OpRouteDelete, ops.Request{Route: 999}, wire.CodeNotFound},
		{"missing device", writer, wire.OpDeviceInfo, ops.Request{Device: "pi/none"}, wire.CodeNotFound},
	}
	for _, tc := range cases {
		if _, code := tc.c.do(tc.op, tc.req); code != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, code, tc.want)
		}
	}
	// Pushes from a role the table does not name are dropped unanswered.
	b, _ := ops.Marshal(ops.Announce{Devices: []ops.Device{{ID: "cam", Kind: "camera"}}})
	writer.s.Send(context.Background(), wire.OpDeviceAnnounce, b)
	if r, _ := writer.do(wire.OpDeviceList, ops.Request{}); len(r.Devices) != 1 {
		t.Errorf("a client announced a device: %+v", r.Devices)
	}
}

// TestExclusiveMeansExclusive: while a member holds an exclusive grant,
// everyone else (default mode, owner and admins too) has no access.
func TestExclusiveMeansExclusive(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite, Admins: []string{"admin"}})
	w.startNode("pi")
	admin := newClient(t, w.Connect(w.Member(identity.RoleClient, "admin")))
	phone := newClient(t, w.Connect(w.Member(identity.RoleClient, "phone")))
	laptop := newClient(t, w.Connect(w.Member(identity.RoleClient, "laptop")))
	if _, code := admin.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "phone", Mode: ops.ModeExclusive}); code != wire.CodeOK {
		t.Fatal(code)
	}
	for _, c := range []*client{laptop, admin} {
		if _, code := c.do(wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); code != wire.CodeForbidden {
			t.Errorf("info by another member during an exclusive grant: %v", code)
		}
		if r, _ := c.do(wire.OpDeviceList, ops.Request{}); len(r.Devices) != 0 {
			t.Errorf("another member lists %+v", r.Devices)
		}
	}
	if r, code := phone.do(wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); code != wire.CodeOK || r.Mode != ops.ModeExclusive {
		t.Errorf("the holder: %v %v", code, r.Mode)
	}
	if _, code := phone.do(wire.OpDeviceLock, ops.Request{Device: "pi/temp"}); code != wire.CodeOK {
		t.Errorf("the holder locks: %v", code)
	}
	if _, code := admin.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "laptop", Mode: ops.ModeExclusive}); code != wire.CodeConflict {
		t.Errorf("a second exclusive grant: %v", code)
	}
	// Revoking it gives the others their access back, and frees the lock.
	if _, code := admin.do(wire.OpACLRevoke, ops.Request{Device: "pi/temp", Node: "phone"}); code != wire.CodeOK {
		t.Fatal(code)
	}
	if r, code := laptop.do(wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); code != wire.CodeOK || r.Mode != ops.ModeReadWrite || r.Devices[0].LockedBy != "" {
		t.Errorf("after the revoke: %v %v %+v", code, r.Mode, r.Devices)
	}
}

// TestLosingReadEndsSubscriptions: a subscriber whose mode stops allowing
// reads loses the subscription, is told so, and gets no more events.
func TestLosingReadEndsSubscriptions(t *testing.T) {
	for _, mode := range []ops.Mode{ops.ModeNone, ops.ModeWrite} {
		t.Run(mode.String(), func(t *testing.T) {
			w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite, Admins: []string{"admin"}})
			w.startNode("pi")
			admin := newClient(t, w.Connect(w.Member(identity.RoleClient, "admin")))
			guest := newClient(t, w.Connect(w.Member(identity.RoleClient, "guest")))
			if _, code := guest.do(wire.OpDeviceSubscribe, ops.Request{Device: "pi/temp"}); code != wire.CodeOK {
				t.Fatal(code)
			}
			if e := <-guest.events; e.Kind != "reading" {
				t.Fatalf("first event %+v", e)
			}
			if _, code := admin.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "guest", Mode: mode}); code != wire.CodeOK {
				t.Fatal(code)
			}
			deadline := time.After(5 * time.Second)
			for {
				select {
				case e := <-guest.events:
					if e.Kind == "reading" {
						continue // sent before the change
					}
					if e.Kind != "access" || e.Values["subscription"] != "ended" || e.Values["mode"] != mode.String() {
						t.Fatalf("notice %+v", e)
					}
				case <-deadline:
					t.Fatal("no notice that the subscription ended")
				}
				break
			}
			// Readings come every 20 ms; none may arrive now.
			select {
			case e := <-guest.events:
				t.Errorf("an event after the subscription ended: %+v", e)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}

// TestRelayCarriesCaller: a relayed request reaches the device's node with
// the relay's own ID, the caller the hub authenticated and its mode, and
// every field the caller sent (a forged caller replaced); only the
// device's node answers it, with its op.
func TestRelayCarriesCaller(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	node := w.Connect(w.Member(identity.RoleNode, "pi"))
	b, _ := ops.Marshal(ops.Announce{Devices: []ops.Device{{ID: "temp", Kind: "sensor"}}})
	if err := node.Send(context.Background(), wire.OpDeviceAnnounce, b); err != nil {
		t.Fatal(err)
	}
	intruder := w.Connect(w.Member(identity.RoleNode, "other"))
	phoneID := w.Member(identity.RoleClient, "phone")
	phone := w.Connect(phoneID)
	for i := 0; i < 200 && len(w.Hub.Devices()) == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	raw, _ := msgpack.Marshal(map[string]any{"req": 7, "device": "pi/temp", "settings": map[string]string{"a": "1"},
		"extra": "kept", "caller": map[string]any{"node": "forged", "name": "admin", "mode": 4}, "relay": 99})
	if err := phone.Send(context.Background(), wire.OpDeviceConfigure, raw); err != nil {
		t.Fatal(err)
	}
	m, err := node.Recv(context.Background())
	if err != nil || m.Op != wire.OpDeviceConfigure {
		t.Fatalf("node got %v %v", m.Op, err)
	}
	var got map[string]any
	if err := msgpack.Unmarshal(m.Payload, &got); err != nil {
		t.Fatal(err)
	}
	var req ops.Request
	ops.Unmarshal(m.Payload, &req)
	if req.Relay == 0 || req.Relay == 99 || req.Req != req.Relay || req.Caller == nil ||
		req.Caller.Node != phoneID.Cert.Node.String() || req.Caller.Name != "phone" || req.Caller.Mode != ops.ModeReadWrite ||
		got["extra"] != "kept" || req.Settings["a"] != "1" {
		t.Fatalf("relayed %+v caller %+v (payload %v)", req, req.Caller, got)
	}
	answer := func(s *session.Session, op wire.Op, relay uint32, result string) {
		b, _ := ops.Marshal(ops.Reply{Req: relay, Relay: relay, Result: result})
		if err := s.Send(context.Background(), op, b); err != nil {
			t.Fatal(err)
		}
	}
	answer(intruder, wire.OpDeviceConfigure, req.Relay, "forged by another node")
	answer(node, wire.OpDeviceInfo, req.Relay, "wrong op")
	answer(node, wire.OpDeviceConfigure, req.Relay, "configured")
	r, err := phone.Recv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var reply ops.Reply
	if err := ops.Unmarshal(r.Payload, &reply); err != nil || r.Op != wire.OpDeviceConfigure || reply.Req != 7 || reply.Relay != 0 || reply.Result != "configured" {
		t.Fatalf("phone got %v %+v %v", r.Op, reply, err)
	}
	// An ERROR from the node goes back with the caller's request ID.
	phone.Send(context.Background(), wire.OpDeviceConfigure, raw)
	for m.Op = wire.OpError; m.Op != wire.OpDeviceConfigure; { // the hub answered the wrong-op message NOT_FOUND
		if m, err = node.Recv(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ops.Unmarshal(m.Payload, &req)
	eb, _ := (&payload.Error{Code: wire.CodeBadRequest, RefSeq: req.Relay, Message: "no"}).Marshal()
	node.Send(context.Background(), wire.OpError, eb)
	r, _ = phone.Recv(context.Background())
	var e payload.Error
	if r.Op != wire.OpError || e.Unmarshal(r.Payload) != nil || e.RefSeq != 7 || e.Code != wire.CodeBadRequest {
		t.Fatalf("phone got %v %+v", r.Op, e)
	}
}

// TestAnnounceLimits: an announcement over a limit is refused whole with
// a clear ERROR to its node, and listing devices keeps working for
// everyone (it used to fail for every client once a node had announced
// more devices than an answer can carry).
func TestAnnounceLimits(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	phone := newClient(t, w.Connect(w.Member(identity.RoleClient, "phone")))
	devices := func(n int) []ops.Device {
		out := make([]ops.Device, n)
		for i := range out {
			out[i] = ops.Device{ID: fmt.Sprintf("d%d", i), Kind: "sensor"}
		}
		return out
	}
	var req uint32
	announce := func(s *session.Session, devs []ops.Device) wire.Code {
		t.Helper()
		b, _ := ops.Marshal(ops.Announce{Devices: devs})
		if err := s.Send(context.Background(), wire.OpDeviceAnnounce, b); err != nil {
			t.Fatal(err)
		}
		// An accepted announcement is not answered: ask for the list
		// (answered after the announcement, in order) to know it was taken.
		req++
		lb, _ := ops.Marshal(ops.Request{Req: req})
		s.Send(context.Background(), wire.OpDeviceList, lb)
		code := wire.CodeOK
		for {
			m, err := s.Recv(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var r ops.Reply
			var e payload.Error
			switch {
			case m.Op == wire.OpError && e.Unmarshal(m.Payload) == nil && e.RefSeq == 0:
				code = e.Code
			case m.Op == wire.OpDeviceList && ops.Unmarshal(m.Payload, &r) == nil && r.Req == req:
				return code
			}
		}
	}
	pi := w.Connect(w.Member(identity.RoleNode, "pi"))
	if code := announce(pi, devices(2)); code != wire.CodeOK {
		t.Fatalf("two devices: %v", code)
	}
	if code := announce(pi, devices(ops.MaxDevicesPerNode+1)); code != wire.CodeTooLarge {
		t.Errorf("%d devices: %v, want TOO_LARGE", ops.MaxDevicesPerNode+1, code)
	}
	if code := announce(pi, devices(12290)); code != wire.CodeBadRequest {
		t.Errorf("12,290 devices: %v, want BAD_REQUEST (more entries than a payload may declare)", code)
	}
	bad := []ops.Device{{ID: "ok"}, {ID: "a/b"}}
	if code := announce(pi, bad); code != wire.CodeBadRequest {
		t.Errorf("a bad device ID: %v, want BAD_REQUEST", code)
	}
	if r, code := phone.do(wire.OpDeviceList, ops.Request{}); code != wire.CodeOK || len(r.Devices) != 2 {
		t.Fatalf("after the refused announcements: %v, %d devices (want the first 2)", code, len(r.Devices))
	}
	// The family as a whole: 16 full nodes fit, the 17th does not.
	for i := 0; i < ops.MaxDevices/ops.MaxDevicesPerNode; i++ {
		s := w.Connect(w.Member(identity.RoleNode, fmt.Sprintf("n%d", i)))
		devs := devices(ops.MaxDevicesPerNode)
		if i == 0 {
			devs = devs[:ops.MaxDevicesPerNode-2] // pi has 2
		}
		if code := announce(s, devs); code != wire.CodeOK {
			t.Fatalf("node %d: %v", i, code)
		}
	}
	if code := announce(w.Connect(w.Member(identity.RoleNode, "last")), devices(1)); code != wire.CodeTooLarge {
		t.Errorf("over the family's limit: %v", code)
	}
	if r, code := phone.do(wire.OpDeviceList, ops.Request{}); code != wire.CodeOK || len(r.Devices) != ops.MaxDevices {
		t.Errorf("a full family: %v, %d devices", code, len(r.Devices))
	}
}

// TestRefusalsCountedLogSampled: every refused request is counted by op
// and code; its log line is written at most ten times a minute per reason.
func TestRefusalsCountedLogSampled(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cfg := hub.Config{DefaultMode: ops.ModeReadWrite, Metrics: m}
	w := hubtest.New(t, cfg)
	cfg.Log, cfg.Family = zerolog.New(&syncWriter{w: &logs}), w.Root.Family()
	w.Hub = hub.New(cfg)
	c := newClient(t, w.Connect(w.Member(identity.RoleClient, "phone")))
	for range 100 {
		if _, code := c.do(wire.OpDeviceInfo, ops.Request{Device: "pi/none"}); code != wire.CodeNotFound {
			t.Fatal(code)
		}
	}
	// Labels in name order: code, op.
	if got := testutil.ToFloat64(counterOf(t, reg, "myclerk_refused_requests_total", "NOT_FOUND", "DEVICE_INFO")); got != 100 {
		t.Errorf("counted %v refusals, want 100", got)
	}
	if n := strings.Count(logs.String(), "Refused a request"); n != 10 {
		t.Errorf("%d log lines for 100 refusals, want 10", n)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// counterOf finds one labelled counter of reg.
func counterOf(t *testing.T, reg *prometheus.Registry, name string, labels ...string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, mm := range mf.GetMetric() {
			for i, lp := range mm.GetLabel() {
				if i >= len(labels) || lp.GetValue() != labels[i] {
					continue next
				}
			}
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, mm.GetCounter().GetValue)
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return nil
}

// TestRouteOpsCheckTheRoutesDevice: a request about a route is checked
// against the route's device, whatever device it names besides (the
// owner of any device could otherwise change every route).
func TestRouteOpsCheckTheRoutesDevice(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite, Admins: []string{"admin"}})
	w.startNode("pi")
	admin := newClient(t, w.Connect(w.Member(identity.RoleClient, "admin")))
	phone := newClient(t, w.Connect(w.Member(identity.RoleClient, "phone")))
	phone.do(wire.OpDeviceList, ops.Request{})
	evil := w.Connect(w.Member(identity.RoleNode, "evil"))
	b, _ := ops.Marshal(ops.Announce{Devices: []ops.Device{{ID: "x", Kind: "sensor"}}})
	evil.Send(context.Background(), wire.OpDeviceAnnounce, b)
	e := newClient(t, evil)
	if r, _ := e.do(wire.OpDeviceList, ops.Request{}); len(r.Devices) != 2 {
		t.Fatalf("evil's device not announced: %+v", r.Devices)
	}
	r, code := admin.do(wire.OpRouteCreate, ops.Request{Device: "pi/temp", Node: "phone", Priority: 1})
	if code != wire.CodeOK {
		t.Fatal(code)
	}
	id := r.Route
	for _, tc := range []struct {
		op  wire.Op
		req ops.Request
	}{
		{wire.OpRouteModify, ops.Request{Device: "evil/x", Route: id, Node: "evil", Priority: 99}},
		{wire.OpRoutePriority, ops.Request{Device: "evil/x", Route: id, Priority: 99}},
		{wire.OpRouteDelete, ops.Request{Device: "evil/x", Route: id}},
		{wire.OpRouteDelete, ops.Request{Route: id}},
	} {
		if _, code := e.do(tc.op, tc.req); code == wire.CodeOK {
			t.Errorf("%v %+v by the owner of another device: OK", tc.op, tc.req)
		}
	}
	if r, _ := admin.do(wire.OpRouteList, ops.Request{}); len(r.Routes) != 1 || r.Routes[0].Node != "phone" || r.Routes[0].Priority != 1 {
		t.Errorf("the route changed: %+v", r.Routes)
	}
}

// TestAnnouncementIsTheWholeList: a node's announcement replaces its
// list; devices it no longer announces are forgotten, so announcing new
// devices again and again cannot grow the registry.
func TestAnnouncementIsTheWholeList(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	pi := w.Connect(w.Member(identity.RoleNode, "pi"))
	c := newClient(t, pi)
	for round := range 3 {
		devs := make([]ops.Device, ops.MaxDevicesPerNode)
		for i := range devs {
			devs[i] = ops.Device{ID: fmt.Sprintf("r%d-%d", round, i), Kind: "sensor"}
		}
		b, _ := ops.Marshal(ops.Announce{Devices: devs})
		pi.Send(context.Background(), wire.OpDeviceAnnounce, b)
		r, code := c.do(wire.OpDeviceList, ops.Request{})
		if code != wire.CodeOK || len(r.Devices) != ops.MaxDevicesPerNode || r.Devices[0].ID[:6] != fmt.Sprintf("pi/r%d-", round) {
			t.Fatalf("round %d: %v, %d devices (first %+v)", round, code, len(r.Devices), r.Devices[0])
		}
	}
}

// TestLocksLastWhileTheMemberIsConnected: a member's lock goes when its
// last session ends, not when one of several does.
func TestLocksLastWhileTheMemberIsConnected(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	w.startNode("pi")
	phoneID := w.Member(identity.RoleClient, "phone")
	first := w.Connect(phoneID)
	second := newClient(t, w.Connect(phoneID))
	other := newClient(t, w.Connect(w.Member(identity.RoleClient, "laptop")))
	if _, code := second.do(wire.OpDeviceLock, ops.Request{Device: "pi/temp", Lease: 60}); code != wire.CodeOK {
		t.Fatal(code)
	}
	first.Close(context.Background())
	time.Sleep(50 * time.Millisecond) // the hub sees the session end
	if _, code := other.do(wire.OpDeviceLock, ops.Request{Device: "pi/temp"}); code != wire.CodeConflict {
		t.Errorf("after one of the holder's two sessions ended, another member locked: %v", code)
	}
}

// TestRelayToANodeThatLeft: a request relayed to a node whose session
// then ends is answered SERVICE_UNAVAILABLE at once, not after the relay's
// 30 s.
func TestRelayToANodeThatLeft(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	node := w.Connect(w.Member(identity.RoleNode, "pi"))
	b, _ := ops.Marshal(ops.Announce{Devices: []ops.Device{{ID: "temp", Kind: "sensor"}}})
	node.Send(context.Background(), wire.OpDeviceAnnounce, b)
	phone := newClient(t, w.Connect(w.Member(identity.RoleClient, "phone")))
	phone.do(wire.OpDeviceList, ops.Request{})
	go func() {
		node.Recv(context.Background()) // the relayed request arrives; the node leaves without answering
		node.Close(context.Background())
	}()
	start := time.Now()
	if _, code := phone.do(wire.OpDeviceConfigure, ops.Request{Device: "pi/temp", Settings: map[string]string{"a": "1"}}); code != wire.CodeServiceUnavailable {
		t.Errorf("configure relayed to a node that left: %v, want SERVICE_UNAVAILABLE", code)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("answered after %v", d)
	}
}
