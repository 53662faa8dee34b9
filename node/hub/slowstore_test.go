package hub_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/hub"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/store"
	"github.com/myclerk/myclerk-bridge/wire"
)

// TestSlowStoreDoesNotBlockReaders: while the store cannot take a write
// (another connection holds SQLite's write lock), an ACL change waits for
// it, and other members' DEVICE_LIST and DEVICE_INFO are answered
// meanwhile: the hub does no store I/O under its registry's lock.
func TestSlowStoreDoesNotBlockReaders(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "hub.db")
	st, err := store.Open(ctx, store.DriverSQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite, Admins: []string{"admin"}, Store: st})
	w.startNode("pi")
	admin := newClient(t, w.Connect(w.Member(identity.RoleClient, "admin")))
	rid := w.Member(identity.RoleClient, "reader")
	reader := newClient(t, w.Connect(rid))
	for i := 0; i < 200 && !w.Hub.Connected(rid.Cert.Node); i++ {
		time.Sleep(5 * time.Millisecond) // the grant names "reader": the hub must know it
	}

	// Another connection takes the write lock and holds it.
	other, err := sql.Open(store.DriverSQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	held := true
	release := func() {
		if held {
			held = false
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Error(err)
			}
		}
	}
	defer release()

	granted := make(chan wire.Code, 1)
	go func() {
		_, code := admin.do(wire.OpACLGrant, ops.Request{Device: "pi/temp", Node: "reader", Mode: ops.ModeRead})
		granted <- code
	}()
	time.Sleep(200 * time.Millisecond) // let the grant reach the store (it waits up to store.SQLiteBusyTimeout)

	if r, code := reader.do(wire.OpDeviceList, ops.Request{}); code != wire.CodeOK || len(r.Devices) != 1 {
		t.Fatalf("list while the store is busy: %v %+v", code, r)
	}
	if r, code := reader.do(wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); code != wire.CodeOK || r.Mode != ops.ModeReadWrite {
		t.Fatalf("info while the store is busy: %v %+v", code, r)
	}
	select {
	case code := <-granted:
		t.Fatalf("the grant finished (%v) while the store was locked: the readers were not tested against a waiting write", code)
	default:
	}
	release()
	if code := <-granted; code != wire.CodeOK {
		t.Fatalf("grant after the store is free: %v", code)
	}
	if r, _ := reader.do(wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); r.Mode != ops.ModeRead {
		t.Errorf("mode after the grant: %v", r.Mode)
	}
	acls, err := st.ACLs.List(ctx, "pi/temp")
	if err != nil || len(acls) != 1 || acls[0].Mode != ops.ModeRead {
		t.Errorf("the store has %+v, %v", acls, err)
	}
}
