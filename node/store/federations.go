package store

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
)

const (
	federationColumns     = `label, room_id, peer_bot, dialer, admin, root_key, peer_cert, created_at, pinned_at, revoked_at`
	addFederationQuery    = `INSERT INTO federations (label, room_id, peer_bot, dialer, admin, created_at) VALUES ($1, $2, $3, $4, $5, $6)`
	getFederationQuery    = `SELECT ` + federationColumns + ` FROM federations WHERE label = $1`
	listFederationsQuery  = `SELECT ` + federationColumns + ` FROM federations ORDER BY label`
	setFederationPeer     = `UPDATE federations SET root_key = $2, peer_cert = $3 WHERE label = $1 AND pinned_at IS NULL`
	pinFederationQuery    = `UPDATE federations SET pinned_at = $2 WHERE label = $1 AND pinned_at IS NULL AND revoked_at IS NULL AND root_key IS NOT NULL`
	revokeFederationQuery = `UPDATE federations SET revoked_at = COALESCE(revoked_at, $2) WHERE label = $1`
)

// ErrNoFederation is returned for a label no federation has.
var ErrNoFederation = errors.New("no such federation")

// Federation is a family this hub federates with through a Matrix room.
type Federation struct {
	Label   string // the family's short name here, chosen by the admin
	RoomID  string
	PeerBot string // the other family's bridge bot
	// Dialer: this side opens the session (it accepted the invitation);
	// the other side's hub answers.
	Dialer bool
	Admin  string // the Matrix user who started it here, who gets the code
	// RootKey is the peer family's root key as learnt from the room, and
	// PeerCert the certificate its hub proved in the session: both
	// untrusted until PinnedAt.
	RootKey   ed25519.PublicKey
	PeerCert  []byte
	CreatedAt time.Time
	PinnedAt  time.Time // zero until a person confirmed the code
	RevokedAt time.Time // zero while in force
}

// Family is the peer's family ID (zero while its root key is unknown).
func (f *Federation) Family() identity.FamilyID {
	if len(f.RootKey) != ed25519.PublicKeySize {
		return identity.FamilyID{}
	}
	return identity.FamilyOf(f.RootKey)
}

// Trusted reports whether the peer's root key is pinned and not revoked.
func (f *Federation) Trusted() bool { return !f.PinnedAt.IsZero() && f.RevokedAt.IsZero() }

// FederationQuery reads and writes the federations table.
type FederationQuery struct {
	db *sql.DB
}

// Add records a new federation.
func (q *FederationQuery) Add(ctx context.Context, f *Federation) error {
	if _, err := q.db.ExecContext(ctx, addFederationQuery, f.Label, f.RoomID, f.PeerBot, boolInt(f.Dialer), f.Admin, f.CreatedAt.Unix()); err != nil {
		return fmt.Errorf("failed to add federation %q: %w", f.Label, err)
	}
	return nil
}

// Get returns the federation of label, or ErrNoFederation.
func (q *FederationQuery) Get(ctx context.Context, label string) (*Federation, error) {
	f, err := scanFederation(q.db.QueryRowContext(ctx, getFederationQuery, label))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%q: %w", label, ErrNoFederation)
	}
	return f, err
}

// List returns every federation, by label.
func (q *FederationQuery) List(ctx context.Context) ([]*Federation, error) {
	rows, err := q.db.QueryContext(ctx, listFederationsQuery)
	if err != nil {
		return nil, fmt.Errorf("failed to list federations: %w", err)
	}
	defer rows.Close()
	var out []*Federation
	for rows.Next() {
		f, err := scanFederation(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// SetPeer records the peer's root key and hub certificate, as long as the
// federation is not pinned (a pinned key never changes).
func (q *FederationQuery) SetPeer(ctx context.Context, label string, root ed25519.PublicKey, cert []byte) error {
	if _, err := q.db.ExecContext(ctx, setFederationPeer, label, []byte(root), cert); err != nil {
		return fmt.Errorf("failed to record the peer of federation %q: %w", label, err)
	}
	return nil
}

// Pin trusts the peer's recorded root key from at on; it reports false
// when there was nothing to pin (no key yet, pinned or revoked before).
func (q *FederationQuery) Pin(ctx context.Context, label string, at time.Time) (bool, error) {
	n, err := execCount(ctx, q.db, pinFederationQuery, label, at.Unix())
	if err != nil {
		return false, fmt.Errorf("failed to pin federation %q: %w", label, err)
	}
	return n == 1, nil
}

// Revoke ends a federation for good.
func (q *FederationQuery) Revoke(ctx context.Context, label string, at time.Time) error {
	if _, err := q.db.ExecContext(ctx, revokeFederationQuery, label, at.Unix()); err != nil {
		return fmt.Errorf("failed to revoke federation %q: %w", label, err)
	}
	return nil
}

func scanFederation(row interface{ Scan(...any) error }) (*Federation, error) {
	var f Federation
	var dialer int64
	var root, cert []byte
	var created int64
	var pinned, revoked sql.NullInt64
	if err := row.Scan(&f.Label, &f.RoomID, &f.PeerBot, &dialer, &f.Admin, &root, &cert, &created, &pinned, &revoked); err != nil {
		return nil, err
	}
	f.Dialer, f.PeerCert, f.CreatedAt = dialer != 0, cert, time.Unix(created, 0)
	if len(root) == ed25519.PublicKeySize {
		f.RootKey = ed25519.PublicKey(root)
	}
	if pinned.Valid {
		f.PinnedAt = time.Unix(pinned.Int64, 0)
	}
	if revoked.Valid {
		f.RevokedAt = time.Unix(revoked.Int64, 0)
	}
	return &f, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
