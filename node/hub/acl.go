package hub

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/wire"
)

// routeHandlers serve the routing and ACL ops of node/optable/route.go.
// The dispatcher has checked that the caller may administer the device
// (NeedAdmin); c.dev is the device, or the route's device.
var routeHandlers = map[wire.Op]handler{
	wire.OpRouteCreate:   (*Hub).routeCreate,
	wire.OpRouteDelete:   (*Hub).routeChange,
	wire.OpRouteModify:   (*Hub).routeChange,
	wire.OpRoutePriority: (*Hub).routeChange,
	wire.OpRouteList:     (*Hub).routeList,
	wire.OpACLGet:        (*Hub).aclGet,
	wire.OpACLSet:        (*Hub).aclChange,
	wire.OpACLGrant:      (*Hub).aclChange,
	wire.OpACLRevoke:     (*Hub).aclChange,
}

// storing are the ops whose handlers change what the store keeps: they
// decide under h.mu and leave the store's I/O to c.write and the change
// of the registry to c.apply (dispatch.go), all under h.wmu.
var storing = map[wire.Op]bool{
	wire.OpRouteCreate: true, wire.OpRouteDelete: true, wire.OpRouteModify: true, wire.OpRoutePriority: true,
	wire.OpACLSet: true, wire.OpACLGrant: true, wire.OpACLRevoke: true,
}

// mayAdminister reports whether peer may change the ACL and routes of
// device d: its owner, or an admin; h.mu is held.
func (h *Hub) mayAdminister(peer *identity.Certificate, d *device) bool {
	if h.foreign[peer.Node] {
		return false
	}
	return (d != nil && d.owner == peer.Node) || slices.Contains(h.cfg.Admins, peer.Name)
}

