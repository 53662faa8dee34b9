// Package store is the hub's persistent state: its family, the enrolled
// nodes and their revocations, the devices they announce, routes, ACLs,
// the single-use record of resumption tickets and the ticket keys
// (PROFILE.md §P18), and each node's sessions for its availability (§P26).
//
// One Store, two backends: PostgreSQL (github.com/lib/pq) for production
// and an embedded SQLite file (modernc.org/sqlite, pure Go, no server) by
// default. Every query is one plain SQL string with $n placeholders, which
// both drivers accept; the schema is a list of embedded, numbered
// migrations (migrations/NNN_name.sql) applied by Open.
//
// The Store has one small query type per table (Store.Nodes, Store.Devices,
// ...). Times are stored as Unix seconds: they come back truncated to the
// second, in UTC. A zero time.Time is stored as NULL where a time may be
// missing (a node not revoked, a session still open).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	_ "github.com/lib/pq"  // registers "postgres"
	_ "modernc.org/sqlite" // registers "sqlite"
)

// Drivers Open accepts.
const (
	DriverPostgres = "postgres"
	DriverSQLite   = "sqlite"
)

// SQLiteBusyTimeout is how long an SQLite statement waits for another
// process's lock before it fails with SQLITE_BUSY. Within one process the
// Store has a single connection, so it never waits for itself.
const SQLiteBusyTimeout = 5 * time.Second

// Errors.
var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrSchemaTooNew: the database was migrated by a newer program.
	ErrSchemaTooNew = errors.New("database schema is newer than this program")
	// ErrFamilyExists: the store already belongs to another family.
	ErrFamilyExists = errors.New("the store already holds another family")
)

// Store is the hub's state. It is safe for concurrent use.
type Store struct {
	db     *sql.DB
	driver string

	Family      *FamilyQuery
	Nodes       *NodeQuery
	Devices     *DeviceQuery
	Routes      *RouteQuery
	ACLs        *ACLQuery
	UsedTickets *UsedTicketQuery
	TicketKeys  *TicketKeyQuery
	Sessions    *SessionQuery
	Codes       *CodeQuery
	Matrix      *MatrixQuery
	Federations *FederationQuery
}

