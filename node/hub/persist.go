package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/store"
)

// Load restores the hub from its store: enrolled nodes' names, devices
// (unavailable until their node announces them again), ACLs and routes.
// Without a store it does nothing.
func (h *Hub) Load(ctx context.Context) error {
	st := h.cfg.Store
	if st == nil {
		return nil
	}
	nodes, err := st.Nodes.List(ctx)
	if err != nil {
		return err
	}
	devs, err := st.Devices.List(ctx)
	if err != nil {
		return err
	}
	routes, err := st.Routes.List(ctx)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range nodes {
		h.labels[n.ID] = n.Name
		if n.Revoked() {
			h.revoked[n.ID] = true
		}
	}
	for _, d := range devs {
		var caps map[string]string
		if len(d.Capabilities) > 0 {
			if err := json.Unmarshal(d.Capabilities, &caps); err != nil {
				return fmt.Errorf("failed to load device %s: %w", d.ID, err)
			}
		}
		h.devices[d.ID] = &device{owner: d.Owner, info: ops.Device{ID: d.ID, Kind: d.Kind, Name: d.Name, Capabilities: caps}}
		acls, err := st.ACLs.List(ctx, d.ID)
		if err != nil {
			return err
		}
		for _, a := range acls {
			if h.acl[d.ID] == nil {
				h.acl[d.ID] = map[identity.NodeID]ops.Mode{}
			}
			h.acl[d.ID][a.Node] = a.Mode
		}
	}
	for _, r := range routes {
		h.routes[uint64(r.ID)] = route{Route: ops.Route{ID: uint64(r.ID), Device: r.DeviceID, Priority: int32(r.Priority)}, client: r.Client}
		h.routeID = max(h.routeID, uint64(r.ID))
	}
	h.cfg.Log.Info().Int("nodes", len(nodes)).Int("devices", len(devs)).Int("routes", len(routes)).Msg("Loaded the hub's state")
	return nil
}

// KnowNode records a node's label (an enrolment, or a session from a
// node the store knows): its name, qualified by its family for another
// family's hub (PeerName). Labels are for display and for resolving the
// names requests carry; everything else keys by node ID.
func (h *Hub) KnowNode(c *identity.Certificate) {
	h.mu.Lock()
	h.labels[c.Node] = PeerName(c, h.cfg.Family)
	if c.Family != h.cfg.Family && h.cfg.Family != (identity.FamilyID{}) {
		h.foreign[c.Node] = true
	}
	h.mu.Unlock()
}

// HandOver gives devices (by ID) to node: the store handed them over when
// node enrolled under the name of their revoked owner. They stay
// unavailable until node announces them.
func (h *Hub) HandOver(node identity.NodeID, devices []string) {
	h.wmu.Lock() // an owner changes: not while an announcement is decided
	defer h.wmu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range devices {
		if d := h.devices[id]; d != nil {
			d.owner, d.info.Available = node, false
		}
	}
}

// The persist functions do the store's I/O: h.mu is not held (h.wmu is).

// persistDevice stores an announced device of owner.
func (h *Hub) persistDevice(ctx context.Context, owner identity.NodeID, dv ops.Device) error {
	if h.cfg.Store == nil {
		return nil
	}
	caps, err := json.Marshal(dv.Capabilities)
	if err != nil {
		return err
	}
	return h.cfg.Store.Devices.Put(ctx, &store.Device{ID: dv.ID, Owner: owner, Kind: dv.Kind, Name: dv.Name,
		Capabilities: caps, AnnouncedAt: h.now(), Available: dv.Available})
}

// persistForget removes a device its node no longer announces.
func (h *Hub) persistForget(ctx context.Context, id string) error {
	if h.cfg.Store == nil {
		return nil
	}
	if err := h.cfg.Store.Devices.Delete(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

func (h *Hub) persistAvailable(ctx context.Context, owner identity.NodeID, available bool) {
	if h.cfg.Store == nil {
		return
	}
	if err := h.cfg.Store.Devices.SetAvailable(ctx, owner, available); err != nil {
		h.cfg.Log.Warn().Err(err).Msg("Failed to store device availability")
	}
}

// persistACL stores one grant.
func (h *Hub) persistACL(ctx context.Context, device string, node identity.NodeID, mode ops.Mode) error {
	if h.cfg.Store == nil {
		return nil
	}
	return h.cfg.Store.ACLs.Grant(ctx, &store.ACL{DeviceID: device, Node: node, Mode: mode, GrantedAt: h.now()})
}

// persistRoute creates, changes or (with delete) removes a route and
// returns its ID, which a new route takes from the store; without a store
// it is 0 for a new route (newRouteID gives it one under h.mu).
func (h *Hub) persistRoute(ctx context.Context, r route, del bool) (uint64, error) {
	st := h.cfg.Store
	if st == nil {
		return r.ID, nil
	}
	switch {
	case del:
		return r.ID, st.Routes.Delete(ctx, int64(r.ID))
	case r.ID != 0:
		return r.ID, st.Routes.SetPriority(ctx, int64(r.ID), int(r.Priority))
	}
	id, err := st.Routes.Create(ctx, &store.Route{DeviceID: r.Device, Client: r.client, Priority: int(r.Priority), CreatedAt: h.now()})
	return uint64(id), err
}

// newRouteID gives a new route of a hub without a store its ID; h.mu is
// held.
func (h *Hub) newRouteID(id uint64) uint64 {
	if id == 0 {
		h.routeID++
		id = h.routeID
	}
	return id
}
