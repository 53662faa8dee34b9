package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
)

const (
	aclColumns    = `device_id, node_id, mode, granted_at`
	grantACLQuery = `
		INSERT INTO acls (` + aclColumns + `) VALUES ($1, $2, $3, $4)
		ON CONFLICT (device_id, node_id) DO UPDATE SET mode = excluded.mode, granted_at = excluded.granted_at`
	revokeACLQuery  = `DELETE FROM acls WHERE device_id = $1 AND node_id = $2`
	getACLModeQuery = `SELECT mode FROM acls WHERE device_id = $1 AND node_id = $2`
	listACLsQuery   = `SELECT ` + aclColumns + ` FROM acls WHERE device_id = $1 ORDER BY node_id`
)

// ACL is one node's access to one device.
type ACL struct {
	DeviceID  string
	Node      identity.NodeID
	Mode      ops.Mode // draft §6.2.4; ops.ModeNone is stored too
	GrantedAt time.Time
}

// ACLQuery reads and writes the acls table.
type ACLQuery struct {
	db *sql.DB
}

func scanACL(row rowScanner) (*ACL, error) {
	var a ACL
	var mode, granted int64
	if err := row.Scan(&a.DeviceID, fixed(a.Node[:]), &mode, &granted); err != nil {
		return nil, err
	}
	a.Mode = ops.Mode(mode)
	a.GrantedAt = fromUnix(granted)
	return &a, nil
}

// Grant sets a node's mode on a device, replacing any earlier grant.
func (q *ACLQuery) Grant(ctx context.Context, a *ACL) error {
	if a.Mode > ops.ModeExclusive {
		return fmt.Errorf("failed to grant %s on device %s to node %s: unknown mode", a.Mode, a.DeviceID, a.Node)
	}
	_, err := q.db.ExecContext(ctx, grantACLQuery, a.DeviceID, a.Node[:], int64(a.Mode), a.GrantedAt.Unix())
	if err != nil {
		return fmt.Errorf("failed to grant %s on device %s to node %s: %w", a.Mode, a.DeviceID, a.Node, err)
	}
	return nil
}

// Revoke removes a node's grant on a device, or returns ErrNotFound.
func (q *ACLQuery) Revoke(ctx context.Context, deviceID string, node identity.NodeID) error {
	if err := execOne(ctx, q.db, revokeACLQuery, deviceID, node[:]); err != nil {
		return fmt.Errorf("failed to revoke access of node %s to device %s: %w", node, deviceID, err)
	}
	return nil
}

// Get returns a node's mode on a device: ops.ModeNone without a grant.
func (q *ACLQuery) Get(ctx context.Context, deviceID string, node identity.NodeID) (ops.Mode, error) {
	var mode int64
	err := q.db.QueryRowContext(ctx, getACLModeQuery, deviceID, node[:]).Scan(&mode)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ops.ModeNone, nil
	case err != nil:
		return ops.ModeNone, fmt.Errorf("failed to get access of node %s to device %s: %w", node, deviceID, err)
	}
	return ops.Mode(mode), nil
}

// List returns the grants on a device, ordered by node ID.
func (q *ACLQuery) List(ctx context.Context, deviceID string) ([]*ACL, error) {
	rows, err := q.db.QueryContext(ctx, listACLsQuery, deviceID)
	acls, err := collect(rows, err, scanACL)
	if err != nil {
		return nil, fmt.Errorf("failed to list access to device %s: %w", deviceID, err)
	}
	return acls, nil
}
