package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
)

const (
	connectedQuery        = `INSERT INTO sessions_log (node_id, connected_at) VALUES ($1, $2) RETURNING session_id`
	disconnectedQuery     = `UPDATE sessions_log SET disconnected_at = $2 WHERE session_id = $1`
	disconnectAllQuery    = `UPDATE sessions_log SET disconnected_at = $1 WHERE disconnected_at IS NULL`
	pruneSessionsQuery    = `DELETE FROM sessions_log WHERE disconnected_at IS NOT NULL AND disconnected_at < $1`
	sessionsInWindowQuery = `
		SELECT connected_at, disconnected_at FROM sessions_log
		WHERE node_id = $1 AND connected_at < $3 AND (disconnected_at IS NULL OR disconnected_at > $2)`
)

// PROFILE.md §P26: a node reachable more than CoreThreshold of the last
// CoreWindow is a Core node, any other a Bonus node.
const (
	CoreThreshold = 0.95
	CoreWindow    = 30 * 24 * time.Hour
)

// Class is a node's class by availability (§P26).
type Class string

const (
	Core  Class = "core"
	Bonus Class = "bonus"
)

// Classify returns the class of a node reachable fraction of the window.
func Classify(fraction float64) Class {
	if fraction > CoreThreshold {
		return Core
	}
	return Bonus
}

// SessionQuery is the log of each node's sessions (the sessions_log
// table), for its availability.
type SessionQuery struct {
	db *sql.DB
}

// Connected records that a node connected at at and returns the session's
// row ID for Disconnected.
func (q *SessionQuery) Connected(ctx context.Context, node identity.NodeID, at time.Time) (int64, error) {
	var id int64
	if err := q.db.QueryRowContext(ctx, connectedQuery, node[:], at.Unix()).Scan(&id); err != nil {
		return 0, fmt.Errorf("failed to log session of node %s: %w", node, err)
	}
	return id, nil
}

// Disconnected records the end of a session, or returns ErrNotFound.
func (q *SessionQuery) Disconnected(ctx context.Context, id int64, at time.Time) error {
	if err := execOne(ctx, q.db, disconnectedQuery, id, at.Unix()); err != nil {
		return fmt.Errorf("failed to log end of session %d: %w", id, err)
	}
	return nil
}

// DisconnectAll ends every session still open at at, for a hub that
// starts after it stopped without closing them, and returns how many.
func (q *SessionQuery) DisconnectAll(ctx context.Context, at time.Time) (int64, error) {
	n, err := execCount(ctx, q.db, disconnectAllQuery, at.Unix())
	if err != nil {
		return 0, fmt.Errorf("failed to end open sessions: %w", err)
	}
	return n, nil
}

// Prune forgets the sessions that ended before before (a hub passes the
// start of CoreWindow: older sessions no longer count for availability)
// and returns how many it forgot. Open sessions are kept however old.
func (q *SessionQuery) Prune(ctx context.Context, before time.Time) (int64, error) {
	n, err := execCount(ctx, q.db, pruneSessionsQuery, before.Unix())
	if err != nil {
		return 0, fmt.Errorf("failed to prune the sessions log: %w", err)
	}
	return n, nil
}

// Availability returns the fraction of [from, to] during which the node
// had a session: the union of its sessions, so overlapping ones count
// once, and one still open counts until to. Times are whole seconds.
func (q *SessionQuery) Availability(ctx context.Context, node identity.NodeID, from, to time.Time) (float64, error) {
	start, end := from.Unix(), to.Unix()
	if end <= start {
		return 0, fmt.Errorf("failed to compute availability of node %s: empty window %v to %v", node, from, to)
	}
	rows, err := q.db.QueryContext(ctx, sessionsInWindowQuery, node[:], start, end)
	spans, err := collect(rows, err, func(row rowScanner) (*span, error) {
		var s span
		var stop sql.NullInt64
		if err := row.Scan(&s.start, &stop); err != nil {
			return nil, err
		}
		s.end = end
		if stop.Valid {
			s.end = stop.Int64
		}
		return &s, nil
	})
	if err != nil {
		return 0, fmt.Errorf("failed to compute availability of node %s: %w", node, err)
	}
	return float64(covered(spans, start, end)) / float64(end-start), nil
}

// span is a session in Unix seconds, [start, end).
type span struct{ start, end int64 }

// covered returns how many seconds of [from, to) the union of spans covers.
func covered(spans []*span, from, to int64) int64 {
	clipped := make([]span, 0, len(spans))
	for _, s := range spans {
		c := span{max(s.start, from), min(s.end, to)}
		if c.end > c.start {
			clipped = append(clipped, c)
		}
	}
	slices.SortFunc(clipped, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	var total int64
	cur := span{from, from}
	for _, s := range clipped {
		if s.start > cur.end {
			total += cur.end - cur.start
			cur = s
			continue
		}
		cur.end = max(cur.end, s.end)
	}
	return total + cur.end - cur.start
}
