package store

import (
	"crypto/rand"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/ticket"
)

func knownVersion(t *testing.T) int {
	t.Helper()
	migs, err := loadMigrations(migrationFiles, "migrations")
	must(t, err)
	return len(migs)
}

func testMigrations(t *testing.T, b backend) {
	ctx := t.Context()
	s, dsn := open(t, b)
	want := knownVersion(t)
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != want {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, want)
	}
	if n := countRows(t, s, "schema_version"); n != want {
		t.Errorf("schema_version has %d rows, want %d", n, want)
	}
	must(t, s.Close())

	// Reopening applies nothing again.
	s = reopen(t, b, dsn)
	if v, err := s.SchemaVersion(ctx); err != nil || v != want {
		t.Errorf("after reopen SchemaVersion = %d, %v; want %d", v, err, want)
	}
	if n := countRows(t, s, "schema_version"); n != want {
		t.Errorf("after reopen schema_version has %d rows, want %d", n, want)
	}
}

func testNewerSchemaRefused(t *testing.T, b backend) {
	ctx := t.Context()
	s, dsn := open(t, b)
	newer := knownVersion(t) + 1
	if _, err := s.db.ExecContext(ctx, insertSchemaVersionQuery, newer, 0); err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())

	_, err := Open(ctx, b.driver, dsn)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: got %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "schema version") || !strings.Contains(err.Error(), "newer") {
		t.Errorf("unclear error: %v", err)
	}
	t.Logf("error: %v", err)
}

// testReopen: everything written survives Close and Open.
func testReopen(t *testing.T, b backend) {
	ctx := t.Context()
	s, dsn := open(t, b)

	family := testFamilyValue(1)
	pi, nas := testNode(1, "pi"), testNode(2, "nas")
	dev := &Device{ID: "pi/serial0", Owner: pi.ID, Kind: "serial", Name: "Serial",
		Capabilities: []byte(`{"baud":115200}`), State: []byte(`{}`), AnnouncedAt: at(3), Available: true}
	route := &Route{DeviceID: dev.ID, Client: nas.ID, Priority: 2, CreatedAt: at(4)}
	acl := &ACL{DeviceID: dev.ID, Node: nas.ID, Mode: ops.ModeReadWrite, GrantedAt: at(5)}
	key := &TicketKey{Key: ticket.Key{ID: 7, Secret: [32]byte{7}}, CreatedAt: at(6)}
	nonce := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}

	must(t, s.Family.Put(ctx, family))
	must(t, s.Nodes.Put(ctx, pi))
	must(t, s.Nodes.Put(ctx, nas))
	must(t, s.Nodes.Revoke(ctx, nas.ID, at(9)))
	nas.RevokedAt = at(9)
	must(t, s.Devices.Put(ctx, dev))
	var err error
	route.ID, err = s.Routes.Create(ctx, route)
	must(t, err)
	must(t, s.ACLs.Grant(ctx, acl))
	must(t, s.TicketKeys.Add(ctx, key))
	first, err := s.UsedTickets.MarkUsed(ctx, nonce, at(1000))
	must(t, err)
	if !first {
		t.Fatal("first MarkUsed was not a first use")
	}
	sid, err := s.Sessions.Connected(ctx, pi.ID, at(0))
	must(t, err)
	must(t, s.Sessions.Disconnected(ctx, sid, at(25)))
	must(t, s.Close())

	s = reopen(t, b, dsn)
	check := func(what string, got, want any, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("%s after reopen = %+v, want %+v", what, got, want)
		}
	}
	gotFamily, err := s.Family.Get(ctx)
	check("family", gotFamily, family, err)
	nodes, err := s.Nodes.List(ctx)
	check("nodes", nodes, []*Node{nas, pi}, err)
	revoked, err := s.Nodes.IsRevoked(ctx, nas.ID)
	check("revocation", revoked, true, err)
	ids, err := s.Nodes.Revoked(ctx)
	check("revoked list", ids, []identity.NodeID{nas.ID}, err)
	gotDev, err := s.Devices.Get(ctx, dev.ID)
	check("device", gotDev, dev, err)
	routes, err := s.Routes.List(ctx)
	check("routes", routes, []*Route{route}, err)
	mode, err := s.ACLs.Get(ctx, acl.DeviceID, acl.Node)
	check("ACL", mode, ops.ModeReadWrite, err)
	keys, err := s.TicketKeys.ListActive(ctx)
	check("ticket keys", keys, []*TicketKey{key}, err)
	first, err = s.UsedTickets.MarkUsed(ctx, nonce, at(1000))
	check("used ticket is first use", first, false, err)
	avail, err := s.Sessions.Availability(ctx, pi.ID, at(0), at(100))
	check("availability", avail, 0.25, err)
}

