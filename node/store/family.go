package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
)

const (
	getFamilyQuery = `SELECT root_key, family_id, created_at FROM family WHERE singleton = 1`
	putFamilyQuery = `
		INSERT INTO family (singleton, root_key, family_id, created_at) VALUES (1, $1, $2, $3)
		ON CONFLICT (singleton) DO NOTHING`
)

// Family is the hub's own family (PROFILE.md §P34).
type Family struct {
	RootKey   ed25519.PublicKey
	ID        identity.FamilyID
	CreatedAt time.Time
}

// FamilyQuery reads and writes the family table: one row.
type FamilyQuery struct {
	db *sql.DB
}

// Get returns the family, or ErrNotFound before Put.
func (q *FamilyQuery) Get(ctx context.Context) (*Family, error) {
	f := &Family{RootKey: make(ed25519.PublicKey, ed25519.PublicKeySize)}
	var created int64
	err := q.db.QueryRowContext(ctx, getFamilyQuery).Scan(fixed(f.RootKey), fixed(f.ID[:]), &created)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get family: %w", err)
	}
	f.CreatedAt = fromUnix(created)
	return f, nil
}

// Put stores the family. The family of a hub never changes: Put of the
// family already stored does nothing, and Put of another one fails with
// ErrFamilyExists. f.ID must be identity.FamilyOf(f.RootKey).
func (q *FamilyQuery) Put(ctx context.Context, f *Family) error {
	if len(f.RootKey) != ed25519.PublicKeySize {
		return fmt.Errorf("failed to put family %s: root key has %d bytes, want %d", f.ID, len(f.RootKey), ed25519.PublicKeySize)
	}
	if identity.FamilyOf(f.RootKey) != f.ID {
		return fmt.Errorf("failed to put family %s: the ID does not belong to the root key", f.ID)
	}
	res, err := q.db.ExecContext(ctx, putFamilyQuery, []byte(f.RootKey), f.ID[:], f.CreatedAt.Unix())
	if err != nil {
		return fmt.Errorf("failed to put family %s: %w", f.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("failed to put family %s: %w", f.ID, err)
	}
	if n == 1 {
		return nil
	}
	old, err := q.Get(ctx)
	if err != nil {
		return fmt.Errorf("failed to put family %s: %w", f.ID, err)
	}
	if !bytes.Equal(old.RootKey, f.RootKey) {
		return fmt.Errorf("failed to put family %s: %w (%s)", f.ID, ErrFamilyExists, old.ID)
	}
	return nil
}
