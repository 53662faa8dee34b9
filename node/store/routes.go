package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
)

const (
	routeColumns          = `route_id, device_id, client_id, priority, created_at`
	createRouteQuery      = `INSERT INTO routes (device_id, client_id, priority, created_at) VALUES ($1, $2, $3, $4) RETURNING route_id`
	deleteRouteQuery      = `DELETE FROM routes WHERE route_id = $1`
	listRoutesQuery       = `SELECT ` + routeColumns + ` FROM routes ORDER BY priority DESC, route_id`
	listDeviceRoutesQuery = `SELECT ` + routeColumns + ` FROM routes WHERE device_id = $1 ORDER BY priority DESC, route_id`
	setRoutePriorityQuery = `UPDATE routes SET priority = $2 WHERE route_id = $1`
)

// Route connects a client node to a device.
type Route struct {
	ID        int64 // chosen by Create
	DeviceID  string
	Client    identity.NodeID
	Priority  int // higher first
	CreatedAt time.Time
}

// RouteQuery reads and writes the routes table.
type RouteQuery struct {
	db *sql.DB
}

func scanRoute(row rowScanner) (*Route, error) {
	var r Route
	var created int64
	if err := row.Scan(&r.ID, &r.DeviceID, fixed(r.Client[:]), &r.Priority, &created); err != nil {
		return nil, err
	}
	r.CreatedAt = fromUnix(created)
	return &r, nil
}

// Create adds a route and returns its ID; r.ID is ignored.
func (q *RouteQuery) Create(ctx context.Context, r *Route) (int64, error) {
	var id int64
	err := q.db.QueryRowContext(ctx, createRouteQuery, r.DeviceID, r.Client[:], r.Priority, r.CreatedAt.Unix()).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("failed to create route from %s to device %s: %w", r.Client, r.DeviceID, err)
	}
	return id, nil
}

// Delete removes a route, or returns ErrNotFound.
func (q *RouteQuery) Delete(ctx context.Context, id int64) error {
	if err := execOne(ctx, q.db, deleteRouteQuery, id); err != nil {
		return fmt.Errorf("failed to delete route %d: %w", id, err)
	}
	return nil
}

// List returns every route, highest priority first, then oldest first.
func (q *RouteQuery) List(ctx context.Context) ([]*Route, error) {
	rows, err := q.db.QueryContext(ctx, listRoutesQuery)
	routes, err := collect(rows, err, scanRoute)
	if err != nil {
		return nil, fmt.Errorf("failed to list routes: %w", err)
	}
	return routes, nil
}

// ListByDevice returns the routes to one device, highest priority first,
// then oldest first.
func (q *RouteQuery) ListByDevice(ctx context.Context, deviceID string) ([]*Route, error) {
	rows, err := q.db.QueryContext(ctx, listDeviceRoutesQuery, deviceID)
	routes, err := collect(rows, err, scanRoute)
	if err != nil {
		return nil, fmt.Errorf("failed to list routes to device %s: %w", deviceID, err)
	}
	return routes, nil
}

// SetPriority changes the priority of a route, or returns ErrNotFound.
func (q *RouteQuery) SetPriority(ctx context.Context, id int64, priority int) error {
	if err := execOne(ctx, q.db, setRoutePriorityQuery, id, priority); err != nil {
		return fmt.Errorf("failed to set priority of route %d: %w", id, err)
	}
	return nil
}
