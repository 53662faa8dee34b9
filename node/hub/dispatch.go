package hub

import (
	"context"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/optable"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// call is one request on its way through the dispatcher: who asked, its
// op table entry, the decoded request, and the device it names with the
// caller's mode on it (once the ACL was checked).
type call struct {
	s     *session.Session
	peer  *identity.Certificate
	entry *optable.Entry
	req   ops.Request
	raw   []byte // the payload as it came, for a relay
	dev   *device
	devID string
	mode  ops.Mode
	now   time.Time

	// write and apply are a change the store keeps, as a handler of an op
	// in storing decided it: the dispatcher runs write (the store's I/O)
	// with h.mu released, and then apply under h.mu, whose reply answers.
	// h.wmu is held from the handler to apply, so what the handler
	// checked still holds when apply runs; a failed write changes nothing.
	write func(ctx context.Context) error
	apply func() (*ops.Reply, error)
}

// handler serves one op from the registry; h.mu is held. A nil reply with
// no error means the answer was sent another way. A handler of an op in
// storing does no store I/O: it sets c.write and c.apply instead.
type handler func(h *Hub, ctx context.Context, c *call) (*ops.Reply, error)

// pushHandler takes one pushed message (an announcement, an event); h.mu
// is not held.
type pushHandler func(h *Hub, ctx context.Context, s *session.Session, peer *identity.Certificate, p []byte) error

// relayHook sees an owner's answer before the caller does; h.mu is held.
type relayHook func(h *Hub, owner *identity.Certificate, r *ops.Reply)

// handlers binds the op table's hub-served entries to their code, one
// family per file (device.go, acl.go); TestEveryServedOpHasAHandler keeps
// the two in step.
var handlers = merge(deviceHandlers, routeHandlers)

// pushHandlers takes the pushed ops a hub receives.
var pushHandlers = map[wire.Op]pushHandler{
	wire.OpDeviceAnnounce: (*Hub).announce,
	wire.OpDeviceEvent:    (*Hub).event,
}

// relayHooks update the registry from an owner's answer.
var relayHooks = map[wire.Op]relayHook{
	wire.OpDeviceConfigure: (*Hub).configured,
}

func merge(ms ...map[wire.Op]handler) map[wire.Op]handler {
	out := map[wire.Op]handler{}
	for _, m := range ms {
		for op, f := range m {
			if _, dup := out[op]; dup {
				panic(fmt.Sprintf("hub: two handlers for %v", op))
			}
			out[op] = f
		}
	}
	return out
}

// ErrUnsupported answers an op nobody serves yet.
var ErrUnsupported = &wire.Error{Code: wire.CodeUnsupported, Reason: "operation not supported"}

// ErrRole answers an op the caller's role may not send.
var ErrRole = &wire.Error{Code: wire.CodeForbidden, Reason: "not for your role"}

// sender is the op table's name for what peer is to this hub.
func (h *Hub) sender(peer *identity.Certificate) optable.Senders {
	if h.isForeign(peer.Node) {
		return optable.FromForeign
	}
	switch peer.Role {
	case identity.RoleNode:
		return optable.FromNode
	case identity.RoleHub:
		return optable.FromHub
	}
	return optable.FromClient
}

// dispatch applies the op table to one message, in order: answers to
// relays, tier, role, then (for requests) the ACL and the lock, then the
// handler or the relay.
func (h *Hub) dispatch(ctx context.Context, s *session.Session, peer *identity.Certificate, m session.Message) error {
	e, _ := optable.Lookup(m.Op)
	if m.Op == wire.OpError {
		return h.relayBack(ctx, peer, m)
	}
	if m.Tier < e.MinTier {
		// The session refuses these first; this guards a caller that
		// hands the hub messages of its own.
		return fmt.Errorf("%v at tier %d needs %d: %w", m.Op, m.Tier, e.MinTier, wire.ErrWrongTier)
	}
	if e.Server == optable.Push {
		if !e.Senders.Has(h.sender(peer)) {
			return fmt.Errorf("%s (a %v) sent %v: %w", peer.Name, peer.Role, m.Op, ErrRole)
		}
		f := pushHandlers[m.Op]
		if f == nil || !e.Served {
			return fmt.Errorf("%v: %w", m.Op, ErrUnsupported) // pushed: nobody to answer
		}
		return f(h, ctx, s, peer, m.Payload)
	}
	var hdr ops.Header
	if err := ops.Unmarshal(m.Payload, &hdr); err != nil {
		return sendError(ctx, s, 0, err)
	}
	if hdr.Relay != 0 && e.Server == optable.Owner && h.sender(peer)&(optable.FromNode|optable.FromHub) != 0 {
		return h.relayBack(ctx, peer, m) // a node answering what the hub relayed
	}
	c := &call{s: s, peer: peer, entry: e, raw: m.Payload, now: h.now()}
	if err := ops.Unmarshal(m.Payload, &c.req); err != nil {
		return sendError(ctx, s, hdr.Req, err)
	}
	r, err := h.serveCall(ctx, c)
	if err != nil {
		return sendError(ctx, s, c.req.Req, err)
	}
	if r == nil {
		return nil // relayed: the owner's answer comes back later
	}
	r.Req = c.req.Req
	return h.reply(ctx, s, m.Op, *r)
}

// serveCall checks a request's role, ACL and lock under h.mu and serves
// or relays it.
func (h *Hub) serveCall(ctx context.Context, c *call) (*ops.Reply, error) {
	e := c.entry
	switch {
	case e.Server != optable.Hub && e.Server != optable.Owner, !e.Reply:
		return nil, fmt.Errorf("%v is not a request: %w", e.Op, ErrUnsupported)
	case !e.Senders.Has(h.sender(c.peer)):
		return nil, fmt.Errorf("%v: %w", e.Op, ErrRole)
	case !e.Served:
		return nil, fmt.Errorf("%v: %w", e.Op, ErrUnsupported)
	}
	if storing[e.Op] {
		h.wmu.Lock()
		defer h.wmu.Unlock()
	}
	r, err := h.decide(ctx, c)
	if err != nil || c.write == nil {
		return r, err
	}
	if !storing[e.Op] {
		return nil, fmt.Errorf("%v: a store write without h.wmu: %w", e.Op, ErrUnsupported) // a handler's bug
	}
	if err := c.write(ctx); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return c.apply()
}

// decide is serveCall's part under h.mu: the ACL and the lock, then the
// handler or the relay.
func (h *Hub) decide(ctx context.Context, c *call) (*ops.Reply, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.check(c); err != nil {
		return nil, err
	}
	if c.entry.Server == optable.Owner {
		return nil, h.relay(c)
	}
	f := handlers[c.entry.Op]
	if f == nil {
		return nil, fmt.Errorf("%v: %w", c.entry.Op, ErrUnsupported)
	}
	return f(h, ctx, c)
}

// check applies the entry's ACL and lock rules to c; h.mu is held. A peer
// of another family is told NOT_FOUND for a device it may not see, the
// same answer as for a device that does not exist.
func (h *Hub) check(c *call) error {
	e := c.entry
	c.devID = c.req.Device
	if c.req.Route != 0 {
		// A request about a route is about its device, whatever device it
		// names besides: checking the one it names would let the owner of
		// any device change every route.
		r, ok := h.routes[c.req.Route]
		switch {
		case ok && c.devID != "" && c.devID != r.Device:
			return fmt.Errorf("route %d is not one of %q: %w", c.req.Route, c.devID, ErrNoRoute)
		case ok:
			c.devID = r.Device
		case e.Need == optable.NeedAdmin:
			return fmt.Errorf("route %d: %w", c.req.Route, ErrNoRoute)
		}
	}
	if e.Need == optable.NeedNothing && c.devID == "" {
		return nil
	}
	c.dev = h.devices[c.devID]
	if c.dev != nil {
		c.mode = h.mode(c.devID, c.peer.Node, c.dev)
	}
	foreign := h.foreign[c.peer.Node]
	if c.dev == nil || foreign && c.mode == ops.ModeNone {
		c.dev, c.mode = nil, ops.ModeNone
		if e.Need == optable.NeedNothing {
			return nil // the handler answers for a device it does not know
		}
		return fmt.Errorf("%q: %w", c.devID, ErrNoDevice)
	}
	switch {
	case e.Need == optable.NeedAdmin:
		if !h.mayAdminister(c.peer, c.dev) {
			return ErrNotOwner
		}
	case e.Need != optable.NeedNothing && !c.mode.Allows(e.Need.Reads(), e.Need.Writes()):
		return fmt.Errorf("%q with mode %v: %w", c.devID, c.mode, ErrDenied)
	}
	if e.Lock {
		h.expireLock(c.dev, c.now)
		if !c.dev.lockedBy.IsZero() && c.dev.lockedBy != c.peer.Node {
			return ErrLocked // a lock refuses others what changes the device; reading goes on
		}
	}
	return nil
}

// relay sends a request to the node that owns its device, in the hub's
// own request-ID space ("relay"), with who asks and their mode ("caller",
// PROFILE.md §P42); the answer comes back through relayBack, or ERROR
// TIMEOUT after relayTimeout. The request goes through the owner's send
// queue (a full one refuses it); the timeout is stopped when the answer
// comes, the caller's session ends or the hub closes. h.mu is held.
func (h *Hub) relay(c *call) error {
	owner := h.owners[c.dev.owner]
	if owner == nil || h.closed {
		return ErrOffline
	}
	h.relayID++
	if h.relayID == 0 {
		h.relayID++ // 0 means "not relayed"
	}
	id := h.relayID
	b, err := relayPayload(c.raw, id, ops.Caller{Node: c.peer.Node.String(), Name: h.nameOf(c.peer.Node), Mode: c.mode})
	if err != nil {
		return err
	}
	if !h.push(owner, c.entry.Op, b) {
		return ErrBusy
	}
	h.timers.Add(1)
	t := time.AfterFunc(relayTimeout, func() {
		defer h.timers.Done()
		h.relayExpired(id)
	})
	h.relays[id] = pending{client: c.s, owner: c.dev.owner, req: c.req.Req, op: c.entry.Op, timer: t}
	return nil
}

// relayPayload is a request's payload as it came, whatever its op's
// fields, with "relay" and "caller" set by the hub (anything a caller put
// there is replaced).
func relayPayload(raw []byte, id uint32, caller ops.Caller) ([]byte, error) {
	var m map[string]msgpack.RawMessage
	if err := ops.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]msgpack.RawMessage{}
	}
	var err error
	if m["relay"], err = msgpack.Marshal(id); err != nil {
		return nil, err
	}
	if m["caller"], err = msgpack.Marshal(caller); err != nil {
		return nil, err
	}
	if m["req"], err = msgpack.Marshal(id); err != nil {
		return nil, err
	}
	return ops.Marshal(m)
}

