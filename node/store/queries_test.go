package store

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/ticket"
)

func testFamily(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	_, err := s.Family.Get(ctx)
	wantNotFound(t, "Get before Put", err)

	f := testFamilyValue(1)
	must(t, s.Family.Put(ctx, f))
	got, err := s.Family.Get(ctx)
	must(t, err)
	if !reflect.DeepEqual(got, f) {
		t.Errorf("Get = %+v, want %+v", got, f)
	}
	must(t, s.Family.Put(ctx, f)) // the same family again: nothing to do

	other := testFamilyValue(2)
	if err := s.Family.Put(ctx, other); !errors.Is(err, ErrFamilyExists) {
		t.Errorf("Put of another family: got %v, want ErrFamilyExists", err)
	}
	mismatched := testFamilyValue(3)
	mismatched.ID = f.ID
	if err := s.Family.Put(ctx, mismatched); err == nil || errors.Is(err, ErrFamilyExists) {
		t.Errorf("Put with an ID not of the root key: got %v, want a refusal", err)
	}
	if got, _ := s.Family.Get(ctx); !reflect.DeepEqual(got, f) {
		t.Errorf("after refused Puts, Get = %+v, want %+v", got, f)
	}
}

func testFamilyValue(seed byte) *Family {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	key := ed25519.NewKeyFromSeed(s).Public().(ed25519.PublicKey)
	return &Family{RootKey: key, ID: identity.FamilyOf(key), CreatedAt: at(int64(seed))}
}

func testNode(b byte, name string) *Node {
	return &Node{
		ID:          nodeID(b),
		Name:        name,
		Role:        identity.RoleNode,
		Certificate: []byte("certificate of " + name),
		EnrolledAt:  at(10),
		LastSeen:    at(20),
	}
}

func testNodes(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	_, err := s.Nodes.Get(ctx, nodeID(9))
	wantNotFound(t, "Get of an unknown node", err)
	wantNotFound(t, "Revoke of an unknown node", s.Nodes.Revoke(ctx, nodeID(9), at(1)))
	wantNotFound(t, "Seen of an unknown node", s.Nodes.Seen(ctx, nodeID(9), at(1)))
	if revoked, err := s.Nodes.IsRevoked(ctx, nodeID(9)); err != nil || revoked {
		t.Errorf("IsRevoked of an unknown node = %v, %v; want false, nil", revoked, err)
	}

	pi, nas, hub := testNode(1, "pi"), testNode(2, "nas"), testNode(3, "hub")
	hub.Role = identity.RoleHub
	hub.LastSeen = at(-5)
	for _, n := range []*Node{pi, nas, hub} {
		must(t, s.Nodes.Put(ctx, n))
	}
	got, err := s.Nodes.Get(ctx, pi.ID)
	must(t, err)
	if !reflect.DeepEqual(got, pi) {
		t.Errorf("Get = %+v, want %+v", got, pi)
	}
	list, err := s.Nodes.List(ctx)
	must(t, err)
	if want := []*Node{hub, nas, pi}; !reflect.DeepEqual(list, want) {
		t.Errorf("List = %+v, want by name %+v", list, want)
	}

	// Upsert.
	pi.Name = "raspberry"
	pi.Certificate = []byte("renewed")
	must(t, s.Nodes.Put(ctx, pi))
	if got, _ := s.Nodes.Get(ctx, pi.ID); !reflect.DeepEqual(got, pi) {
		t.Errorf("after upsert Get = %+v, want %+v", got, pi)
	}
	must(t, s.Nodes.Seen(ctx, pi.ID, at(99)))
	if got, _ := s.Nodes.Get(ctx, pi.ID); !got.LastSeen.Equal(at(99)) {
		t.Errorf("LastSeen = %v, want %v", got.LastSeen, at(99))
	}

	// Revocation: permanent, first time kept, not lifted by Put.
	must(t, s.Nodes.Revoke(ctx, nas.ID, at(50)))
	must(t, s.Nodes.Revoke(ctx, nas.ID, at(60)))
	must(t, s.Nodes.Put(ctx, nas)) // nas.RevokedAt is zero
	got, err = s.Nodes.Get(ctx, nas.ID)
	must(t, err)
	if !got.Revoked() || !got.RevokedAt.Equal(at(50)) {
		t.Errorf("RevokedAt = %v, want %v", got.RevokedAt, at(50))
	}
	for _, tc := range []struct {
		id   identity.NodeID
		want bool
	}{{nas.ID, true}, {pi.ID, false}, {hub.ID, false}} {
		if revoked, err := s.Nodes.IsRevoked(ctx, tc.id); err != nil || revoked != tc.want {
			t.Errorf("IsRevoked(%s) = %v, %v; want %v", tc.id, revoked, err, tc.want)
		}
	}
	revoked, err := s.Nodes.Revoked(ctx)
	must(t, err)
	if want := []identity.NodeID{nas.ID}; !reflect.DeepEqual(revoked, want) {
		t.Errorf("Revoked = %v, want %v", revoked, want)
	}

	// A node put revoked is revoked.
	gone := testNode(4, "gone")
	gone.RevokedAt = at(7)
	must(t, s.Nodes.Put(ctx, gone))
	if revoked, _ := s.Nodes.IsRevoked(ctx, gone.ID); !revoked {
		t.Error("a node put with RevokedAt is not revoked")
	}
}