// aclGet tells anyone their own mode, and the device's administrators the
// whole list.
func (h *Hub) aclGet(_ context.Context, c *call) (*ops.Reply, error) {
	if c.dev == nil {
		return nil, fmt.Errorf("%q: %w", c.devID, ErrNoDevice)
	}
	if !h.mayAdminister(c.peer, c.dev) {
		return &ops.Reply{Mode: c.mode}, nil
	}
	var out []ops.ACLEntry
	for n, m := range h.acl[c.devID] {
		out = append(out, ops.ACLEntry{Device: c.devID, Node: h.nameOf(n), Mode: m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return &ops.Reply{ACL: out, Mode: c.mode}, nil
}

func (h *Hub) aclChange(_ context.Context, c *call) (*ops.Reply, error) {
	req, dev := &c.req, c.devID
	node, err := h.resolve(req.Node)
	if err != nil {
		return nil, err
	}
	if req.Mode > ops.ModeExclusive {
		return nil, fmt.Errorf("mode %d: %w", req.Mode, wire.ErrMalformed)
	}
	mode := req.Mode
	if c.entry.Op == wire.OpACLRevoke {
		mode = ops.ModeNone
	}
	if mode == ops.ModeExclusive {
		for n, m := range h.acl[dev] {
			if m == ops.ModeExclusive && n != node {
				return nil, fmt.Errorf("%s is held exclusively by %s; revoke that first: %w", dev, h.nameOf(n), ErrLocked)
			}
		}
	}
	c.write = func(ctx context.Context) error {
		if err := h.persistACL(ctx, dev, node, mode); err != nil {
			return fmt.Errorf("failed to store the ACL of %s: %w", dev, err)
		}
		return nil
	}
	c.apply = func() (*ops.Reply, error) {
		if h.acl[dev] == nil {
			h.acl[dev] = map[identity.NodeID]ops.Mode{}
		}
		h.acl[dev][node] = mode
		// Locks and subscriptions are not the store's: they are taken as
		// they are now, after the write.
		if c.dev.lockedBy != (identity.NodeID{}) && !h.mode(dev, c.dev.lockedBy, c.dev).Allows(true, true) {
			c.dev.lockedBy = identity.NodeID{} // a lock lasts only while its holder may write
		}
		h.endSubscriptions(c.dev, c.now)
		h.cfg.Log.Info().Str("device", dev).Str("node", req.Node).Stringer("mode", mode).Str("by", c.peer.Name).Msg("Changed an ACL")
		return &ops.Reply{Mode: mode, Result: "ok"}, nil
	}
	return nil, nil
}

// route is a route as the hub keeps it: to a client by node ID. Its
// Route.Node, the client's label, is filled in when it is listed.
type route struct {
	ops.Route
	client identity.NodeID
}

// routeList lists the routes of the devices the caller may read.
func (h *Hub) routeList(_ context.Context, c *call) (*ops.Reply, error) {
	var out []ops.Route
	for _, r := range h.routesOf(c.req.Device) {
		if d := h.devices[r.Device]; d != nil && h.mode(r.Device, c.peer.Node, d).Allows(true, false) {
			r.Node = h.nameOf(r.client)
			out = append(out, r.Route)
		}
	}
	return &ops.Reply{Routes: out}, nil
}

// routesOf lists the routes of device (all with ""), highest priority
// first; h.mu is held.
func (h *Hub) routesOf(device string) []route {
	var out []route
	for _, r := range h.routes {
		if device == "" || r.Device == device {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority > out[j].Priority
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (h *Hub) routeCreate(_ context.Context, c *call) (*ops.Reply, error) {
	req := &c.req
	client, err := h.resolve(req.Node)
	if err != nil {
		return nil, err
	}
	r := route{Route: ops.Route{Device: c.devID, Priority: req.Priority}, client: client}
	var id uint64
	c.write = func(ctx context.Context) (err error) {
		if id, err = h.persistRoute(ctx, r, false); err != nil {
			return fmt.Errorf("failed to store a route: %w", err)
		}
		return nil
	}
	c.apply = func() (*ops.Reply, error) {
		r.ID = h.newRouteID(id)
		h.routes[r.ID] = r
		return &ops.Reply{Route: r.ID, Result: "created"}, nil
	}
	return nil, nil
}

// routeChange deletes a route or changes its member or priority.
func (h *Hub) routeChange(_ context.Context, c *call) (*ops.Reply, error) {
	req := &c.req
	old, ok := h.routes[req.Route]
	if !ok || old.Device != c.devID { // the dispatcher checked the caller against the route's device
		return nil, fmt.Errorf("route %d: %w", req.Route, ErrNoRoute)
	}
	r, replace := old, false
	switch c.entry.Op {
	case wire.OpRouteDelete:
		c.write = func(ctx context.Context) error {
			if _, err := h.persistRoute(ctx, old, true); err != nil {
				return fmt.Errorf("failed to delete route %d: %w", old.ID, err)
			}
			return nil
		}
		c.apply = func() (*ops.Reply, error) {
			delete(h.routes, old.ID)
			return &ops.Reply{Route: old.ID, Result: "deleted"}, nil
		}
		return nil, nil
	case wire.OpRouteModify:
		if req.Node != "" {
			client, err := h.resolve(req.Node)
			if err != nil {
				return nil, err
			}
			if client != r.client {
				// A route to another member is a new route.
				replace = true
				r.ID, r.client = 0, client
			}
		}
		r.Priority = req.Priority
	case wire.OpRoutePriority:
		r.Priority = req.Priority
	}
	var id uint64
	c.write = func(ctx context.Context) (err error) {
		if replace {
			if _, err := h.persistRoute(ctx, old, true); err != nil {
				return err
			}
		}
		if id, err = h.persistRoute(ctx, r, false); err != nil {
			if replace { // the old route is gone from the store: from memory too
				h.mu.Lock()
				delete(h.routes, old.ID)
				h.mu.Unlock()
			}
			return fmt.Errorf("failed to store route %d: %w", old.ID, err)
		}
		return nil
	}
	c.apply = func() (*ops.Reply, error) {
		if replace {
			delete(h.routes, old.ID)
		}
		r.ID = h.newRouteID(id)
		h.routes[r.ID] = r
		return &ops.Reply{Route: r.ID, Result: "modified"}, nil
	}
	return nil, nil
}