func TestForDialect(t *testing.T) {
	m := migration{name: "001_test.sql", sql: "CREATE TABLE t (\n" +
		"    -- only: postgres\n" +
		"    id BIGSERIAL PRIMARY KEY,\n" +
		"    -- only: sqlite\n" +
		"    id INTEGER PRIMARY KEY AUTOINCREMENT,\n" +
		"    x BIGINT\n" +
		");\n"}
	for _, tc := range []struct{ driver, want string }{
		{DriverPostgres, "CREATE TABLE t (\n    id BIGSERIAL PRIMARY KEY,\n    x BIGINT\n);\n"},
		{DriverSQLite, "CREATE TABLE t (\n    id INTEGER PRIMARY KEY AUTOINCREMENT,\n    x BIGINT\n);\n"},
	} {
		got, err := m.forDialect(tc.driver)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.driver, got, err, tc.want)
		}
	}
	for _, bad := range []string{"-- only: mysql\nx\n", "x\n-- only: sqlite\n"} {
		if _, err := (migration{name: "bad.sql", sql: bad}).forDialect(DriverSQLite); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("SELECT 1;")}
	for _, tc := range []struct {
		name  string
		files []string
		want  []int // nil: an error
	}{
		{"in order", []string{"001_a.sql", "002_b.sql", "README"}, []int{1, 2}},
		{"gap", []string{"001_a.sql", "003_c.sql"}, nil},
		{"not from 1", []string{"002_b.sql"}, nil},
		{"duplicate", []string{"001_a.sql", "1_b.sql"}, nil},
		{"bad name", []string{"001_a.sql", "two.sql"}, nil},
		{"none", nil, nil},
	} {
		fsys := fstest.MapFS{"m": &fstest.MapFile{Mode: fs.ModeDir | 0o755}}
		for _, f := range tc.files {
			fsys["m/"+f] = file
		}
		migs, err := loadMigrations(fsys, "m")
		var got []int
		for _, m := range migs {
			got = append(got, m.version)
		}
		if tc.want == nil {
			if err == nil {
				t.Errorf("%s: got versions %v, want an error", tc.name, got)
			}
		} else if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	// The embedded migrations load and make sense for both dialects.
	migs, err := loadMigrations(migrationFiles, "migrations")
	must(t, err)
	for _, m := range migs {
		for _, d := range []string{DriverPostgres, DriverSQLite} {
			if _, err := m.forDialect(d); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestSQLiteSettings(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(ctx, DriverSQLite, path)
	must(t, err)
	defer s.Close()
	var mode string
	var timeout int
	must(t, s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode))
	must(t, s.db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&timeout))
	if mode != "wal" || timeout != int(SQLiteBusyTimeout.Milliseconds()) {
		t.Errorf("journal_mode %q, busy_timeout %d; want wal, %d", mode, timeout, SQLiteBusyTimeout.Milliseconds())
	}
	fi, err := os.Stat(path)
	must(t, err)
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode %v, want 0600", perm)
	}

	// Settings in the dsn win.
	dsn, err := sqliteDSN(path + "?_timeout=100&_journal_mode=DELETE")
	must(t, err)
	for _, want := range []string{"_timeout=100", "_journal_mode=DELETE", "_txlock=immediate"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("dsn %q lacks %q", dsn, want)
		}
	}
	if strings.Contains(dsn, "_busy_timeout") {
		t.Errorf("dsn %q overrides the given _timeout", dsn)
	}

	if _, err := Open(ctx, "mysql", "x"); err == nil {
		t.Error("Open with an unknown driver succeeded")
	}
}

// testFailedMigrationRollsBack: a migration applies whole or not at all.
func testFailedMigrationRollsBack(t *testing.T, b backend) {
	ctx := t.Context()
	s, _ := open(t, b)
	migs, err := loadMigrations(migrationFiles, "migrations")
	must(t, err)
	bad := migration{version: len(migs) + 1, name: "999_bad.sql",
		sql: "CREATE TABLE extra (x INTEGER);\nINSERT INTO no_such_table VALUES (1);\n"}
	if err := s.upgrade(ctx, append(migs, bad)); err == nil || !strings.Contains(err.Error(), bad.name) {
		t.Fatalf("upgrade with a failing migration: got %v, want an error naming it", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migs) {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, len(migs))
	}
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM extra").Scan(&n); err == nil {
		t.Error("the first statement of the failed migration was kept")
	}
}