func testDevices(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	_, err := s.Devices.Get(ctx, "nowhere/x")
	wantNotFound(t, "Get of an unknown device", err)
	wantNotFound(t, "Delete of an unknown device", s.Devices.Delete(ctx, "nowhere/x"))

	pi, nas := nodeID(1), nodeID(2)
	devices := []*Device{
		{ID: "pi/serial0", Owner: pi, Kind: "serial", Name: "Serial port",
			Capabilities: json.RawMessage(`{"baud":[9600,115200]}`), State: json.RawMessage(`{"open":false}`),
			AnnouncedAt: at(1), Available: true},
		{ID: "pi/gpio17", Owner: pi, Kind: "gpio", Name: "Door",
			Capabilities: json.RawMessage(`["read","write"]`), State: json.RawMessage(`{"level":1}`),
			AnnouncedAt: at(2), Available: true},
		{ID: "nas/temp", Owner: nas, Kind: "sensor", Name: "Temperature ☀",
			Capabilities: json.RawMessage(`{}`), State: json.RawMessage(`null`),
			AnnouncedAt: at(3), Available: false},
	}
	for _, d := range devices {
		must(t, s.Devices.Put(ctx, d))
	}
	got, err := s.Devices.Get(ctx, "nas/temp")
	must(t, err)
	if !reflect.DeepEqual(got, devices[2]) {
		t.Errorf("Get = %+v, want %+v", got, devices[2])
	}
	all, err := s.Devices.List(ctx)
	must(t, err)
	if want := []*Device{devices[2], devices[1], devices[0]}; !reflect.DeepEqual(all, want) {
		t.Errorf("List = %+v, want by ID %+v", all, want)
	}
	mine, err := s.Devices.ListByOwner(ctx, pi)
	must(t, err)
	if want := []*Device{devices[1], devices[0]}; !reflect.DeepEqual(mine, want) {
		t.Errorf("ListByOwner = %+v, want %+v", mine, want)
	}

	// The node disconnects: all its devices go unavailable, others stay.
	must(t, s.Devices.SetAvailable(ctx, pi, false))
	must(t, s.Devices.SetAvailable(ctx, nas, true))
	all, err = s.Devices.List(ctx)
	must(t, err)
	for _, d := range all {
		if want := d.Owner == nas; d.Available != want {
			t.Errorf("%s: Available = %v, want %v", d.ID, d.Available, want)
		}
	}

	// Upsert with a nil state, stored as null; invalid JSON refused.
	d := *devices[0]
	d.State = nil
	must(t, s.Devices.Put(ctx, &d))
	if got, _ := s.Devices.Get(ctx, d.ID); string(got.State) != "null" {
		t.Errorf("nil State came back as %q, want null", got.State)
	}
	d.Capabilities = json.RawMessage(`{broken`)
	if err := s.Devices.Put(ctx, &d); err == nil {
		t.Error("Put with invalid JSON capabilities succeeded")
	}

	must(t, s.Devices.Delete(ctx, "pi/gpio17"))
	_, err = s.Devices.Get(ctx, "pi/gpio17")
	wantNotFound(t, "Get after Delete", err)
}

