// Package hub is the family hub's runtime: the device registry that nodes
// announce to, device locks with leases, subscriptions and events, routes,
// the access control list enforced on every device operation, and the
// relaying of a client's requests to the node that owns the device.
//
// One Hub serves many sessions; Serve runs in the goroutine that accepted
// each one.
package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/node/store"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// MaxLease bounds a device lock's lease; DefaultLease is used when a
// request names none.
const (
	MaxLease     = time.Hour
	DefaultLease = 5 * time.Minute
	// relayTimeout bounds how long a relayed request waits for its node.
	relayTimeout = 30 * time.Second
)

// Hub errors, each with the code a client is told.
var (
	ErrNoDevice   = &wire.Error{Code: wire.CodeNotFound, Reason: "no such device"}
	ErrDenied     = &wire.Error{Code: wire.CodeForbidden, Reason: "access denied by the ACL"}
	ErrLocked     = &wire.Error{Code: wire.CodeConflict, Reason: "device locked by another client"}
	ErrOffline    = &wire.Error{Code: wire.CodeServiceUnavailable, Reason: "the device's node is not connected"}
	ErrNotOwner   = &wire.Error{Code: wire.CodeForbidden, Reason: "only the device's owner or an admin may do this"}
	ErrNoRoute    = &wire.Error{Code: wire.CodeNotFound, Reason: "no such route"}
	ErrRelayLimit = &wire.Error{Code: wire.CodeTimeout, Reason: "the device's node did not answer"}
	// A request names a node by its label; it must be the label of
	// exactly one node that is not revoked.
	ErrNoNode        = &wire.Error{Code: wire.CodeNotFound, Reason: "no such node"}
	ErrAmbiguousNode = &wire.Error{Code: wire.CodeNotFound, Reason: "the name is not unique"}
)

// Config tunes a hub.
type Config struct {
	// DefaultMode is the access a family member has to a device nobody
	// granted or revoked anything on (draft §6.2.4 modes).
	DefaultMode ops.Mode
	// Admins may change ACLs and routes of every device (node names).
	Admins []string
	// Store keeps devices, ACLs and routes across restarts; nil keeps
	// them in memory only.
	Store *store.Store
	Clock func() time.Time
	Log   zerolog.Logger
	// Family is the hub's own family. Peers of other families (federation,
	// PROFILE.md §P40) get only what the ACL grants them by name: no
	// default mode, no admin rights, no devices of their own.
	Family identity.FamilyID
}

// PeerName is how the hub names a peer in ACLs, routes and listings: its
// certificate's name, qualified with the first 8 hex digits of its family
// when it is of another family than own ("nas@1a2b3c4d").
func PeerName(c *identity.Certificate, own identity.FamilyID) string {
	if c.Family == own || own == (identity.FamilyID{}) {
		return c.Name
	}
	return c.Name + "@" + c.Family.String()[:8]
}

type device struct {
	info        ops.Device
	owner       identity.NodeID
	lockedBy    identity.NodeID
	lockExpires time.Time
	subscribers map[*session.Session]bool
}

type pending struct {
	client *session.Session
	owner  identity.NodeID // the node that must answer
	req    uint32
	op     wire.Op
}

// Hub is the family's registry and relay.
type Hub struct {
	cfg Config

	mu      sync.Mutex
	devices map[string]*device
	owners  map[identity.NodeID]*session.Session // connected nodes
	labels  map[identity.NodeID]string           // known nodes' names (PeerName), labels only
	revoked map[identity.NodeID]bool             // revoked nodes: no longer resolved by name
	acl     map[string]map[identity.NodeID]ops.Mode
	routes  map[uint64]route
	routeID uint64
	relays  map[uint32]pending
	relayID uint32
	live    map[identity.NodeID]map[*session.Session]bool // every session, by peer
	foreign map[identity.NodeID]bool                      // peers of other families
}

// New returns an empty hub.
func New(cfg Config) *Hub {
	return &Hub{cfg: cfg, devices: map[string]*device{}, owners: map[identity.NodeID]*session.Session{},
		labels: map[identity.NodeID]string{}, revoked: map[identity.NodeID]bool{}, acl: map[string]map[identity.NodeID]ops.Mode{},
		routes: map[uint64]route{}, relays: map[uint32]pending{}, live: map[identity.NodeID]map[*session.Session]bool{},
		foreign: map[identity.NodeID]bool{}}
}

