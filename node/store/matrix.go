package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

const (
	markTxnQuery      = `INSERT INTO matrix_txns (txn_id, applied_at) VALUES ($1, $2) ON CONFLICT (txn_id) DO NOTHING`
	hasTxnQuery       = `SELECT COUNT(*) FROM matrix_txns WHERE txn_id = $1`
	markEventQuery    = `INSERT INTO matrix_events (event_id, seen_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING`
	pruneTxnsQuery    = `DELETE FROM matrix_txns WHERE applied_at < $1`
	pruneEventsQuery  = `DELETE FROM matrix_events WHERE seen_at < $1`
	maxMatrixIDLength = 255
)

// MatrixQuery records the appservice transactions and events the Matrix
// bridge has applied (idempotency across restarts).
type MatrixQuery struct {
	db *sql.DB
}

// Applied reports whether transaction id was applied before.
func (q *MatrixQuery) Applied(ctx context.Context, id string) (bool, error) {
	var n int
	if err := q.db.QueryRowContext(ctx, hasTxnQuery, id).Scan(&n); err != nil {
		return false, fmt.Errorf("failed to look up transaction %q: %w", id, err)
	}
	return n > 0, nil
}

// MarkApplied records transaction id as applied; it reports whether this
// was the first time.
func (q *MatrixQuery) MarkApplied(ctx context.Context, id string, now time.Time) (bool, error) {
	return q.mark(ctx, markTxnQuery, "transaction", id, now)
}

// MarkSeen records event id and reports whether it is new. Of concurrent
// calls with one ID exactly one gets true.
func (q *MatrixQuery) MarkSeen(ctx context.Context, id string, now time.Time) (bool, error) {
	return q.mark(ctx, markEventQuery, "event", id, now)
}

func (q *MatrixQuery) mark(ctx context.Context, query, what, id string, now time.Time) (bool, error) {
	if id == "" || len(id) > maxMatrixIDLength {
		return false, fmt.Errorf("%s ID of %d bytes: want 1-%d", what, len(id), maxMatrixIDLength)
	}
	n, err := execCount(ctx, q.db, query, id, now.Unix())
	if err != nil {
		return false, fmt.Errorf("failed to record %s %q: %w", what, id, err)
	}
	return n == 1, nil
}

// Prune forgets transactions and events recorded before before.
func (q *MatrixQuery) Prune(ctx context.Context, before time.Time) error {
	for _, query := range []string{pruneTxnsQuery, pruneEventsQuery} {
		if _, err := q.db.ExecContext(ctx, query, before.Unix()); err != nil {
			return fmt.Errorf("failed to prune Matrix records: %w", err)
		}
	}
	return nil
}