func testRoutes(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	wantNotFound(t, "Delete of an unknown route", s.Routes.Delete(ctx, 42))
	wantNotFound(t, "SetPriority of an unknown route", s.Routes.SetPriority(ctx, 42, 1))

	routes := []*Route{
		{DeviceID: "pi/serial0", Client: nodeID(5), Priority: 1, CreatedAt: at(1)},
		{DeviceID: "pi/serial0", Client: nodeID(6), Priority: 5, CreatedAt: at(2)},
		{DeviceID: "nas/temp", Client: nodeID(5), Priority: 0, CreatedAt: at(3)},
	}
	seen := map[int64]bool{}
	for _, r := range routes {
		id, err := s.Routes.Create(ctx, r)
		must(t, err)
		if id <= 0 || seen[id] {
			t.Fatalf("Create returned ID %d (IDs so far %v)", id, seen)
		}
		seen[id] = true
		r.ID = id
	}
	byDevice, err := s.Routes.ListByDevice(ctx, "pi/serial0")
	must(t, err)
	if want := []*Route{routes[1], routes[0]}; !reflect.DeepEqual(byDevice, want) {
		t.Errorf("ListByDevice = %+v, want highest priority first %+v", byDevice, want)
	}
	none, err := s.Routes.ListByDevice(ctx, "nowhere")
	must(t, err)
	if len(none) != 0 {
		t.Errorf("ListByDevice of a device without routes = %+v", none)
	}

	must(t, s.Routes.SetPriority(ctx, routes[0].ID, 9))
	routes[0].Priority = 9
	all, err := s.Routes.List(ctx)
	must(t, err)
	if want := []*Route{routes[0], routes[1], routes[2]}; !reflect.DeepEqual(all, want) {
		t.Errorf("List = %+v, want %+v", all, want)
	}

	must(t, s.Routes.Delete(ctx, routes[1].ID))
	wantNotFound(t, "second Delete", s.Routes.Delete(ctx, routes[1].ID))
	// IDs are not reused.
	id, err := s.Routes.Create(ctx, routes[1])
	must(t, err)
	if seen[id] {
		t.Errorf("Create reused ID %d", id)
	}
}

func testACLs(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	wantNotFound(t, "Revoke of no grant", s.ACLs.Revoke(ctx, "pi/serial0", nodeID(1)))

	// Every mode round-trips, each on its own node.
	modes := []ops.Mode{ops.ModeNone, ops.ModeRead, ops.ModeWrite, ops.ModeReadWrite, ops.ModeExclusive}
	var want []*ACL
	for i, m := range modes {
		a := &ACL{DeviceID: "pi/serial0", Node: nodeID(byte(i + 1)), Mode: m, GrantedAt: at(int64(i))}
		must(t, s.ACLs.Grant(ctx, a))
		want = append(want, a)
	}
	for _, a := range want {
		got, err := s.ACLs.Get(ctx, a.DeviceID, a.Node)
		if err != nil || got != a.Mode {
			t.Errorf("Get(%s) = %v, %v; want %v", a.Node, got, err, a.Mode)
		}
	}
	list, err := s.ACLs.List(ctx, "pi/serial0")
	must(t, err)
	if !reflect.DeepEqual(list, want) {
		t.Errorf("List = %+v, want %+v", list, want)
	}

	// No grant is ops.ModeNone; another device's grants are apart.
	if got, err := s.ACLs.Get(ctx, "pi/serial0", nodeID(9)); err != nil || got != ops.ModeNone {
		t.Errorf("Get without a grant = %v, %v; want none", got, err)
	}
	if got, _ := s.ACLs.Get(ctx, "nas/temp", nodeID(2)); got != ops.ModeNone {
		t.Errorf("Get on another device = %v, want none", got)
	}

	// Grant again replaces; Revoke deletes.
	must(t, s.ACLs.Grant(ctx, &ACL{DeviceID: "pi/serial0", Node: nodeID(2), Mode: ops.ModeExclusive, GrantedAt: at(9)}))
	if got, _ := s.ACLs.Get(ctx, "pi/serial0", nodeID(2)); got != ops.ModeExclusive {
		t.Errorf("after regrant Get = %v, want exclusive", got)
	}
	must(t, s.ACLs.Revoke(ctx, "pi/serial0", nodeID(2)))
	if got, _ := s.ACLs.Get(ctx, "pi/serial0", nodeID(2)); got != ops.ModeNone {
		t.Errorf("after Revoke Get = %v, want none", got)
	}
	if err := s.ACLs.Grant(ctx, &ACL{DeviceID: "pi/serial0", Node: nodeID(1), Mode: 5}); err == nil {
		t.Error("Grant of mode 5 succeeded")
	}
}

