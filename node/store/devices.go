package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
)

const (
	deviceColumns  = `device_id, owner, kind, name, capabilities, state, announced_at, available`
	getDeviceQuery = `SELECT ` + deviceColumns + ` FROM devices WHERE device_id = $1`
	putDeviceQuery = `
		INSERT INTO devices (` + deviceColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (device_id) DO UPDATE SET
			owner = excluded.owner, kind = excluded.kind, name = excluded.name,
			capabilities = excluded.capabilities, state = excluded.state,
			announced_at = excluded.announced_at, available = excluded.available`
	listDevicesQuery         = `SELECT ` + deviceColumns + ` FROM devices ORDER BY device_id`
	listDevicesByOwnerQuery  = `SELECT ` + deviceColumns + ` FROM devices WHERE owner = $1 ORDER BY device_id`
	setDevicesAvailableQuery = `UPDATE devices SET available = $2 WHERE owner = $1`
	deleteDeviceQuery        = `DELETE FROM devices WHERE device_id = $1`
)

// Device is a device a node announced.
type Device struct {
	ID           string // "<node name>/<device>", e.g. "pi/serial0"
	Owner        identity.NodeID
	Kind         string // "serial", "sensor", "gpio", ...
	Name         string
	Capabilities json.RawMessage // JSON; nil is stored as null
	State        json.RawMessage // JSON; nil is stored as null
	AnnouncedAt  time.Time
	Available    bool
}

// DeviceQuery reads and writes the devices table. Routes and ACLs name a
// device by its ID and outlive it: a device announced again keeps them.
type DeviceQuery struct {
	db *sql.DB
}

func scanDevice(row rowScanner) (*Device, error) {
	var d Device
	var caps, state string
	var announced int64
	if err := row.Scan(&d.ID, fixed(d.Owner[:]), &d.Kind, &d.Name, &caps, &state, &announced, &d.Available); err != nil {
		return nil, err
	}
	d.Capabilities = json.RawMessage(caps)
	d.State = json.RawMessage(state)
	d.AnnouncedAt = fromUnix(announced)
	return &d, nil
}

// jsonText is raw JSON as stored: nil is null, anything else must be valid.
func jsonText(field string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "null", nil
	}
	if !json.Valid(raw) {
		return "", fmt.Errorf("%s is not valid JSON", field)
	}
	return string(raw), nil
}

// Put adds or replaces a device.
func (q *DeviceQuery) Put(ctx context.Context, d *Device) error {
	caps, err := jsonText("capabilities", d.Capabilities)
	if err != nil {
		return fmt.Errorf("failed to put device %s: %w", d.ID, err)
	}
	state, err := jsonText("state", d.State)
	if err != nil {
		return fmt.Errorf("failed to put device %s: %w", d.ID, err)
	}
	_, err = q.db.ExecContext(ctx, putDeviceQuery, d.ID, d.Owner[:], d.Kind, d.Name, caps, state, d.AnnouncedAt.Unix(), d.Available)
	if err != nil {
		return fmt.Errorf("failed to put device %s: %w", d.ID, err)
	}
	return nil
}

// Get returns a device, or ErrNotFound.
func (q *DeviceQuery) Get(ctx context.Context, id string) (*Device, error) {
	d, err := scanDevice(q.db.QueryRowContext(ctx, getDeviceQuery, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get device %s: %w", id, err)
	}
	return d, nil
}

// List returns every device, ordered by ID.
func (q *DeviceQuery) List(ctx context.Context) ([]*Device, error) {
	rows, err := q.db.QueryContext(ctx, listDevicesQuery)
	devices, err := collect(rows, err, scanDevice)
	if err != nil {
		return nil, fmt.Errorf("failed to list devices: %w", err)
	}
	return devices, nil
}

// ListByOwner returns the devices of one node, ordered by ID.
func (q *DeviceQuery) ListByOwner(ctx context.Context, owner identity.NodeID) ([]*Device, error) {
	rows, err := q.db.QueryContext(ctx, listDevicesByOwnerQuery, owner[:])
	devices, err := collect(rows, err, scanDevice)
	if err != nil {
		return nil, fmt.Errorf("failed to list devices of node %s: %w", owner, err)
	}
	return devices, nil
}

// SetAvailable marks every device of a node available or not, as the node
// connects or disconnects.
func (q *DeviceQuery) SetAvailable(ctx context.Context, owner identity.NodeID, available bool) error {
	if _, err := q.db.ExecContext(ctx, setDevicesAvailableQuery, owner[:], available); err != nil {
		return fmt.Errorf("failed to set availability of the devices of node %s: %w", owner, err)
	}
	return nil
}

// Delete removes a device, or returns ErrNotFound.
func (q *DeviceQuery) Delete(ctx context.Context, id string) error {
	if err := execOne(ctx, q.db, deleteDeviceQuery, id); err != nil {
		return fmt.Errorf("failed to delete device %s: %w", id, err)
	}
	return nil
}