func (h *Hub) now() time.Time {
	if h.cfg.Clock != nil {
		return h.cfg.Clock()
	}
	return time.Now()
}

// Serve handles one authenticated session until it ends; the devices of a
// node that disconnects become unavailable and its locks are released.
func (h *Hub) Serve(ctx context.Context, s *session.Session) error {
	return h.ServeGated(ctx, s, nil)
}

// ServeGated is Serve with a gate: while gate returns an error, requests
// are answered with it instead of served (a federated family's session
// waits so until a person has confirmed its code).
func (h *Hub) ServeGated(ctx context.Context, s *session.Session, gate func() error) error {
	peer := s.Peer()
	if peer == nil {
		return errors.New("hub: session without a verified peer")
	}
	h.KnowNode(peer)
	h.mu.Lock()
	if h.live[peer.Node] == nil {
		h.live[peer.Node] = map[*session.Session]bool{}
	}
	h.live[peer.Node][s] = true
	h.mu.Unlock()
	defer h.disconnect(s, peer.Node)
	log := h.cfg.Log.With().Str("peer", peer.Name).Logger()
	for {
		m, err := s.RecvBorrowed(ctx) // handle decodes or re-seals; it keeps nothing of m
		if err != nil {
			return err
		}
		if gate != nil {
			if err := gate(); err != nil {
				var req ops.Request
				ops.Unmarshal(m.Payload, &req) // the request ID, when there is one
				sendError(ctx, s, req.Req, err)
				continue
			}
		}
		if err := h.handle(ctx, s, peer, m); err != nil {
			log.Warn().Err(err).Stringer("op", m.Op).Msg("Failed to handle a request")
		}
	}
}

func (h *Hub) disconnect(s *session.Session, node identity.NodeID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.live[node], s)
	if len(h.live[node]) == 0 {
		delete(h.live, node)
	}
	if h.owners[node] == s {
		h.persistAvailable(context.Background(), node, false)
		delete(h.owners, node)
		for _, d := range h.devices {
			if d.owner == node {
				d.info.Available = false
			}
		}
	}
	for _, d := range h.devices {
		delete(d.subscribers, s)
		if d.lockedBy == node {
			d.lockedBy, d.lockExpires = identity.NodeID{}, time.Time{}
		}
	}
	for id, p := range h.relays {
		if p.client == s {
			delete(h.relays, id)
		}
	}
}

// RevokeNode ends every live session of a revoked node with
// SESSION_REVOKE and returns how many there were; requests no longer
// resolve its name to it.
func (h *Hub) RevokeNode(ctx context.Context, node identity.NodeID) int {
	h.mu.Lock()
	h.revoked[node] = true
	var ss []*session.Session
	for s := range h.live[node] {
		ss = append(ss, s)
	}
	h.mu.Unlock()
	for _, s := range ss {
		s.Revoke(ctx)
	}
	return len(ss)
}

// Connected reports whether a node has a live session.
func (h *Hub) Connected(node identity.NodeID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.live[node]) > 0
}

// reply sends r as op; errors are answered with ERROR.
func (h *Hub) reply(ctx context.Context, s *session.Session, op wire.Op, r ops.Reply) error {
	b, err := ops.Marshal(r)
	if err != nil {
		return err
	}
	return s.Send(ctx, op, b)
}

func sendError(ctx context.Context, s *session.Session, req uint32, err error) error {
	e := payload.Error{Code: wire.CodeOf(err), RefSeq: req, Message: wire.ReasonOf(err)}
	b, merr := e.Marshal()
	if merr != nil {
		return merr
	}
	if serr := s.Send(ctx, wire.OpError, b); serr != nil {
		return serr
	}
	return err
}