func testUsedTickets(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	n1, n2, n3 := [8]byte{1}, [8]byte{2}, [8]byte{3}
	for _, tc := range []struct {
		nonce [8]byte
		first bool
	}{{n1, true}, {n2, true}, {n1, false}, {n3, true}, {n2, false}} {
		first, err := s.UsedTickets.MarkUsed(ctx, tc.nonce, at(100+int64(tc.nonce[0])))
		if err != nil || first != tc.first {
			t.Errorf("MarkUsed(%x) = %v, %v; want %v", tc.nonce, first, err, tc.first)
		}
	}
	// n1 expires at 101, n2 at 102, n3 at 103: at 102 two have expired.
	purged, err := s.UsedTickets.PurgeExpired(ctx, at(102))
	if err != nil || purged != 2 {
		t.Errorf("PurgeExpired = %d, %v; want 2", purged, err)
	}
	if first, _ := s.UsedTickets.MarkUsed(ctx, n3, at(103)); first {
		t.Error("an unexpired nonce was purged")
	}
	if purged, err := s.UsedTickets.PurgeExpired(ctx, at(102)); err != nil || purged != 0 {
		t.Errorf("second PurgeExpired = %d, %v; want 0", purged, err)
	}
}

func testMarkUsedConcurrent(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	const goroutines = 50
	for round := range 3 {
		nonce := [8]byte{0xee, byte(round)}
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			firsts = make(chan bool, goroutines)
			errs   = make(chan error, goroutines)
		)
		for range goroutines {
			wg.Go(func() {
				<-start
				first, err := s.UsedTickets.MarkUsed(ctx, nonce, at(1000))
				firsts <- first
				errs <- err
			})
		}
		close(start)
		wg.Wait()
		close(firsts)
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("round %d: MarkUsed: %v", round, err)
			}
		}
		n := 0
		for first := range firsts {
			if first {
				n++
			}
		}
		if n != 1 {
			t.Errorf("round %d: %d of %d concurrent MarkUsed calls saw a first use, want exactly 1", round, n, goroutines)
		}
	}
}

func testTicketKeys(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	wantNotFound(t, "Retire of an unknown key", s.TicketKeys.Retire(ctx, 7, at(1)))
	keys, err := s.TicketKeys.ListActive(ctx)
	if err != nil || len(keys) != 0 {
		t.Errorf("ListActive of no keys = %v, %v", keys, err)
	}

	k1 := &TicketKey{Key: ticket.Key{ID: 1, Secret: [32]byte{1}}, CreatedAt: at(10)}
	k2 := &TicketKey{Key: ticket.Key{ID: 0xffffffff, Secret: [32]byte{2}}, CreatedAt: at(20)} // the largest u32
	k3 := &TicketKey{Key: ticket.Key{ID: 3, Secret: [32]byte{3}}, CreatedAt: at(30)}
	for _, k := range []*TicketKey{k1, k2, k3} {
		must(t, s.TicketKeys.Add(ctx, k))
	}
	if err := s.TicketKeys.Add(ctx, &TicketKey{Key: ticket.Key{ID: 1}, CreatedAt: at(40)}); err == nil {
		t.Error("Add of a used key ID succeeded")
	}
	keys, err = s.TicketKeys.ListActive(ctx)
	must(t, err)
	if want := []*TicketKey{k3, k2, k1}; !reflect.DeepEqual(keys, want) {
		t.Errorf("ListActive = %+v, want newest first %+v", keys, want)
	}
	must(t, s.TicketKeys.Retire(ctx, k2.ID, at(50)))
	keys, err = s.TicketKeys.ListActive(ctx)
	must(t, err)
	if want := []*TicketKey{k3, k1}; !reflect.DeepEqual(keys, want) {
		t.Errorf("after Retire ListActive = %+v, want %+v", keys, want)
	}
}

