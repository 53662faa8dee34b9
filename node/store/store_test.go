package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
)

// The suite runs every test below against both backends: SQLite in a
// temporary file and PostgreSQL in a database created for the test and
// dropped after it.
//
// PostgreSQL: MYCLERK_TEST_POSTGRES is the DSN of a database to connect to
// for CREATE DATABASE (default defaultPostgresDSN); its role needs
// CREATEDB. MYCLERK_TEST_POSTGRES=skip tests SQLite alone; otherwise an
// unreachable server fails the test.
const (
	postgresEnv        = "MYCLERK_TEST_POSTGRES"
	defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
)

var suite = []struct {
	name string
	run  func(t *testing.T, b backend)
}{
	{"Migrations", testMigrations},
	{"Reopen", testReopen},
	{"NewerSchemaRefused", testNewerSchemaRefused},
	{"FailedMigrationRollsBack", testFailedMigrationRollsBack},
	{"ConcurrentOpen", testConcurrentOpen},
	{"Family", testFamily},
	{"Nodes", testNodes},
	{"UniqueNames", testUniqueNames},
	{"UniqueNamesMigration", testUniqueNamesMigration},
	{"HandOverExactName", testHandOverExactName},
	{"Devices", testDevices},
	{"Routes", testRoutes},
	{"ACLs", testACLs},
	{"UsedTickets", testUsedTickets},
	{"MarkUsedConcurrent", testMarkUsedConcurrent},
	{"TicketKeys", testTicketKeys},
	{"Sessions", testSessions},
	{"Availability", testAvailability},
	{"PairingCodes", testPairingCodes},
	{"BoundPairingCodes", testBoundPairingCodes},
	{"BoundCodesMigration", testBoundCodesMigration},
	{"MatrixRecords", testMatrixRecords},
	{"Federations", testFederations},
}

// backend is one database server the suite runs against.
type backend struct {
	driver string
	// fresh returns the DSN of a new, empty database, removed when t ends.
	fresh func(t *testing.T) string
}

func TestStore(t *testing.T) {
	t.Run(DriverSQLite, func(t *testing.T) {
		runSuite(t, backend{driver: DriverSQLite, fresh: func(t *testing.T) string {
			return filepath.Join(t.TempDir(), "hub.db")
		}})
	})
	t.Run(DriverPostgres, func(t *testing.T) {
		runSuite(t, postgresBackend(t))
	})
}

func runSuite(t *testing.T, b backend) {
	for _, tc := range suite {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, b)
		})
	}
}

// postgresBackend connects to the server of MYCLERK_TEST_POSTGRES.
func postgresBackend(t *testing.T) backend {
	dsn := os.Getenv(postgresEnv)
	switch dsn {
	case "skip":
		t.Skipf("%s=skip: the PostgreSQL backend is not tested", postgresEnv)
	case "":
		dsn = defaultPostgresDSN
	}
	admin, err := sql.Open(DriverPostgres, dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s: %v\n"+
			"Start PostgreSQL with a role that may CREATE DATABASE and set %s to its DSN "+
			"(default %s), or set %s=skip to test SQLite alone.",
			redact(dsn), err, postgresEnv, defaultPostgresDSN, postgresEnv)
	}
	t.Cleanup(func() { admin.Close() })
	return backend{driver: DriverPostgres, fresh: func(t *testing.T) string {
		var b [8]byte
		rand.Read(b[:])
		name := "myclerk_test_" + hex.EncodeToString(b[:])
		if _, err := admin.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
			t.Fatalf("failed to create database %s: %v", name, err)
		}
		t.Cleanup(func() {
			ctx := context.Background()
			if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
					t.Errorf("failed to drop database %s: %v", name, err)
				}
			}
		})
		return withDatabase(t, dsn, name)
	}}
}

// withDatabase points a lib/pq DSN, URL or key=value, at another database.
func withDatabase(t *testing.T, dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("invalid %s: %v", postgresEnv, err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name // the last dbname wins
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return dsn
}

// open opens a store on a fresh database and returns it with its DSN.
func open(t *testing.T, b backend) (*Store, string) {
	t.Helper()
	dsn := b.fresh(t)
	return reopen(t, b, dsn), dsn
}

// reopen opens the store at dsn; it is closed when t ends (Close of a
// closed store is harmless).
func reopen(t *testing.T, b backend, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), b.driver, dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Test values: times are whole seconds in UTC, as the store returns them.
func at(sec int64) time.Time { return time.Unix(1_700_000_000+sec, 0).UTC() }

func nodeID(b byte) identity.NodeID {
	var id identity.NodeID
	for i := range id {
		id[i] = b
	}
	return id
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("%s: got %v, want ErrNotFound", what, err)
	}
}

func countRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	must(t, s.db.QueryRowContext(t.Context(), fmt.Sprintf("SELECT COUNT(*) FROM %s", table)).Scan(&n))
	return n
}
