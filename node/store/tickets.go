package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/myclerk/myclerk-bridge/wire/ticket"
)

const (
	// ON CONFLICT DO NOTHING makes the check and the record one statement:
	// of concurrent calls with one nonce exactly one inserts a row.
	markTicketUsedQuery   = `INSERT INTO used_tickets (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING`
	purgeUsedTicketsQuery = `DELETE FROM used_tickets WHERE expires_at <= $1`

	addTicketKeyQuery    = `INSERT INTO ticket_keys (key_id, secret, created_at) VALUES ($1, $2, $3)`
	listTicketKeysQuery  = `SELECT key_id, secret, created_at, retired_at FROM ticket_keys WHERE retired_at IS NULL ORDER BY created_at DESC, key_id DESC`
	retireTicketKeyQuery = `UPDATE ticket_keys SET retired_at = COALESCE(retired_at, $2) WHERE key_id = $1`
)

// UsedTicketQuery is the single-use record of resumption tickets
// (PROFILE.md §P18): the ticket nonce of every accepted ticket, kept until
// the ticket expires.
type UsedTicketQuery struct {
	db *sql.DB
}

// MarkUsed records a ticket nonce and reports whether this was its first
// use. Of any number of concurrent calls with one nonce, exactly one gets
// true. expires is the ticket's expiry: the nonce is kept until then.
func (q *UsedTicketQuery) MarkUsed(ctx context.Context, nonce [8]byte, expires time.Time) (firstUse bool, err error) {
	n, err := execCount(ctx, q.db, markTicketUsedQuery, nonce[:], expires.Unix())
	if err != nil {
		return false, fmt.Errorf("failed to mark ticket %x used: %w", nonce, err)
	}
	return n == 1, nil
}

// PurgeExpired forgets the nonces of tickets expired at now (a ticket
// expires at its expires-at second, as ticket.Open has it) and returns how
// many it forgot.
func (q *UsedTicketQuery) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	n, err := execCount(ctx, q.db, purgeUsedTicketsQuery, now.Unix())
	if err != nil {
		return 0, fmt.Errorf("failed to purge expired tickets: %w", err)
	}
	return n, nil
}

// TicketKey is a stored ticket-encryption key.
type TicketKey struct {
	ticket.Key
	CreatedAt time.Time
	RetiredAt time.Time // zero while the key is active
}

// TicketKeyQuery reads and writes the ticket_keys table. The active keys
// are the hub's ticket.Keyring: the newest seals, all of them open.
// A retired key opens no ticket any more.
type TicketKeyQuery struct {
	db *sql.DB
}

// Add stores a new key; an ID already used fails.
func (q *TicketKeyQuery) Add(ctx context.Context, k *TicketKey) error {
	if _, err := q.db.ExecContext(ctx, addTicketKeyQuery, int64(k.ID), k.Secret[:], k.CreatedAt.Unix()); err != nil {
		return fmt.Errorf("failed to add ticket key %d: %w", k.ID, err)
	}
	return nil
}

// ListActive returns the keys not retired, newest first.
func (q *TicketKeyQuery) ListActive(ctx context.Context) ([]*TicketKey, error) {
	rows, err := q.db.QueryContext(ctx, listTicketKeysQuery)
	keys, err := collect(rows, err, func(row rowScanner) (*TicketKey, error) {
		var k TicketKey
		var id, created int64
		var retired sql.NullInt64
		if err := row.Scan(&id, fixed(k.Secret[:]), &created, &retired); err != nil {
			return nil, err
		}
		k.ID = uint32(id)
		k.CreatedAt = fromUnix(created)
		k.RetiredAt = fromNullUnix(retired)
		return &k, nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to list ticket keys: %w", err)
	}
	return keys, nil
}

// Retire retires a key from at (retiring it again keeps the first time),
// or returns ErrNotFound.
func (q *TicketKeyQuery) Retire(ctx context.Context, id uint32, at time.Time) error {
	if err := execOne(ctx, q.db, retireTicketKeyQuery, int64(id), at.Unix()); err != nil {
		return fmt.Errorf("failed to retire ticket key %d: %w", id, err)
	}
	return nil
}
