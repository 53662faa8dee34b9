package tests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/store"
)

// TestHubStopsOnSIGTERM: a hub stopped with SIGTERM while a node streams
// readings to a subscribed client waits for its sessions, exits 0, writes
// nothing to a closed store, and leaves a database file that alone (no
// -wal, no -shm) holds the enrolled nodes and the announced device
// (README: Stopping and backups).
func TestHubStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	tcpPort, wsPort, natsPort := freePort(t), freePort(t), freePort(t)
	hubCfg := fmt.Sprintf("role: hub\nname: nas\nlog_level: debug\ndata_dir: ./hub\nlisten: {tcp: 127.0.0.1:%d, websocket: 127.0.0.1:%d, nats: 127.0.0.1:%d}\n", tcpPort, wsPort, natsPort)
	hub, codes := hubWithCodes(t, dir, hubCfg)
	tcp := fmt.Sprintf("tcp://127.0.0.1:%d", tcpPort)
	nodeCfg := fmt.Sprintf("role: node\nname: pi\ndata_dir: ./pi\nhub: {tcp: 127.0.0.1:%d}\ndevices: {sensors: [{id: temp, name: Kitchen, base: 19, interval: 1s}]}\n", tcpPort)
	os.WriteFile(filepath.Join(dir, "pi.yaml"), []byte(nodeCfg), 0o600)
	if r := runBin(t, dir, "pair", "-config", "pi.yaml", "-hub", tcp, "-code", codes[0]); r.code != 0 {
		t.Fatalf("pair node: %s %s", r.stdout, r.stderr)
	}
	if r := runBin(t, dir, "pair", "-hub", tcp, "-code", codes[1], "-name", "phone", "-role", "client", "-data", "./phone"); r.code != 0 {
		t.Fatalf("pair client: %s %s", r.stdout, r.stderr)
	}
	start(t, dir, "node", "-config", "pi.yaml")
	var r result
	for i := 0; i < 100; i++ {
		if r = runBin(t, dir, "client", "-data", "./phone", "-hub", tcp, "devices"); strings.Contains(r.stdout, "pi/temp") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(r.stdout, "pi/temp") {
		t.Fatalf("devices: %q %q", r.stdout, r.stderr)
	}
	// Traffic while the hub stops: a subscriber of the readings.
	sub := start(t, dir, "client", "-data", "./phone", "-hub", tcp, "-json", "subscribe", "pi/temp", "100000")
	sub.until(t, regexp.MustCompile(`temperature`))

	hub.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- hub.cmd.Wait() }()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Errorf("the hub exited with %v after SIGTERM\n%s", err, hub.logTail())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the hub did not stop within 30 s of SIGTERM\n%s", hub.logTail())
	}
	logb, _ := os.ReadFile(hub.log)
	if strings.Contains(string(logb), "database is closed") {
		t.Errorf("the hub wrote to its closed store:\n%s", hub.logTail())
	}

	backup := filepath.Join(t.TempDir(), "backup.db")
	in, err := os.Open(filepath.Join(dir, "hub", "myclerk.db"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := os.Create(backup)
	io.Copy(out, in)
	in.Close()
	out.Close()
	st, err := store.Open(context.Background(), store.DriverSQLite, backup)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	nodes, err := st.Nodes.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	devs, err := st.Devices.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || len(devs) != 1 {
		t.Errorf("a copy of myclerk.db alone holds %d nodes and %d devices, want 2 and 1", len(nodes), len(devs))
	}
}