func testSessions(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	wantNotFound(t, "Disconnected of an unknown session", s.Sessions.Disconnected(ctx, 42, at(1)))
	id1, err := s.Sessions.Connected(ctx, nodeID(1), at(0))
	must(t, err)
	id2, err := s.Sessions.Connected(ctx, nodeID(2), at(0))
	must(t, err)
	if id1 == id2 {
		t.Fatalf("two sessions got one ID %d", id1)
	}
	must(t, s.Sessions.Disconnected(ctx, id1, at(50)))
	n, err := s.Sessions.DisconnectAll(ctx, at(100))
	if err != nil || n != 1 {
		t.Errorf("DisconnectAll = %d, %v; want 1", n, err)
	}
	for _, tc := range []struct {
		node identity.NodeID
		want float64
	}{{nodeID(1), 0.5}, {nodeID(2), 1}} {
		got, err := s.Sessions.Availability(ctx, tc.node, at(0), at(100))
		if err != nil || got != tc.want {
			t.Errorf("Availability(%s) = %v, %v; want %v", tc.node, got, err, tc.want)
		}
	}
	// The session closed by DisconnectAll counts only until then.
	if got, _ := s.Sessions.Availability(ctx, nodeID(2), at(0), at(200)); got != 0.5 {
		t.Errorf("Availability after DisconnectAll = %v, want 0.5", got)
	}
	if _, err := s.Sessions.Availability(ctx, nodeID(1), at(10), at(10)); err == nil {
		t.Error("Availability of an empty window succeeded")
	}
	// Pruning forgets sessions that ended before the cut, never open ones.
	open3, err := s.Sessions.Connected(ctx, nodeID(3), at(10))
	must(t, err)
	if n, err := s.Sessions.Prune(ctx, at(60)); err != nil || n != 1 {
		t.Errorf("Prune(60) = %d, %v; want 1 (node 1's session, ended at 50)", n, err)
	}
	if got, _ := s.Sessions.Availability(ctx, nodeID(1), at(0), at(100)); got != 0 {
		t.Errorf("Availability of a pruned session = %v, want 0", got)
	}
	if n, err := s.Sessions.Prune(ctx, at(1000)); err != nil || n != 1 {
		t.Errorf("Prune(1000) = %d, %v; want 1 (node 2's, ended at 100)", n, err)
	}
	if got, _ := s.Sessions.Availability(ctx, nodeID(3), at(10), at(20)); got != 1 {
		t.Errorf("the open session %d was pruned: availability %v", open3, got)
	}
}

// session is a test session in seconds after at(0); end < 0 means open.
type session struct{ start, end int64 }