// Open connects to the database and applies the migrations it lacks.
//
// driver "postgres": dsn is a lib/pq connection string, a URL
// ("postgres://user:password@host:5432/dbname?sslmode=disable") or
// key=value pairs ("host=/run/postgresql dbname=myclerk").
//
// driver "sqlite": dsn is a file path ("/var/lib/myclerk/hub.db") or a
// "file:" URI, optionally with modernc.org/sqlite query parameters. Open
// creates a missing file readable by its owner only (it holds the ticket
// keys) and sets WAL mode, a busy timeout of SQLiteBusyTimeout and
// immediate transactions unless the dsn sets them; the Store keeps one
// connection, so there is one writer.
func Open(ctx context.Context, driver, dsn string) (*Store, error) {
	migs, err := loadMigrations(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	switch driver {
	case DriverPostgres:
	case DriverSQLite:
		if dsn, err = sqliteDSN(dsn); err != nil {
			return nil, fmt.Errorf("failed to open sqlite database: %w", err)
		}
	default:
		return nil, fmt.Errorf("failed to open database: unknown driver %q (want %q or %q)", driver, DriverPostgres, DriverSQLite)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("failed to open %s database: %w", driver, err)
	}
	if driver == DriverSQLite {
		db.SetMaxOpenConns(1)
	}
	if err := ping(ctx, db, driver); err != nil {
		db.Close()
		return nil, fmt.Errorf("failed to connect to %s database: %w", driver, err)
	}
	s := &Store{
		db:          db,
		driver:      driver,
		Family:      &FamilyQuery{db: db},
		Nodes:       &NodeQuery{db: db},
		Devices:     &DeviceQuery{db: db},
		Routes:      &RouteQuery{db: db},
		ACLs:        &ACLQuery{db: db},
		UsedTickets: &UsedTicketQuery{db: db},
		TicketKeys:  &TicketKeyQuery{db: db},
		Sessions:    &SessionQuery{db: db},
		Codes:       &CodeQuery{db: db},
		Matrix:      &MatrixQuery{db: db},
		Federations: &FederationQuery{db: db},
	}
	if err := s.upgrade(ctx, migs); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database. On SQLite it first moves everything the
// write-ahead log holds into the database file and empties the log
// (wal_checkpoint(TRUNCATE)), so the file alone is a complete copy.
func (s *Store) Close() error {
	if s.driver == DriverSQLite {
		var busy, logFrames, moved int
		err := s.db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &moved)
		if err == nil && busy != 0 {
			err = errors.New("the database was busy")
		}
		if err != nil {
			s.db.Close()
			return fmt.Errorf("failed to checkpoint the sqlite database: %w", err)
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("failed to close %s database: %w", s.driver, err)
	}
	return nil
}

// sqliteDSN adds the Store's settings to an SQLite dsn and creates a
// missing database file with mode 0600.
func sqliteDSN(dsn string) (string, error) {
	path, rawQuery, _ := strings.Cut(dsn, "?")
	if path == "" {
		return "", errors.New("empty database path")
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", fmt.Errorf("invalid query in dsn: %w", err)
	}
	setDefault := func(key, alias, value string) {
		if !q.Has(key) && !q.Has(alias) {
			q.Set(key, value)
		}
	}
	setDefault("_journal_mode", "_journal", "WAL")
	setDefault("_busy_timeout", "_timeout", fmt.Sprint(SQLiteBusyTimeout.Milliseconds()))
	setDefault("_txlock", "_txlock", "immediate")

	if !strings.HasPrefix(path, "file:") && path != ":memory:" {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		switch {
		case err == nil:
			f.Close()
		case !errors.Is(err, os.ErrExist):
			return "", err
		}
	}
	return path + "?" + q.Encode(), nil
}

// rowScanner is a *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// collect reads every row of a query.
func collect[T any](rows *sql.Rows, err error, scan func(rowScanner) (*T, error)) ([]*T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var all []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		all = append(all, v)
	}
	return all, rows.Err()
}

// execCount runs a statement and returns how many rows it touched.
func execCount(ctx context.Context, db *sql.DB, query string, args ...any) (int64, error) {
	res, err := db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// execOne runs a statement that must touch a row, and returns ErrNotFound
// when it touched none.
func execOne(ctx context.Context, db *sql.DB, query string, args ...any) error {
	n, err := execCount(ctx, db, query, args...)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// nullUnix stores the zero time as NULL.
func nullUnix(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.Unix(), Valid: true}
}

// fromUnix is a stored time.
func fromUnix(s int64) time.Time { return time.Unix(s, 0).UTC() }

// fromNullUnix is a stored time that may be NULL (the zero time).
func fromNullUnix(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromUnix(n.Int64)
}

// fixed scans a byte string of exactly len(dst) bytes into dst.
type fixed []byte

func (f fixed) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("cannot scan %T into a %d-byte string", src, len(f))
	}
	if len(b) != len(f) {
		return fmt.Errorf("stored byte string has %d bytes, want %d", len(b), len(f))
	}
	copy(f, b)
	return nil
}

// ping connects. Two processes opening a new SQLite file at once (a hub and
// `myclerk-bridge invite`) can both try to switch it to WAL; SQLite answers
// one of them SQLITE_BUSY without waiting, so that is retried for up to
// SQLiteBusyTimeout.
func ping(ctx context.Context, db *sql.DB, driver string) error {
	deadline := time.Now().Add(SQLiteBusyTimeout)
	for {
		err := db.PingContext(ctx)
		if err == nil || driver != DriverSQLite || !strings.Contains(err.Error(), "SQLITE_BUSY") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("database does not answer: %w", err)
	}
	return nil
}
