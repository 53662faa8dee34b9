package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
)

const (
	nodeColumns  = `node_id, name, role, certificate, enrolled_at, revoked_at, last_seen`
	getNodeQuery = `SELECT ` + nodeColumns + ` FROM nodes WHERE node_id = $1`
	// A revocation survives Put: a revoked node stays revoked.
	putNodeQuery = `
		INSERT INTO nodes (` + nodeColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (node_id) DO UPDATE SET
			name = excluded.name, role = excluded.role, certificate = excluded.certificate,
			enrolled_at = excluded.enrolled_at, last_seen = excluded.last_seen,
			revoked_at = COALESCE(nodes.revoked_at, excluded.revoked_at)`
	listNodesQuery       = `SELECT ` + nodeColumns + ` FROM nodes ORDER BY name, node_id`
	revokeNodeQuery      = `UPDATE nodes SET revoked_at = COALESCE(revoked_at, $2) WHERE node_id = $1`
	isNodeRevokedQuery   = `SELECT COUNT(*) FROM nodes WHERE node_id = $1 AND revoked_at IS NOT NULL`
	listRevokedQuery     = `SELECT node_id FROM nodes WHERE revoked_at IS NOT NULL ORDER BY node_id`
	setNodeLastSeenQuery = `UPDATE nodes SET last_seen = $2 WHERE node_id = $1`
	// A name is unique among the nodes that are not revoked, whatever its
	// ASCII case (migration 005's index).
	nameTakenQuery  = `SELECT COUNT(*) FROM nodes WHERE lower(name) = lower($1) AND revoked_at IS NULL`
	insertNodeQuery = `INSERT INTO nodes (` + nodeColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	// A hand-over is of the devices whose IDs carry the new node's name,
	// so only revoked nodes of exactly that name hand theirs over: a new
	// "pi" announces "pi/temp", never the revoked "Pi"'s "Pi/temp".
	revokedNamesakes = `SELECT node_id FROM nodes WHERE name = $1 AND revoked_at IS NOT NULL`
	namesakeDevices  = `SELECT device_id FROM devices WHERE owner IN (` + revokedNamesakes + `) ORDER BY device_id`
	handOverDevices  = `UPDATE devices SET owner = $2 WHERE owner IN (` + revokedNamesakes + `)`
)

// Node is an enrolled node.
type Node struct {
	ID          identity.NodeID
	Name        string
	Role        identity.Role
	Certificate []byte // as identity.Certificate.Marshal writes it
	EnrolledAt  time.Time
	RevokedAt   time.Time // zero while the node is not revoked
	LastSeen    time.Time // zero when never seen
}

// Revoked reports whether the node is revoked.
func (n *Node) Revoked() bool { return !n.RevokedAt.IsZero() }

// NodeQuery reads and writes the nodes table.
type NodeQuery struct {
	db *sql.DB
}

func scanNode(row rowScanner) (*Node, error) {
	var n Node
	var role, enrolled int64
	var revoked, seen sql.NullInt64
	if err := row.Scan(fixed(n.ID[:]), &n.Name, &role, &n.Certificate, &enrolled, &revoked, &seen); err != nil {
		return nil, err
	}
	n.Role = identity.Role(role)
	n.EnrolledAt = fromUnix(enrolled)
	n.RevokedAt = fromNullUnix(revoked)
	n.LastSeen = fromNullUnix(seen)
	return &n, nil
}

// Put adds or updates a node. It never lifts a revocation. A name another
// live node holds is refused by the database (use Enrol for new nodes).
func (q *NodeQuery) Put(ctx context.Context, n *Node) error {
	_, err := q.db.ExecContext(ctx, putNodeQuery, n.ID[:], n.Name, int64(n.Role), n.Certificate,
		n.EnrolledAt.Unix(), nullUnix(n.RevokedAt), nullUnix(n.LastSeen))
	if err != nil {
		return fmt.Errorf("failed to put node %s: %w", n.ID, err)
	}
	return nil
}

// Get returns a node, or ErrNotFound.
func (q *NodeQuery) Get(ctx context.Context, id identity.NodeID) (*Node, error) {
	n, err := scanNode(q.db.QueryRowContext(ctx, getNodeQuery, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get node %s: %w", id, err)
	}
	return n, nil
}

// List returns every node, revoked ones included, ordered by name.
func (q *NodeQuery) List(ctx context.Context) ([]*Node, error) {
	rows, err := q.db.QueryContext(ctx, listNodesQuery)
	nodes, err := collect(rows, err, scanNode)
	if err != nil {
		return nil, fmt.Errorf("failed to list nodes: %w", err)
	}
	return nodes, nil
}

// Revoke revokes a node from at; revoking it again keeps the first time.
// It returns ErrNotFound for an unknown node.
func (q *NodeQuery) Revoke(ctx context.Context, id identity.NodeID, at time.Time) error {
	if err := execOne(ctx, q.db, revokeNodeQuery, id[:], at.Unix()); err != nil {
		return fmt.Errorf("failed to revoke node %s: %w", id, err)
	}
	return nil
}

// IsRevoked reports whether a node is revoked; an unknown node is not.
func (q *NodeQuery) IsRevoked(ctx context.Context, id identity.NodeID) (bool, error) {
	var n int
	if err := q.db.QueryRowContext(ctx, isNodeRevokedQuery, id[:]).Scan(&n); err != nil {
		return false, fmt.Errorf("failed to check revocation of node %s: %w", id, err)
	}
	return n > 0, nil
}

// Revoked returns the IDs of the revoked nodes, in byte order.
func (q *NodeQuery) Revoked(ctx context.Context) ([]identity.NodeID, error) {
	rows, err := q.db.QueryContext(ctx, listRevokedQuery)
	ids, err := collect(rows, err, func(row rowScanner) (*identity.NodeID, error) {
		var id identity.NodeID
		return &id, row.Scan(fixed(id[:]))
	})
	if err != nil {
		return nil, fmt.Errorf("failed to list revoked nodes: %w", err)
	}
	out := make([]identity.NodeID, len(ids))
	for i, id := range ids {
		out[i] = *id
	}
	return out, nil
}

// Seen records that a node was seen at at. It returns ErrNotFound for an
// unknown node.
func (q *NodeQuery) Seen(ctx context.Context, id identity.NodeID, at time.Time) error {
	if err := execOne(ctx, q.db, setNodeLastSeenQuery, id[:], at.Unix()); err != nil {
		return fmt.Errorf("failed to record node %s as seen: %w", id, err)
	}
	return nil
}

// NameTaken reports whether a node that is not revoked holds name (in any
// ASCII case).
func (q *NodeQuery) NameTaken(ctx context.Context, name string) (bool, error) {
	var n int
	if err := q.db.QueryRowContext(ctx, nameTakenQuery, name).Scan(&n); err != nil {
		return false, fmt.Errorf("failed to look up the name \"%s\": %w", identity.Printable(name), err)
	}
	return n > 0, nil
}

// Enrol adds a new node. A name a live node holds is refused with
// identity.ErrNameTaken (the unique index decides a race). The devices of
// revoked nodes of exactly the same name (case included) pass to the new node in the same
// transaction (a node paired again after its revocation keeps its
// devices, whose IDs carry the name); Enrol returns their IDs.
func (q *NodeQuery) Enrol(ctx context.Context, n *Node) (handed []string, err error) {
	if taken, err := q.NameTaken(ctx, n.Name); err != nil {
		return nil, err
	} else if taken {
		return nil, fmt.Errorf("failed to enrol %q: %w", n.Name, identity.ErrNameTaken)
	}
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to enrol %q: %w", n.Name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, insertNodeQuery, n.ID[:], n.Name, int64(n.Role), n.Certificate,
		n.EnrolledAt.Unix(), nullUnix(n.RevokedAt), nullUnix(n.LastSeen)); err != nil {
		tx.Rollback()
		if taken, terr := q.NameTaken(ctx, n.Name); terr == nil && taken {
			err = identity.ErrNameTaken // another enrolment won the race
		}
		return nil, fmt.Errorf("failed to enrol %q: %w", n.Name, err)
	}
	rows, err := tx.QueryContext(ctx, namesakeDevices, n.Name)
	ids, err := collect(rows, err, func(row rowScanner) (*string, error) {
		var id string
		return &id, row.Scan(&id)
	})
	if err != nil {
		return nil, fmt.Errorf("failed to find the devices of %q's revoked namesakes: %w", n.Name, err)
	}
	if len(ids) > 0 {
		if _, err := tx.ExecContext(ctx, handOverDevices, n.Name, n.ID[:]); err != nil {
			return nil, fmt.Errorf("failed to hand the devices of %q's revoked namesakes over: %w", n.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("failed to enrol %q: %w", n.Name, err)
	}
	for _, id := range ids {
		handed = append(handed, *id)
	}
	return handed, nil
}

// ErrAmbiguous means a name is held by more than one node that is not
// revoked (a database from before names were unique).
var ErrAmbiguous = errors.New("store: more than one node has this name")

// Find returns the node that is not revoked whose name is nameOrID (in
// any ASCII case) or whose node ID is nameOrID in hex. It returns
// ErrNotFound when there is none and ErrAmbiguous when a name fits more
// than one: then the caller must give the node ID.
func (q *NodeQuery) Find(ctx context.Context, nameOrID string) (*Node, error) {
	nodes, err := q.List(ctx)
	if err != nil {
		return nil, err
	}
	var found []*Node
	for _, n := range nodes {
		if !n.Revoked() && (strings.EqualFold(n.Name, nameOrID) || strings.EqualFold(n.ID.String(), nameOrID)) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no enrolled, unrevoked node is named \"%s\" or has that ID: %w", identity.Printable(nameOrID), ErrNotFound)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("\"%s\" names %d nodes; give the node ID: %w", identity.Printable(nameOrID), len(found), ErrAmbiguous)
}