func testAvailability(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	// Another node's sessions must never count.
	other, err := s.Sessions.Connected(ctx, nodeID(0xff), at(-1000))
	must(t, err)
	must(t, s.Sessions.Disconnected(ctx, other, at(1000)))

	for i, tc := range []struct {
		name     string
		sessions []session
		from, to int64
		want     float64
	}{
		{"no sessions", nil, 0, 100, 0},
		{"half the window", []session{{0, 50}}, 0, 100, 0.5},
		{"second half", []session{{50, 100}}, 0, 100, 0.5},
		{"all of it and more", []session{{-50, 150}}, 0, 100, 1},
		{"before the window", []session{{-50, 0}}, 0, 100, 0},
		{"after the window", []session{{100, 150}}, 0, 100, 0},
		{"overlapping", []session{{0, 60}, {30, 90}}, 0, 100, 0.9},
		{"nested", []session{{0, 100}, {10, 20}, {30, 40}}, 0, 100, 1},
		{"disjoint", []session{{0, 10}, {20, 30}}, 0, 100, 0.2},
		{"adjacent", []session{{0, 50}, {50, 100}}, 0, 100, 1},
		{"open session counts to the end", []session{{75, -1}}, 0, 100, 0.25},
		{"open before the window", []session{{-75, -1}}, 0, 100, 1},
		{"open overlapping closed ones", []session{{10, 30}, {20, -1}, {60, 70}}, 0, 100, 0.9},
		{"three overlapping, unordered", []session{{40, 70}, {0, 20}, {10, 45}}, 0, 100, 0.7},
	} {
		node := nodeID(byte(i + 1))
		for _, ss := range tc.sessions {
			id, err := s.Sessions.Connected(ctx, node, at(ss.start))
			must(t, err)
			if ss.end >= 0 {
				must(t, s.Sessions.Disconnected(ctx, id, at(ss.end)))
			}
		}
		got, err := s.Sessions.Availability(ctx, node, at(tc.from), at(tc.to))
		if err != nil || got != tc.want {
			t.Errorf("%s: Availability = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		fraction float64
		want     Class
	}{{0, Bonus}, {0.5, Bonus}, {0.95, Bonus}, {0.9501, Core}, {1, Core}} {
		if got := Classify(tc.fraction); got != tc.want {
			t.Errorf("Classify(%v) = %q, want %q", tc.fraction, got, tc.want)
		}
	}
	if Core != "core" || Bonus != "bonus" {
		t.Error("class names changed")
	}
}

func TestCovered(t *testing.T) {
	for i, tc := range []struct {
		spans    []*span
		from, to int64
		want     int64
	}{
		{nil, 0, 10, 0},
		{[]*span{{0, 10}}, 0, 10, 10},
		{[]*span{{5, 3}}, 0, 10, 0}, // ends before it starts: nothing
		{[]*span{{2, 4}, {3, 8}, {1, 2}}, 0, 10, 7},
		{[]*span{{-5, 3}, {8, 20}}, 0, 10, 5},
		{[]*span{{4, 6}, {0, 10}}, 0, 10, 10},
	} {
		if got := covered(tc.spans, tc.from, tc.to); got != tc.want {
			t.Errorf("case %d: covered = %d, want %d", i, got, tc.want)
		}
	}
}

func testPairingCodes(t *testing.T, b backend) {
	s, _ := open(t, b)
	{
		ctx := context.Background()
		now := time.Unix(1_767_225_600, 0)
		code, _ := identity.NewPairingCode(rand.Reader)
		if err := s.Codes.Add(ctx, code, identity.RoleClient, "", now); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.Codes.Pending(ctx, now); n != 1 {
			t.Fatalf("pending %d", n)
		}
		th := [32]byte{7}
		pub := make([]byte, 32)
		proof := code.Proof(wire.InitiatorToResponder, th, pub, []byte("phone"))
		if _, _, err := s.Codes.Redeem(proof, th, pub, "tablet", now, nil); !errors.Is(err, identity.ErrPairing) {
			t.Errorf("proof for another name: %v", err)
		}
		// A refusal by accept (a taken name) leaves the code usable.
		var asked identity.Role
		bound := "unasked"
		refuse := func(r identity.Role, name string) error { asked, bound = r, name; return identity.ErrNameTaken }
		if _, _, err := s.Codes.Redeem(proof, th, pub, "phone", now, refuse); !errors.Is(err, identity.ErrNameTaken) || asked != identity.RoleClient || bound != "" {
			t.Errorf("refused redeem: %v, asked with %v, %q", err, asked, bound)
		}
		got, role, err := s.Codes.Redeem(proof, th, pub, "phone", now, func(identity.Role, string) error { return nil })
		if err != nil || got != code || role != identity.RoleClient {
			t.Fatalf("redeem: %v %v %v", got, role, err)
		}
		if _, _, err := s.Codes.Redeem(proof, th, pub, "phone", now, nil); !errors.Is(err, identity.ErrPairing) {
			t.Errorf("second redeem: %v", err)
		}
		s.Codes.Add(ctx, code, identity.RoleNode, "", now)
		if _, _, err := s.Codes.Redeem(proof, th, pub, "phone", now.Add(identity.PairingLifetime), nil); !errors.Is(err, identity.ErrPairing) {
			t.Errorf("expired code: %v", err)
		}
	}
}

// testBoundPairingCodes: a code bound to a name hands that name, as
// stored, to accept; a refusal keeps the code, and the code is used once.
func testBoundPairingCodes(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	now := time.Unix(1_767_225_600, 0)
	code, _ := identity.NewPairingCode(rand.Reader)
	must(t, s.Codes.Add(ctx, code, identity.RoleClient, "Alice", now))
	th := [32]byte{9}
	pub := make([]byte, 32)
	redeem := func(name string, accept func(identity.Role, string) error) (identity.PairingCode, error) {
		code, _, err := s.Codes.Redeem(code.Proof(wire.InitiatorToResponder, th, pub, []byte(name)), th, pub, name, now, accept)
		return code, err
	}
	var bound string
	refuse := func(_ identity.Role, name string) error { bound = name; return identity.ErrNameTaken }
	if _, err := redeem("mallory", refuse); !errors.Is(err, identity.ErrNameTaken) || bound != "Alice" {
		t.Errorf("refused redeem: %v, bound to %q; want ErrNameTaken and Alice", err, bound)
	}
	if n, _ := s.Codes.Pending(ctx, now); n != 1 {
		t.Fatalf("%d codes pending after a refusal, want 1", n)
	}
	if got, err := redeem("alice", func(_ identity.Role, name string) error { bound = name; return nil }); err != nil || got != code || bound != "Alice" {
		t.Errorf("redeem = %v, %v, bound to %q", got, err, bound)
	}
	if n, _ := s.Codes.Pending(ctx, now); n != 0 {
		t.Errorf("%d codes pending after the redeem, want 0", n)
	}
}

func testMatrixRecords(t *testing.T, b backend) {
	ctx := t.Context()
	s, dsn := open(t, b)
	for _, tc := range []struct {
		txn     string
		applied bool // before marking
		first   bool
	}{{"t1", false, true}, {"t2", false, true}, {"t1", true, false}} {
		applied, err := s.Matrix.Applied(ctx, tc.txn)
		if err != nil || applied != tc.applied {
			t.Errorf("Applied(%s) = %v, %v; want %v", tc.txn, applied, err, tc.applied)
		}
		first, err := s.Matrix.MarkApplied(ctx, tc.txn, at(100))
		if err != nil || first != tc.first {
			t.Errorf("MarkApplied(%s) = %v, %v; want %v", tc.txn, first, err, tc.first)
		}
	}
	if first, err := s.Matrix.MarkSeen(ctx, "$e1", at(100)); err != nil || !first {
		t.Errorf("MarkSeen($e1) = %v, %v; want true", first, err)
	}
	if first, err := s.Matrix.MarkSeen(ctx, "$e1", at(101)); err != nil || first {
		t.Errorf("second MarkSeen($e1) = %v, %v; want false", first, err)
	}
	for _, bad := range []string{"", strings.Repeat("x", 256)} {
		if _, err := s.Matrix.MarkSeen(ctx, bad, at(100)); err == nil {
			t.Errorf("MarkSeen of a %d-byte ID succeeded", len(bad))
		}
	}
	// The records survive a reopen (a bridge restart).
	s.Close()
	s2, err := Open(ctx, b.driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	if applied, err := s2.Matrix.Applied(ctx, "t2"); err != nil || !applied {
		t.Errorf("after reopen Applied(t2) = %v, %v; want true", applied, err)
	}
	if err := s2.Matrix.Prune(ctx, at(101)); err != nil {
		t.Fatal(err)
	}
	if applied, _ := s2.Matrix.Applied(ctx, "t2"); applied {
		t.Error("Prune kept a transaction recorded before its horizon")
	}
	if first, _ := s2.Matrix.MarkSeen(ctx, "$e1", at(102)); !first {
		t.Error("Prune kept an event recorded before its horizon")
	}
}

func testFederations(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	f := &Federation{Label: "grandma", RoomID: "!r:a", PeerBot: "@bot:b", Dialer: true, Admin: "@me:a", CreatedAt: at(100)}
	if err := s.Federations.Add(ctx, f); err != nil {
		t.Fatal(err)
	}
	if err := s.Federations.Add(ctx, &Federation{Label: "other", RoomID: "!r:a", PeerBot: "@x:c", Admin: "@me:a", CreatedAt: at(100)}); err == nil {
		t.Error("two federations share a room")
	}
	if ok, err := s.Federations.Pin(ctx, "grandma", at(101)); err != nil || ok {
		t.Errorf("Pin without a root key = %v, %v; want false", ok, err)
	}
	root, _, _ := ed25519.GenerateKey(nil)
	if err := s.Federations.SetPeer(ctx, "grandma", root, []byte("cert")); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Federations.Pin(ctx, "grandma", at(102)); err != nil || !ok {
		t.Fatalf("Pin = %v, %v", ok, err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if err := s.Federations.SetPeer(ctx, "grandma", other, nil); err != nil {
		t.Fatal(err)
	}
	g, err := s.Federations.Get(ctx, "grandma")
	if err != nil {
		t.Fatal(err)
	}
	if !g.Dialer || g.PeerBot != "@bot:b" || !g.RootKey.Equal(root) || string(g.PeerCert) != "cert" || !g.Trusted() || g.Family() != identity.FamilyOf(root) {
		t.Errorf("pinned federation changed or read back wrong: %+v", g)
	}
	if err := s.Federations.Revoke(ctx, "grandma", at(103)); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.Federations.Get(ctx, "grandma"); g.Trusted() {
		t.Error("a revoked federation is trusted")
	}
	if _, err := s.Federations.Get(ctx, "nobody"); !errors.Is(err, ErrNoFederation) {
		t.Errorf("Get(nobody) = %v", err)
	}
	if l, err := s.Federations.List(ctx); err != nil || len(l) != 1 {
		t.Errorf("List = %d, %v", len(l), err)
	}
}

// testUniqueNames: Enrol refuses a name a live node holds (any case),
// allows a revoked node's name and hands its devices to the new node in
// the same step; Put cannot make a duplicate either.
func testUniqueNames(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	pi := testNode(1, "pi")
	if handed, err := s.Nodes.Enrol(ctx, pi); err != nil || len(handed) != 0 {
		t.Fatalf("Enrol(pi) = %v, %v", handed, err)
	}
	must(t, s.Devices.Put(ctx, &Device{ID: "pi/serial0", Owner: pi.ID, Kind: "serial", AnnouncedAt: at(1)}))
	must(t, s.Devices.Put(ctx, &Device{ID: "pi/temp", Owner: pi.ID, Kind: "sensor", AnnouncedAt: at(1)}))
	must(t, s.Devices.Put(ctx, &Device{ID: "nas/disk", Owner: nodeID(7), Kind: "disk", AnnouncedAt: at(1)}))

	for _, tc := range []struct {
		node *Node
		want error // nil: enrolled
	}{
		{testNode(2, "pi"), identity.ErrNameTaken},
		{testNode(3, "PI"), identity.ErrNameTaken},
		{testNode(4, "pi2"), nil},
	} {
		_, err := s.Nodes.Enrol(ctx, tc.node)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("Enrol(%q) = %v, want %v", tc.node.Name, err, tc.want)
		}
		if errors.Is(err, identity.ErrNameTaken) && wire.CodeOf(err) != wire.CodeConflict {
			t.Errorf("Enrol(%q): code %v, want CONFLICT", tc.node.Name, wire.CodeOf(err))
		}
	}
	if err := s.Nodes.Put(ctx, testNode(5, "Pi")); err == nil {
		t.Error("Put stored a second live node named Pi")
	}
	if taken, err := s.Nodes.NameTaken(ctx, "pI"); err != nil || !taken {
		t.Errorf("NameTaken(pI) = %v, %v; want true", taken, err)
	}

	// Pairing again after a revocation takes the name and the devices.
	must(t, s.Nodes.Revoke(ctx, pi.ID, at(30)))
	again := testNode(6, "pi")
	handed, err := s.Nodes.Enrol(ctx, again)
	must(t, err)
	if want := []string{"pi/serial0", "pi/temp"}; !reflect.DeepEqual(handed, want) {
		t.Errorf("handed over %v, want %v", handed, want)
	}
	for id, owner := range map[string]identity.NodeID{"pi/serial0": again.ID, "pi/temp": again.ID, "nas/disk": nodeID(7)} {
		d, err := s.Devices.Get(ctx, id)
		must(t, err)
		if d.Owner != owner {
			t.Errorf("%s is owned by %s, want %s", id, d.Owner, owner)
		}
	}
	if _, err := s.Nodes.Enrol(ctx, testNode(8, "pi")); !errors.Is(err, identity.ErrNameTaken) {
		t.Errorf("Enrol of a third pi = %v, want ErrNameTaken", err)
	}
}

// testHandOverExactName: a hand-over is of the devices whose IDs carry
// the new node's name, so only a revoked node of exactly that name hands
// its devices over; one in another case keeps them (the new node would
// announce other device IDs and leave them unavailable for good).
func testHandOverExactName(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	old := testNode(1, "Pi")
	_, err := s.Nodes.Enrol(ctx, old)
	must(t, err)
	must(t, s.Devices.Put(ctx, &Device{ID: "Pi/temp", Owner: old.ID, Kind: "sensor", AnnouncedAt: at(1)}))
	must(t, s.Nodes.Revoke(ctx, old.ID, at(30)))

	lower := testNode(2, "pi")
	handed, err := s.Nodes.Enrol(ctx, lower)
	must(t, err)
	if len(handed) != 0 {
		t.Errorf("a new \"pi\" was handed %v, want nothing", handed)
	}
	if d, err := s.Devices.Get(ctx, "Pi/temp"); err != nil || d.Owner != old.ID {
		t.Errorf("Pi/temp after pi enrolled: %+v, %v; want it still owned by the revoked Pi", d, err)
	}

	must(t, s.Nodes.Revoke(ctx, lower.ID, at(40)))
	same := testNode(3, "Pi")
	handed, err = s.Nodes.Enrol(ctx, same)
	must(t, err)
	if want := []string{"Pi/temp"}; !reflect.DeepEqual(handed, want) {
		t.Errorf("a new \"Pi\" was handed %v, want %v", handed, want)
	}
	if d, err := s.Devices.Get(ctx, "Pi/temp"); err != nil || d.Owner != same.ID {
		t.Errorf("Pi/temp after Pi enrolled again: %+v, %v; want it owned by the new Pi", d, err)
	}
}
