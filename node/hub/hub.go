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
	"github.com/myclerk/myclerk-bridge/node/metrics"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/ratelog"
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
	// ErrBusy: the device's node has more queued than its send queue
	// holds (PROFILE.md §P42).
	ErrBusy = &wire.Error{Code: wire.CodeServiceUnavailable, Reason: "the device's node is not keeping up"}
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
	// SendQueue bounds each session's queue of pushed messages (events,
	// relayed requests and answers); 0 is DefaultSendQueue.
	SendQueue int
	// Metrics counts refused requests (nil counts nothing).
	Metrics *metrics.Metrics
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
	timer  *time.Timer // relayTimeout; its callback is counted in Hub.timers
}

// Hub is the family's registry and relay.
type Hub struct {
	cfg     Config
	rejects *ratelog.Limiter // samples the log lines of refused requests

	// wmu serializes the registry changes the store keeps (announcements,
	// ACLs, routes, availability): each is decided under mu, written to
	// the store with mu released, and applied under mu again. Holding wmu
	// from the decision to the application keeps the decision valid, so
	// memory and store agree, while a slow store blocks only other
	// writers, never readers, events or locks (which take mu alone).
	wmu sync.Mutex

	// timers counts the relay timeouts not yet stopped or run out (Close
	// waits for them).
	timers sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	queues  map[*session.Session]*outbox // the send queue of every served session
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
	h := &Hub{cfg: cfg, devices: map[string]*device{}, owners: map[identity.NodeID]*session.Session{},
		labels: map[identity.NodeID]string{}, revoked: map[identity.NodeID]bool{}, acl: map[string]map[identity.NodeID]ops.Mode{},
		routes: map[uint64]route{}, relays: map[uint32]pending{}, live: map[identity.NodeID]map[*session.Session]bool{},
		foreign: map[identity.NodeID]bool{}, queues: map[*session.Session]*outbox{},
	}
	h.rejects = ratelog.New(rejectLines, time.Minute, h.now)
	return h
}

// Close stops the relay timeouts and waits for those already running;
// call it after every Serve returned. Relays after Close are refused.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	for id, p := range h.relays {
		h.stopRelay(p)
		delete(h.relays, id)
	}
	h.mu.Unlock()
	h.timers.Wait()
}

// stopRelay stops p's timeout; h.mu is held.
func (h *Hub) stopRelay(p pending) {
	if p.timer != nil && p.timer.Stop() {
		h.timers.Done() // it will not run
	}
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
	// The session's send queue and its writer, which ends with this call.
	q := newOutbox(s, h.cfg.SendQueue)
	qctx, stop := context.WithCancel(ctx)
	written := make(chan struct{})
	go func() {
		defer close(written)
		q.run(qctx, h)
	}()
	defer func() {
		stop()
		<-written
	}()
	h.mu.Lock()
	if h.live[peer.Node] == nil {
		h.live[peer.Node] = map[*session.Session]bool{}
	}
	h.live[peer.Node][s] = true
	h.queues[s] = q
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
				h.refused(&log, m.Op, sendError(ctx, s, req.Req, err))
				continue
			}
		}
		if err := h.dispatch(ctx, s, peer, m); err != nil {
			h.refused(&log, m.Op, err)
		}
	}
}

// refused counts a request the hub refused or failed, and logs it: at most
// rejectLines lines a minute for each reason, so that a member cannot turn
// bad requests into a flood of log (PROFILE.md §P41).
func (h *Hub) refused(log *zerolog.Logger, op wire.Op, err error) {
	h.cfg.Metrics.Refused(op, wire.CodeOf(err))
	ok, suppressed := h.rejects.Allow(wire.ReasonOf(err))
	if !ok {
		return
	}
	e := log.Warn()
	if suppressed > 0 {
		e = e.Int("suppressed", suppressed)
	}
	e.Err(err).Stringer("op", op).Msg("Refused a request")
}

// rejectLines is how many refusal lines the hub logs a minute per reason.
const rejectLines = 10

// disconnect forgets a session that ended. The devices of a node whose
// session it was become unavailable in memory first, then in the store,
// outside h.mu (under h.wmu, so a new session's announcement is applied
// and stored after this).
func (h *Hub) disconnect(s *session.Session, node identity.NodeID) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if h.disconnected(s, node) {
		h.persistAvailable(context.Background(), node, false)
	}
}

// disconnected is disconnect's change in memory; it reports whether s
// was its node's owning session.
func (h *Hub) disconnected(s *session.Session, node identity.NodeID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.queues, s)
	delete(h.live[node], s)
	last := len(h.live[node]) == 0 // the node's locks go with its last session
	if last {
		delete(h.live, node)
	}
	owner := h.owners[node] == s
	if owner {
		delete(h.owners, node)
		for _, d := range h.devices {
			if d.owner == node {
				d.info.Available = false
			}
		}
	}
	for _, d := range h.devices {
		delete(d.subscribers, s)
		if last && d.lockedBy == node {
			d.lockedBy, d.lockExpires = identity.NodeID{}, time.Time{}
		}
	}
	for id, p := range h.relays {
		switch {
		case p.client == s:
			h.stopRelay(p)
			delete(h.relays, id)
		case owner && p.owner == node:
			// Nobody is left to answer: say so now, not after relayTimeout.
			h.stopRelay(p)
			delete(h.relays, id)
			if b, err := errorPayload(p.req, ErrOffline); err == nil {
				h.push(p.client, wire.OpError, b)
			}
		}
	}
	return owner
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
	return sendErrorMessage(ctx, s, req, err, wire.ReasonOf(err))
}

// sendDetail is sendError with err's whole text as the message, for a
// refusal the peer needs the details of to fix (an announcement over a
// limit); sendError sends only the reason.
func sendDetail(ctx context.Context, s *session.Session, req uint32, err error) error {
	return sendErrorMessage(ctx, s, req, err, payload.ShortMessage(err.Error()))
}

func sendErrorMessage(ctx context.Context, s *session.Session, req uint32, err error, msg string) error {
	b, merr := (&payload.Error{Code: wire.CodeOf(err), RefSeq: req, Message: msg}).Marshal()
	if merr != nil {
		return merr
	}
	if serr := s.Send(ctx, wire.OpError, b); serr != nil {
		return serr
	}
	return err
}

// errorPayload is the ERROR that answers request req with err.
func errorPayload(req uint32, err error) ([]byte, error) {
	e := payload.Error{Code: wire.CodeOf(err), RefSeq: req, Message: wire.ReasonOf(err)}
	return e.Marshal()
}

// mode is a node's access to a device; h.mu is held. While a member holds
// an exclusive grant, it has every access and everyone else none (owner
// and admins included: they may still change the ACL). Otherwise the
// owner and the admins have read-write, others what the ACL says, else
// the hub's default. A peer of another family has only what the ACL
// grants it.
func (h *Hub) mode(id string, node identity.NodeID, d *device) ops.Mode {
	acl := h.acl[id]
	for n, m := range acl {
		if m == ops.ModeExclusive {
			if n == node {
				return ops.ModeExclusive
			}
			return ops.ModeNone
		}
	}
	if h.foreign[node] {
		return acl[node] // absent: ModeNone
	}
	if d != nil && d.owner == node || slices.Contains(h.cfg.Admins, h.nameOf(node)) {
		return ops.ModeReadWrite
	}
	if m, ok := acl[node]; ok {
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
