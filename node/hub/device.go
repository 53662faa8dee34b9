package hub

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
)

// deviceHandlers serve the device ops of node/optable/device.go. The
// dispatcher has checked the caller's mode and the lock; c.dev is the
// device.
var deviceHandlers = map[wire.Op]handler{
	wire.OpDeviceList:         (*Hub).deviceList,
	wire.OpDeviceInfo:         (*Hub).deviceInfo,
	wire.OpDeviceCapabilities: (*Hub).deviceInfo,
	wire.OpDeviceSubscribe:    (*Hub).deviceSubscribe,
	wire.OpDeviceUnsubscribe:  (*Hub).deviceUnsubscribe,
	wire.OpDeviceLock:         (*Hub).deviceLock,
	wire.OpDeviceUnlock:       (*Hub).deviceUnlock,
}

func (h *Hub) deviceList(_ context.Context, c *call) (*ops.Reply, error) {
	var out []ops.Device
	for id, d := range h.devices {
		if h.mode(id, c.peer.Node, d) != ops.ModeNone {
			out = append(out, h.view(d))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return &ops.Reply{Devices: out}, nil
}

func (h *Hub) deviceInfo(_ context.Context, c *call) (*ops.Reply, error) {
	return &ops.Reply{Devices: []ops.Device{h.view(c.dev)}, Mode: c.mode}, nil
}

func (h *Hub) deviceSubscribe(_ context.Context, c *call) (*ops.Reply, error) {
	if c.dev.subscribers == nil {
		c.dev.subscribers = map[*session.Session]bool{}
	}
	c.dev.subscribers[c.s] = true
	return &ops.Reply{Result: "subscribed"}, nil
}

func (h *Hub) deviceUnsubscribe(_ context.Context, c *call) (*ops.Reply, error) {
	delete(c.dev.subscribers, c.s)
	return &ops.Reply{Result: "unsubscribed"}, nil
}

func (h *Hub) deviceLock(_ context.Context, c *call) (*ops.Reply, error) {
	lease := DefaultLease
	if c.req.Lease > 0 {
		lease = min(time.Duration(c.req.Lease)*time.Second, MaxLease)
	}
	c.dev.lockedBy, c.dev.lockExpires = c.peer.Node, c.now.Add(lease)
	h.notifyLocked(c.dev, c.now)
	return &ops.Reply{Lease: uint32(lease / time.Second), Result: "locked"}, nil
}

func (h *Hub) deviceUnlock(_ context.Context, c *call) (*ops.Reply, error) {
	c.dev.lockedBy, c.dev.lockExpires = identity.NodeID{}, time.Time{}
	h.notifyLocked(c.dev, c.now)
	return &ops.Reply{Result: "unlocked"}, nil
}

// configured records the state a node reports after DEVICE_CONFIGURE and
// shows the caller the hub's view of the device; h.mu is held.
func (h *Hub) configured(owner *identity.Certificate, r *ops.Reply) {
	for i, dv := range r.Devices {
		if d := h.devices[owner.Name+"/"+dv.ID]; d != nil && d.owner == owner.Node {
			if dv.Capabilities != nil {
				d.info.Capabilities = dv.Capabilities
			}
			r.Devices[i] = h.view(d)
		}
	}
}

// announce takes a node's list of its devices (DEVICE_ANNOUNCE): the whole
// list, so devices the node no longer announces are forgotten (their ACL
// entries and routes are kept under their IDs, and apply again if the
// device comes back). It is taken whole or not at all: one over the
// limits of node/ops is answered ERROR and changes nothing. The answer is
// sent with no lock of the registry held: the node may be slow to read.
func (h *Hub) announce(ctx context.Context, s *session.Session, peer *identity.Certificate, p []byte) error {
	var a ops.Announce
	if err := ops.Unmarshal(p, &a); err != nil {
		return sendDetail(ctx, s, 0, fmt.Errorf("DEVICE_ANNOUNCE from %s: %w", peer.Name, err))
	}
	if err := ops.CheckAnnounce(&a); err != nil {
		return sendDetail(ctx, s, 0, fmt.Errorf("DEVICE_ANNOUNCE from %s refused: %w", peer.Name, err))
	}
	if err := h.takeAnnouncement(s, peer, &a); err != nil {
		return sendDetail(ctx, s, 0, err)
	}
	return nil
}

// takeAnnouncement applies a checked announcement. Which devices are the
// node's, and which it dropped, is decided under h.mu; the store is
// written with h.mu released, and the registry changed under h.mu again;
// h.wmu, held throughout, keeps the decision valid. A device the store
// refused is still served (logged): the node announces it again on its
// next session.
func (h *Hub) takeAnnouncement(s *session.Session, peer *identity.Certificate, a *ops.Announce) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	h.mu.Lock()
	if n := h.othersDevices(peer.Node) + len(a.Devices); n > ops.MaxDevices {
		h.mu.Unlock()
		return fmt.Errorf("DEVICE_ANNOUNCE from %s refused: the family would have %d devices, at most %d: %w",
			peer.Name, n, ops.MaxDevices, ops.ErrAnnounce)
	}
	announced := make(map[string]bool, len(a.Devices))
	var take []ops.Device
	for _, dv := range a.Devices {
		id := peer.Name + "/" + dv.ID // device IDs are scoped by their node
		announced[id] = true
		if d := h.devices[id]; d != nil && d.owner != peer.Node {
			continue // another node's device of the same name: keep it
		}
		dv.ID, dv.Available = id, true
		take = append(take, dv)
	}
	var gone []string
	for id, d := range h.devices {
		if d.owner == peer.Node && !announced[id] {
			gone = append(gone, id)
		}
	}
	h.mu.Unlock()
	for _, dv := range take {
		if err := h.persistDevice(context.Background(), peer.Node, dv); err != nil {
			h.cfg.Log.Warn().Err(err).Str("device", dv.ID).Msg("Failed to store a device")
		}
	}
	for _, id := range gone {
		if err := h.persistForget(context.Background(), id); err != nil {
			h.cfg.Log.Warn().Err(err).Str("device", id).Msg("Failed to forget a device")
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.owners[peer.Node] = s
	for _, dv := range take {
		d := h.devices[dv.ID]
		if d == nil {
			d = &device{owner: peer.Node}
			h.devices[dv.ID] = d
		}
		d.info = dv
	}
	for _, id := range gone {
		delete(h.devices, id)
	}
	h.cfg.Log.Info().Str("node", peer.Name).Int("devices", len(a.Devices)).Int("forgotten", len(gone)).Msg("A node announced its devices")
	return nil
}

// othersDevices counts the devices of nodes other than node; h.mu is held.
func (h *Hub) othersDevices(node identity.NodeID) int {
	n := 0
	for _, d := range h.devices {
		if d.owner != node {
			n++
		}
	}
	return n
}

// event forwards a device event from its owner to the subscribers and to
// the members it is routed to, while they may read it.
func (h *Hub) event(_ context.Context, _ *session.Session, peer *identity.Certificate, p []byte) error {
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
	// Routes first, highest priority first; then subscribers; each session
	// once.
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
	defer h.mu.Unlock()
	b, err := ops.Marshal(e)
	if err != nil {
		return err
	}
	// Queued under h.mu, so each session gets events in the order the hub
	// took them; queuing never waits (a full queue overflows).
	for _, s := range subs {
		h.push(s, wire.OpDeviceEvent, b)
	}
	return nil
}

// notifyLocked tells subscribers about a lock change, through their send
// queues (in order); h.mu is held.
func (h *Hub) notifyLocked(d *device, now time.Time) {
	e := ops.Event{Device: d.info.ID, Kind: "lock", Time: now.Unix(), Values: map[string]string{"locked-by": h.view(d).LockedBy}}
	b, err := ops.Marshal(e)
	if err != nil {
		return
	}
	for s := range d.subscribers {
		h.push(s, wire.OpDeviceEvent, b)
	}
}

// endSubscriptions drops the subscribers of d who may no longer read it,
// telling each with an "access" event (through its send queue); h.mu is
// held.
func (h *Hub) endSubscriptions(d *device, now time.Time) {
	for s := range d.subscribers {
		p := s.Peer()
		if p == nil {
			continue
		}
		mode := h.mode(d.info.ID, p.Node, d)
		if mode.Allows(true, false) {
			continue
		}
		delete(d.subscribers, s)
		e := ops.Event{Device: d.info.ID, Kind: "access", Time: now.Unix(),
			Values: map[string]string{"mode": mode.String(), "subscription": "ended"}}
		if b, err := ops.Marshal(e); err == nil {
			h.push(s, wire.OpDeviceEvent, b)
		}
	}
}
