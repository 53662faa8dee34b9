package store

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/wire"
)

const (
	addCodeQuery     = `INSERT INTO pairing_codes (code, role, name, expires_at) VALUES ($1, $2, $3, $4)`
	listCodesQuery   = `SELECT code, role, name, expires_at FROM pairing_codes`
	deleteCodeQuery  = `DELETE FROM pairing_codes WHERE code = $1`
	expireCodesQuery = `DELETE FROM pairing_codes WHERE expires_at <= $1`
)

// CodeQuery keeps the hub's outstanding pairing codes. It implements
// session.CodeBook, so enrolment works with codes made by another process
// (`myclerk-bridge invite`) while the hub runs.
type CodeQuery struct {
	db *sql.DB
}

// Add makes code usable by a node of role until now +
// identity.PairingLifetime and, unless name is "", by the node of that
// name alone (the enroller enforces it, PROFILE.md §P35).
func (q *CodeQuery) Add(ctx context.Context, code identity.PairingCode, role identity.Role, name string, now time.Time) error {
	if _, err := q.db.ExecContext(ctx, addCodeQuery, string(code), int(role), name, now.Add(identity.PairingLifetime).Unix()); err != nil {
		return fmt.Errorf("failed to store a pairing code: %w", err)
	}
	return nil
}

// Redeem finds the unexpired code whose proof matches, asks accept (when
// not nil) whether to go on with the code's role and bound name ("" for
// none), then deletes it (only
// one caller can win: the delete must remove the row) and returns it.
// When accept refuses, the code stays and accept's error is returned.
func (q *CodeQuery) Redeem(proof []byte, th [32]byte, pub ed25519.PublicKey, name string, now time.Time, accept func(role identity.Role, bound string) error) (identity.PairingCode, identity.Role, error) {
	ctx := context.Background()
	if _, err := q.db.ExecContext(ctx, expireCodesQuery, now.Unix()); err != nil {
		return "", 0, fmt.Errorf("failed to expire pairing codes: %w", err)
	}
	rows, err := q.db.QueryContext(ctx, listCodesQuery)
	if err != nil {
		return "", 0, fmt.Errorf("failed to read pairing codes: %w", err)
	}
	type row struct {
		code string
		role int
		name string
		exp  int64
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.code, &r.role, &r.name, &r.exp); err != nil {
			rows.Close()
			return "", 0, fmt.Errorf("failed to read pairing codes: %w", err)
		}
		all = append(all, r)
	}
	rows.Close()
	for _, r := range all {
		c := identity.PairingCode(r.code)
		if !c.Check(proof, wire.InitiatorToResponder, th, pub, []byte(name)) {
			continue
		}
		if accept != nil {
			if err := accept(identity.Role(r.role), r.name); err != nil {
				return "", 0, err
			}
		}
		res, err := q.db.ExecContext(ctx, deleteCodeQuery, r.code)
		if err != nil {
			return "", 0, fmt.Errorf("failed to use a pairing code: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			break // someone else redeemed it first
		}
		return c, identity.Role(r.role), nil
	}
	return "", 0, fmt.Errorf("%w: no outstanding code matches", identity.ErrPairing)
}

// Pending counts the codes usable at now.
func (q *CodeQuery) Pending(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := q.db.QueryRowContext(ctx, `SELECT count(*) FROM pairing_codes WHERE expires_at > $1`, now.Unix()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("failed to count pairing codes: %w", err)
	}
	return n, nil
}