// testConcurrentOpen: hubs starting at once against one fresh database
// migrate it once.
func testConcurrentOpen(t *testing.T, b backend) {
	ctx := t.Context()
	dsn := b.fresh(t)
	const n = 4
	errs := make(chan error, n)
	stores := make(chan *Store, n)
	for range n {
		go func() {
			s, err := Open(ctx, b.driver, dsn)
			errs <- err
			stores <- s
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
		if s := <-stores; s != nil {
			t.Cleanup(func() { s.Close() })
		}
	}
	s := reopen(t, b, dsn)
	if got, want := countRows(t, s, "schema_version"), knownVersion(t); got != want {
		t.Errorf("schema_version has %d rows, want %d", got, want)
	}
}

// migrateTo opens a fresh database migrated only up to version and
// returns a store on it (its queries work on that schema) and its DSN.
func migrateTo(t *testing.T, b backend, version int) (*Store, string) {
	t.Helper()
	dsn := b.fresh(t)
	migs, err := loadMigrations(migrationFiles, "migrations")
	must(t, err)
	open := dsn
	if b.driver == DriverSQLite {
		open, err = sqliteDSN(dsn)
		must(t, err)
	}
	db, err := sql.Open(b.driver, open)
	must(t, err)
	t.Cleanup(func() { db.Close() })
	s := &Store{db: db, driver: b.driver, Nodes: &NodeQuery{db: db}, Devices: &DeviceQuery{db: db}}
	must(t, s.upgrade(t.Context(), migs[:version]))
	return s, dsn
}

// testUniqueNamesMigration: migration 005 keeps the first enrolled of the
// live nodes that share a name (in any case) and revokes the later ones
// as of their enrolment; revoked namesakes and other names are left alone.
func testUniqueNamesMigration(t *testing.T, b backend) {
	ctx := t.Context()
	old, dsn := migrateTo(t, b, 4)
	rows := []struct {
		node        *Node
		wantRevoked time.Time
	}{
		{&Node{ID: nodeID(1), Name: "admin", EnrolledAt: at(10)}, time.Time{}},
		{&Node{ID: nodeID(2), Name: "admin", EnrolledAt: at(20)}, at(20)}, // the impostor
		{&Node{ID: nodeID(3), Name: "ADMIN", EnrolledAt: at(30)}, at(30)},
		{&Node{ID: nodeID(4), Name: "admin", EnrolledAt: at(5), RevokedAt: at(6)}, at(6)},
		{&Node{ID: nodeID(6), Name: "pi", EnrolledAt: at(40)}, at(40)}, // same time: the lower ID keeps it
		{&Node{ID: nodeID(5), Name: "pi", EnrolledAt: at(40)}, time.Time{}},
		{&Node{ID: nodeID(7), Name: "nas", EnrolledAt: at(50)}, time.Time{}},
	}
	for _, r := range rows {
		r.node.Role, r.node.Certificate = identity.RoleClient, []byte("c")
		must(t, old.Nodes.Put(ctx, r.node))
	}
	must(t, old.db.Close())

	s := reopen(t, b, dsn)
	for _, r := range rows {
		n, err := s.Nodes.Get(ctx, r.node.ID)
		must(t, err)
		if !n.RevokedAt.Equal(r.wantRevoked) {
			t.Errorf("%s %q: revoked at %v, want %v", n.ID, n.Name, n.RevokedAt, r.wantRevoked)
		}
	}
	// The index now refuses a second live "Admin".
	err := s.Nodes.Put(ctx, &Node{ID: nodeID(8), Name: "Admin", Role: identity.RoleClient, Certificate: []byte("c"), EnrolledAt: at(60)})
	if err == nil {
		t.Error("a second live node named Admin was stored")
	}
}

// testBoundCodesMigration: a code made before migration 006 is bound to
// no name after it, and still enrols.
func testBoundCodesMigration(t *testing.T, b backend) {
	ctx := t.Context()
	old, dsn := migrateTo(t, b, 5)
	code, _ := identity.NewPairingCode(rand.Reader)
	now := time.Unix(1_767_225_600, 0)
	if _, err := old.db.ExecContext(ctx, `INSERT INTO pairing_codes (code, role, expires_at) VALUES ($1, $2, $3)`,
		string(code), int(identity.RoleNode), now.Add(identity.PairingLifetime).Unix()); err != nil {
		t.Fatal(err)
	}
	must(t, old.db.Close())

	s := reopen(t, b, dsn)
	th := [32]byte{5}
	pub := make([]byte, 32)
	bound := "unasked"
	got, role, err := s.Codes.Redeem(code.Proof(wire.InitiatorToResponder, th, pub, []byte("pi")), th, pub, "pi", now,
		func(_ identity.Role, name string) error { bound = name; return nil })
	if err != nil || got != code || role != identity.RoleNode || bound != "" {
		t.Errorf("Redeem of an old code = %v, %v, %v, bound to %q; want it, node, unbound", got, role, err, bound)
	}
}
