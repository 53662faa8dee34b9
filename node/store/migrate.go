package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// The schema: migrations/NNN_name.sql, numbered from 001 without gaps.
// Each file is applied once, in its own transaction, and recorded in
// schema_version. Never edit a file that has been released; add one.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

const (
	createSchemaVersionQuery = `
		CREATE TABLE IF NOT EXISTS schema_version (
			version    INTEGER PRIMARY KEY,
			applied_at BIGINT  NOT NULL
		)`
	getSchemaVersionQuery    = `SELECT COALESCE(MAX(version), 0) FROM schema_version`
	insertSchemaVersionQuery = `INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)`
	// lockMigrationsQuery serializes hubs that start against one PostgreSQL
	// database at once; SQLite's immediate transactions already do.
	lockMigrationsQuery = `SELECT pg_advisory_xact_lock($1)`
	migrationLockKey    = 0x6d79636c65726b // "myclerk"
)

// onlyDirective before a line of a migration keeps that line for one
// dialect: "-- only: postgres" or "-- only: sqlite".
const onlyDirective = "-- only: "

type migration struct {
	version int
	name    string // the file name
	sql     string
}

// loadMigrations reads dir of fsys: files NNN_name.sql numbered 1, 2, ...
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("failed to read migrations: %w", err)
	}
	var migs []migration
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name is not NNN_name.sql", e.Name())
		}
		if version != len(migs)+1 {
			return nil, fmt.Errorf("migration %s: want number %d (numbers start at 1, without gaps)", e.Name(), len(migs)+1)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("failed to read migration %s: %w", e.Name(), err)
		}
		migs = append(migs, migration{version: version, name: e.Name(), sql: string(b)})
	}
	if len(migs) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	return migs, nil
}

// forDialect is the migration's SQL for driver: a line after
// "-- only: <driver>" is kept only for that driver.
func (m migration) forDialect(driver string) (string, error) {
	var b strings.Builder
	only := ""
	for line := range strings.Lines(m.sql) {
		trimmed := strings.TrimSpace(line)
		if d, ok := strings.CutPrefix(trimmed, onlyDirective); ok {
			if d != DriverPostgres && d != DriverSQLite {
				return "", fmt.Errorf("migration %s: unknown dialect in %q", m.name, trimmed)
			}
			only = d
			continue
		}
		if only == "" || only == driver {
			b.WriteString(line)
		}
		only = ""
	}
	if only != "" {
		return "", fmt.Errorf("migration %s: %q on its last line", m.name, onlyDirective+only)
	}
	return b.String(), nil
}

// upgrade applies the migrations the database lacks, one transaction each.
func (s *Store) upgrade(ctx context.Context, migs []migration) error {
	for {
		done, err := s.step(ctx, migs)
		if err != nil || done {
			return err
		}
	}
}

// step applies the next migration, or reports that there is none.
func (s *Store) step(ctx context.Context, migs []migration) (done bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("failed to begin migration: %w", err)
	}
	defer tx.Rollback()
	if s.driver == DriverPostgres {
		if _, err := tx.ExecContext(ctx, lockMigrationsQuery, migrationLockKey); err != nil {
			return false, fmt.Errorf("failed to lock migrations: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, createSchemaVersionQuery); err != nil {
		return false, fmt.Errorf("failed to create schema_version: %w", err)
	}
	version, err := schemaVersion(ctx, tx)
	if err != nil {
		return false, err
	}
	if version > len(migs) {
		return false, fmt.Errorf("%w: the database is at schema version %d, this program knows versions up to %d; run a newer myclerk-bridge",
			ErrSchemaTooNew, version, len(migs))
	}
	if version == len(migs) {
		return true, tx.Commit()
	}
	m := migs[version]
	query, err := m.forDialect(s.driver)
	if err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, query); err != nil {
		return false, fmt.Errorf("failed to apply migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, insertSchemaVersionQuery, m.version, time.Now().Unix()); err != nil {
		return false, fmt.Errorf("failed to record migration %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("failed to commit migration %s: %w", m.name, err)
	}
	zerolog.Ctx(ctx).Info().Int("version", m.version).Str("migration", m.name).Msg("Applied database migration")
	return false, nil
}

// SchemaVersion returns the number of the last migration applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	return schemaVersion(ctx, s.db)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, getSchemaVersionQuery).Scan(&v); err != nil {
		return 0, fmt.Errorf("failed to read schema version: %w", err)
	}
	return v, nil
}