func (h *Hub) handle(ctx context.Context, s *session.Session, peer *identity.Certificate, m session.Message) error {
	switch m.Op {
	case wire.OpDeviceAnnounce:
		return h.announce(s, peer, m.Payload)
	case wire.OpDeviceEvent:
		return h.event(ctx, peer, m.Payload)
	case wire.OpError:
		return h.relayBack(ctx, peer, m)
	}
	var req ops.Request
	if err := ops.Unmarshal(m.Payload, &req); err != nil {
		return sendError(ctx, s, 0, err)
	}
	if m.Op == wire.OpDeviceConfigure && h.isRelayAnswer(req.Req, peer) {
		return h.relayBack(ctx, peer, m)
	}
	r, err := h.serve(ctx, s, peer, m.Op, &req)
	if err != nil {
		return sendError(ctx, s, req.Req, err)
	}
	if r == nil {
		return nil // relayed: the owner's answer comes back later
	}
	r.Req = req.Req
	return h.reply(ctx, s, m.Op, *r)
}

// serve answers one request, or relays it (nil reply).
func (h *Hub) serve(ctx context.Context, s *session.Session, peer *identity.Certificate, op wire.Op, req *ops.Request) (*ops.Reply, error) {
	switch op {
	case wire.OpDeviceList:
		return &ops.Reply{Devices: h.list(peer.Node)}, nil
	case wire.OpRouteList:
		return &ops.Reply{Routes: h.listRoutes(req.Device)}, nil
	case wire.OpRouteCreate, wire.OpRouteDelete, wire.OpRouteModify, wire.OpRoutePriority:
		return h.route(ctx, peer, op, req)
	case wire.OpACLGet:
		return h.aclGet(peer, req)
	case wire.OpACLSet, wire.OpACLGrant, wire.OpACLRevoke:
		return h.aclChange(ctx, peer, op, req)
	}
	read, write := ops.Access(op)
	if !read && !write {
		return nil, fmt.Errorf("%v is not served by the hub: %w", op, &wire.Error{Code: wire.CodeUnsupported, Reason: "operation not supported"})
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	d, mode, err := h.access(req.Device, peer.Node, read, write)
	if err != nil {
		return nil, err
	}
	now := h.now()
	h.expireLock(d, now)
	if !d.lockedBy.IsZero() && d.lockedBy != peer.Node && write {
		return nil, ErrLocked // a lock excludes other writers; reading goes on
	}
	switch op {
	case wire.OpDeviceInfo, wire.OpDeviceCapabilities:
		return &ops.Reply{Devices: []ops.Device{h.view(d)}, Mode: mode}, nil
	case wire.OpDeviceSubscribe:
		if d.subscribers == nil {
			d.subscribers = map[*session.Session]bool{}
		}
		d.subscribers[s] = true
		return &ops.Reply{Result: "subscribed"}, nil
	case wire.OpDeviceUnsubscribe:
		delete(d.subscribers, s)
		return &ops.Reply{Result: "unsubscribed"}, nil
	case wire.OpDeviceLock:
		lease := DefaultLease
		if req.Lease > 0 {
			lease = min(time.Duration(req.Lease)*time.Second, MaxLease)
		}
		d.lockedBy, d.lockExpires = peer.Node, now.Add(lease)
		h.notifyLocked(ctx, d, now)
		return &ops.Reply{Lease: uint32(lease / time.Second), Result: "locked"}, nil
	case wire.OpDeviceUnlock:
		d.lockedBy, d.lockExpires = identity.NodeID{}, time.Time{}
		h.notifyLocked(ctx, d, now)
		return &ops.Reply{Result: "unlocked"}, nil
	case wire.OpDeviceConfigure:
		owner := h.owners[d.owner]
		if owner == nil {
			return nil, ErrOffline
		}
		h.relayID++
		id := h.relayID
		h.relays[id] = pending{client: s, owner: d.owner, req: req.Req, op: op}
		fwd := *req
		fwd.Req = id
		b, err := ops.Marshal(fwd)
		if err != nil {
			return nil, err
		}
		go func() {
			if err := owner.Send(ctx, op, b); err != nil {
				h.cfg.Log.Warn().Err(err).Msg("Failed to relay a request to its node")
			}
			time.AfterFunc(relayTimeout, func() { h.relayExpired(ctx, id) })
		}()
		return nil, nil
	}
	return nil, &wire.Error{Code: wire.CodeUnsupported, Reason: "operation not supported"}
}

// access finds a device and checks the caller's mode; h.mu is held.
func (h *Hub) access(id string, node identity.NodeID, read, write bool) (*device, ops.Mode, error) {
	d := h.devices[id]
	if d == nil {
		return nil, 0, fmt.Errorf("%q: %w", id, ErrNoDevice)
	}
	mode := h.mode(id, node, d)
	if !mode.Allows(read, write) {
		return nil, mode, fmt.Errorf("%q with mode %v: %w", id, mode, ErrDenied)
	}
	return d, mode, nil
}

// mode is a node's access to a device: its owner and the admins have
// read-write, others what the ACL says, else the hub's default; h.mu is
// held.
func (h *Hub) mode(id string, node identity.NodeID, d *device) ops.Mode {
	if h.foreign[node] {
		return h.acl[id][node] // absent: ModeNone
	}
	if d != nil && d.owner == node || slices.Contains(h.cfg.Admins, h.nameOf(node)) {
		return ops.ModeReadWrite
	}
	if m, ok := h.acl[id][node]; ok {
		return m
	}
	return h.cfg.DefaultMode
}

func (h *Hub) expireLock(d *device, now time.Time) {
	if !d.lockedBy.IsZero() && !now.Before(d.lockExpires) {
		d.lockedBy, d.lockExpires = identity.NodeID{}, time.Time{}
	}
}

// view is what clients see of a device; h.mu is held.
func (h *Hub) view(d *device) ops.Device {
	v := d.info
	v.Owner = h.nameOf(d.owner)
	v.LockedBy, v.LockExpires = "", 0
	if !d.lockedBy.IsZero() && h.now().Before(d.lockExpires) {
		v.LockedBy, v.LockExpires = h.nameOf(d.lockedBy), d.lockExpires.Unix()
	}
	return v
}

// isForeign reports whether node is of another family.
func (h *Hub) isForeign(node identity.NodeID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.foreign[node]
}

// nameOf is a node's label for listings: its name, or its ID when the hub
// does not know it; h.mu is held.
func (h *Hub) nameOf(id identity.NodeID) string {
	if l, ok := h.labels[id]; ok {
		return l
	}
	return id.String()
}

// resolve finds the one node that is not revoked whose label is name (in
// any ASCII case, as the store keeps names unique); h.mu is held. A
// request names a node once, here; everything after keys by the ID.
func (h *Hub) resolve(name string) (identity.NodeID, error) {
	var found []identity.NodeID
	for id, l := range h.labels {
		if !h.revoked[id] && strings.EqualFold(l, name) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return identity.NodeID{}, fmt.Errorf("node \"%s\": %w", identity.Printable(name), ErrNoNode)
	case 1:
		return found[0], nil
	}
	return identity.NodeID{}, fmt.Errorf("node \"%s\" names %d nodes: %w", identity.Printable(name), len(found), ErrAmbiguousNode)
}

func (h *Hub) list(node identity.NodeID) []ops.Device {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []ops.Device
	for id, d := range h.devices {
		if h.mode(id, node, d) != ops.ModeNone {
			out = append(out, h.view(d))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Devices returns every device, for status pages and chat commands.
func (h *Hub) Devices() []ops.Device {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]ops.Device, 0, len(h.devices))
	for _, d := range h.devices {
		out = append(out, h.view(d))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (h *Hub) announce(s *session.Session, peer *identity.Certificate, p []byte) error {
	var a ops.Announce
	if err := ops.Unmarshal(p, &a); err != nil {
		return err
	}
	if h.isForeign(peer.Node) || peer.Role != identity.RoleNode && peer.Role != identity.RoleHub {
		return fmt.Errorf("%s (a %v) may not announce devices: %w", peer.Name, peer.Role, ErrNotOwner)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.owners[peer.Node] = s
	for _, dv := range a.Devices {
		if dv.ID == "" {
			continue
		}
		id := peer.Name + "/" + dv.ID // device IDs are scoped by their node
		if d := h.devices[id]; d != nil && d.owner != peer.Node {
			continue // another node's device of the same name: keep it
		}
		d := h.devices[id]
		if d == nil {
			d = &device{owner: peer.Node}
			h.devices[id] = d
		}
		d.info = dv
		d.info.ID, d.info.Available = id, true
		if err := h.persistDevice(context.Background(), d); err != nil {
			h.cfg.Log.Warn().Err(err).Str("device", id).Msg("Failed to store a device")
		}
	}
	h.cfg.Log.Info().Str("node", peer.Name).Int("devices", len(a.Devices)).Msg("A node announced its devices")
	return nil
}

// event forwards a device event from its owner to the subscribers.
func (h *Hub) event(ctx context.Context, peer *identity.Certificate, p []byte) error {
	var e ops.Event
	if err := ops.Unmarshal(p, &e); err != nil {
		return err
	}
	id := peer.Name + "/" + e.Device
	h.mu.Lock()
	d := h.devices[id]
	if d == nil || d.owner != peer.Node {
		h.mu.Unlock()
		return fmt.Errorf("event for %q: %w", id, ErrNoDevice)
	}
	e.Device = id
	// Subscribers, and the clients the device is routed to, highest
	// priority first; each session once.
	subs := make([]*session.Session, 0, len(d.subscribers))
	seen := map[*session.Session]bool{}
	for _, r := range h.routesOf(id) {
		node := r.client
		if h.mode(id, node, d).Allows(true, false) {
			for s := range h.live[node] {
				if !seen[s] {
					seen[s] = true
					subs = append(subs, s)
				}
			}
		}
	}
	for s := range d.subscribers {
		if !seen[s] {
			seen[s] = true
			subs = append(subs, s)
		}
	}
	h.mu.Unlock()
	b, err := ops.Marshal(e)
	if err != nil {
		return err
	}
	for _, s := range subs {
		if err := s.Send(ctx, wire.OpDeviceEvent, b); err != nil {
			h.cfg.Log.Debug().Err(err).Msg("Failed to deliver an event")
		}
	}
	return nil
}

// notifyLocked tells subscribers about a lock change; h.mu is held.
func (h *Hub) notifyLocked(ctx context.Context, d *device, now time.Time) {
	e := ops.Event{Device: d.info.ID, Kind: "lock", Time: now.Unix(), Values: map[string]string{"locked-by": h.view(d).LockedBy}}
	b, err := ops.Marshal(e)
	if err != nil {
		return
	}
	for s := range d.subscribers {
		go s.Send(ctx, wire.OpDeviceEvent, b)
	}
}

func (h *Hub) isRelayAnswer(req uint32, peer *identity.Certificate) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.relays[req]
	return ok && p.owner == peer.Node
}

// relayBack passes an owner's answer (or ERROR) to the client that asked.
func (h *Hub) relayBack(ctx context.Context, peer *identity.Certificate, m session.Message) error {
	var id uint32
	var r ops.Reply
	var e payload.Error
	if m.Op == wire.OpError {
		if err := e.Unmarshal(m.Payload); err != nil {
			return err
		}
		id = e.RefSeq
	} else {
		if err := ops.Unmarshal(m.Payload, &r); err != nil {
			return err
		}
		id = r.Req
	}
	h.mu.Lock()
	p, ok := h.relays[id]
	if ok && p.owner != peer.Node {
		ok = false // only the device's node answers for it
	}
	if ok {
		delete(h.relays, id)
	}
	h.mu.Unlock()
	if !ok {
		return nil // an answer that timed out, or to nobody
	}
	if m.Op == wire.OpError {
		e.RefSeq = p.req
		b, err := e.Marshal()
		if err != nil {
			return err
		}
		return p.client.Send(ctx, wire.OpError, b)
	}
	r.Req = p.req
	// The node speaks of its devices by their local IDs: record the new
	// state and show the client the hub's view.
	h.mu.Lock()
	for i, dv := range r.Devices {
		if d := h.devices[peer.Name+"/"+dv.ID]; d != nil && d.owner == peer.Node {
			if dv.Capabilities != nil {
				d.info.Capabilities = dv.Capabilities
			}
			r.Devices[i] = h.view(d)
		}
	}
	h.mu.Unlock()
	return h.reply(ctx, p.client, p.op, r)
}

func (h *Hub) relayExpired(ctx context.Context, id uint32) {
	h.mu.Lock()
	p, ok := h.relays[id]
	delete(h.relays, id)
	h.mu.Unlock()
	if ok {
		sendError(ctx, p.client, p.req, ErrRelayLimit)
	}
}
