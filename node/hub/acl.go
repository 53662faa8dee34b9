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

// mayAdminister reports whether peer may change the ACL and routes of
// device d: its owner, or an admin; h.mu is held.
func (h *Hub) mayAdminister(peer *identity.Certificate, d *device) bool {
	if h.foreign[peer.Node] {
		return false
	}
	return (d != nil && d.owner == peer.Node) || slices.Contains(h.cfg.Admins, peer.Name)
}

func (h *Hub) aclGet(peer *identity.Certificate, req *ops.Request) (*ops.Reply, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.devices[req.Device]
	if d == nil {
		return nil, fmt.Errorf("%q: %w", req.Device, ErrNoDevice)
	}
	if !h.mayAdminister(peer, d) {
		// Anyone may learn their own mode.
		return &ops.Reply{Mode: h.mode(req.Device, peer.Node, d)}, nil
	}
	var out []ops.ACLEntry
	for n, m := range h.acl[req.Device] {
		out = append(out, ops.ACLEntry{Device: req.Device, Node: h.nameOf(n), Mode: m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return &ops.Reply{ACL: out, Mode: h.mode(req.Device, peer.Node, d)}, nil
}

func (h *Hub) aclChange(ctx context.Context, peer *identity.Certificate, op wire.Op, req *ops.Request) (*ops.Reply, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.devices[req.Device]
	if d == nil {
		return nil, fmt.Errorf("%q: %w", req.Device, ErrNoDevice)
	}
	if !h.mayAdminister(peer, d) {
		return nil, ErrNotOwner
	}
	node, err := h.resolve(req.Node)
	if err != nil {
		return nil, err
	}
	if req.Mode > ops.ModeExclusive {
		return nil, fmt.Errorf("mode %d: %w", req.Mode, wire.ErrMalformed)
	}
	if h.acl[req.Device] == nil {
		h.acl[req.Device] = map[identity.NodeID]ops.Mode{}
	}
	set := func(n identity.NodeID, m ops.Mode) error {
		if err := h.persistACL(ctx, req.Device, n, m); err != nil {
			return fmt.Errorf("failed to store the ACL of %s: %w", req.Device, err)
		}
		h.acl[req.Device][n] = m
		return nil
	}
	switch op {
	case wire.OpACLSet, wire.OpACLGrant:
		if err := set(node, req.Mode); err != nil {
			return nil, err
		}
		if req.Mode == ops.ModeExclusive {
			// Exclusive: a single client; everyone else loses access.
			for n := range h.acl[req.Device] {
				if n != node {
					if err := set(n, ops.ModeNone); err != nil {
						return nil, err
					}
				}
			}
		}
	case wire.OpACLRevoke:
		if err := set(node, ops.ModeNone); err != nil {
			return nil, err
		}
		for s := range d.subscribers {
			if p := s.Peer(); p != nil && p.Node == node {
				delete(d.subscribers, s)
			}
		}
		if d.lockedBy == node {
			d.lockedBy = identity.NodeID{}
		}
	}
	h.cfg.Log.Info().Str("device", req.Device).Str("node", req.Node).Stringer("mode", h.acl[req.Device][node]).Str("by", peer.Name).Msg("Changed an ACL")
	return &ops.Reply{Mode: h.acl[req.Device][node], Result: "ok"}, nil
}

// route is a route as the hub keeps it: to a client by node ID. Its
// Route.Node, the client's label, is filled in when it is listed.
type route struct {
	ops.Route
	client identity.NodeID
}

func (h *Hub) listRoutes(device string) []ops.Route {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []ops.Route
	for _, r := range h.routesOf(device) {
		r.Node = h.nameOf(r.client)
		out = append(out, r.Route)
	}
	return out
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

func (h *Hub) route(ctx context.Context, peer *identity.Certificate, op wire.Op, req *ops.Request) (*ops.Reply, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if op == wire.OpRouteCreate {
		d := h.devices[req.Device]
		if d == nil {
			return nil, fmt.Errorf("%q: %w", req.Device, ErrNoDevice)
		}
		if !h.mayAdminister(peer, d) {
			return nil, ErrNotOwner
		}
		client, err := h.resolve(req.Node)
		if err != nil {
			return nil, err
		}
		r := route{Route: ops.Route{Device: req.Device, Priority: req.Priority}, client: client}
		id, err := h.persistRoute(ctx, r, false)
		if err != nil {
			return nil, fmt.Errorf("failed to store a route: %w", err)
		}
		r.ID = id
		h.routes[id] = r
		return &ops.Reply{Route: id, Result: "created"}, nil
	}
	r, ok := h.routes[req.Route]
	if !ok {
		return nil, fmt.Errorf("route %d: %w", req.Route, ErrNoRoute)
	}
	if !h.mayAdminister(peer, h.devices[r.Device]) {
		return nil, ErrNotOwner
	}
	switch op {
	case wire.OpRouteDelete:
		if _, err := h.persistRoute(ctx, r, true); err != nil {
			return nil, fmt.Errorf("failed to delete route %d: %w", r.ID, err)
		}
		delete(h.routes, req.Route)
		return &ops.Reply{Route: req.Route, Result: "deleted"}, nil
	case wire.OpRouteModify:
		if req.Node != "" {
			client, err := h.resolve(req.Node)
			if err != nil {
				return nil, err
			}
			if client != r.client {
				// A route to another client is a new route.
				if _, err := h.persistRoute(ctx, r, true); err != nil {
					return nil, err
				}
				delete(h.routes, r.ID)
				r.ID, r.client = 0, client
			}
		}
		r.Priority = req.Priority
	case wire.OpRoutePriority:
		r.Priority = req.Priority
	}
	id, err := h.persistRoute(ctx, r, false)
	if err != nil {
		return nil, fmt.Errorf("failed to store route %d: %w", r.ID, err)
	}
	r.ID = id
	h.routes[id] = r
	return &ops.Reply{Route: id, Result: "modified"}, nil
}