// relayBack passes an owner's answer (or ERROR) to the client that asked,
// with the client's request ID in place of the relay's, through the
// client's send queue: a slow client never holds up the owner's session.
func (h *Hub) relayBack(_ context.Context, peer *identity.Certificate, m session.Message) error {
	var id uint32
	var e payload.Error
	if m.Op == wire.OpError {
		if err := e.Unmarshal(m.Payload); err != nil {
			return err
		}
		id = e.RefSeq
	} else {
		var hdr ops.Header
		if err := ops.Unmarshal(m.Payload, &hdr); err != nil {
			return err
		}
		id = hdr.Relay
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.relays[id]
	if ok && (p.owner != peer.Node || m.Op != wire.OpError && m.Op != p.op) {
		ok = false // only the device's node answers for it, with its op
	}
	if !ok {
		return nil // an answer that timed out, or to nobody
	}
	delete(h.relays, id)
	h.stopRelay(p)
	var b []byte
	var err error
	switch hook := relayHooks[m.Op]; {
	case m.Op == wire.OpError:
		e.RefSeq = p.req
		b, err = e.Marshal()
	case hook != nil:
		var r ops.Reply
		if err = ops.Unmarshal(m.Payload, &r); err == nil {
			hook(h, peer, &r)
			r.Req, r.Relay = p.req, 0
			b, err = ops.Marshal(r)
		}
	default:
		b, err = answerPayload(m.Payload, p.req)
	}
	if err != nil {
		if eb, merr := errorPayload(p.req, fmt.Errorf("the device's node answered: %w", err)); merr == nil {
			h.push(p.client, wire.OpError, eb)
		}
		return err
	}
	h.push(p.client, m.Op, b)
	return nil
}

// answerPayload is an owner's answer as it came, with the caller's
// request ID and without the relay's.
func answerPayload(raw []byte, req uint32) ([]byte, error) {
	var m map[string]msgpack.RawMessage
	if err := ops.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "relay")
	var err error
	if m["req"], err = msgpack.Marshal(req); err != nil {
		return nil, err
	}
	return ops.Marshal(m)
}

// relayExpired answers TIMEOUT to a relay its node did not answer in
// time; it runs in the relay's timer.
func (h *Hub) relayExpired(id uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.relays[id]
	if !ok {
		return
	}
	delete(h.relays, id)
	if b, err := errorPayload(p.req, ErrRelayLimit); err == nil {
		h.push(p.client, wire.OpError, b)
	}
}
