package tests

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myclerk/myclerk-bridge/bridge/matrixconn"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
)

// dendriteDir is where tests/run installs Dendrite v0.13.8 (built from the
// Go module proxy, never part of go.mod): MYCLERK_DENDRITE, or the cache.
func dendriteDir(t testing.TB) string {
	dir := os.Getenv("MYCLERK_DENDRITE")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "myclerk", "dendrite-v0.13.8")
	}
	if _, err := os.Stat(filepath.Join(dir, "dendrite")); err != nil {
		t.Fatalf("Dendrite is not installed in %s: run bash tests/run, which builds it (%v)", dir, err)
	}
	return dir
}

// startDendrite runs a Dendrite homeserver on a free 127.0.0.1 port, with
// the CI configuration (open registration, no rate limits), and returns
// its client URL.
func startDendrite(t testing.TB) string {
	return startDendriteWith(t, dendriteOpts{port: freePort(t)})
}

// dendriteOpts: the client port, and for a federating server the HTTPS
// federation port (its server name is then 127.0.0.1:fedPort, with the
// self-signed certificate of generate-keys, and it accepts its peers'
// self-signed ones); appservice registration files.
type dendriteOpts struct {
	port, fedPort int
	registrations []string
}

// serverName is the server's name in user IDs.
func (o dendriteOpts) serverName() string {
	if o.fedPort == 0 {
		return "localhost"
	}
	return fmt.Sprintf("127.0.0.1:%d", o.fedPort)
}

// startDendriteWith runs Dendrite as o says and returns its client URL.
func startDendriteWith(t testing.TB, o dendriteOpts) string {
	bin := dendriteDir(t)
	port := o.port
	dir := t.TempDir()
	run := func(name string, args ...string) []byte {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return out
	}
	run("generate-keys", "-private-key", "matrix_key.pem", "-tls-cert", "server.crt", "-tls-key", "server.key")
	cfg := run("generate-config", "-ci", "-dir", dir, "-server", o.serverName())
	var doc map[string]any
	if err := yaml.Unmarshal(cfg, &doc); err != nil {
		t.Fatal(err)
	}
	section := func(name string) map[string]any {
		m, _ := doc[name].(map[string]any)
		if m == nil {
			m = map[string]any{}
			doc[name] = m
		}
		return m
	}
	if len(o.registrations) > 0 {
		section("app_service_api")["config_files"] = o.registrations
	}
	https := ""
	if o.fedPort != 0 {
		fed := section("federation_api")
		fed["disable_tls_validation"] = true
		fed["key_perspectives"] = []any{} // no notary servers: loopback only
		https = fmt.Sprintf("127.0.0.1:%d", o.fedPort)
	}
	cfg, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "dendrite.yaml"), cfg, 0o600)
	args := []string{"-config", "dendrite.yaml", "-http-bind-address", fmt.Sprintf("127.0.0.1:%d", port),
		"-https-bind-address", https, "-really-enable-open-registration"}
	if https != "" {
		args = append(args, "-tls-cert", "server.crt", "-tls-key", "server.key")
	}
	cmd := exec.Command(filepath.Join(bin, "dendrite"), args...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(url + "/_matrix/client/versions"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("Dendrite did not start")
	return ""
}

// matrixPair is two users of one Dendrite sharing a room, syncing, with a
// frame connection each way.
type matrixPair struct {
	alice, bob *mautrix.Client
	room       *mautrix.RespCreateRoom
	ca, cb     *matrixconn.Conn
}

func newMatrixPair(t testing.TB, ctx context.Context) *matrixPair {
	hs := startDendrite(t)
	alice, bob := matrixUser(t, ctx, hs, "alice"), matrixUser(t, ctx, hs, "bob")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	ra, err := matrixconn.NewRouter(alice)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := matrixconn.NewRouter(bob)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := ra.Open(room.RoomID, bob.UserID)
	cb, _ := rb.Open(room.RoomID, alice.UserID)
	return &matrixPair{alice: alice, bob: bob, room: room, ca: ca, cb: cb}
}

// sync runs both clients' sync loops until ctx ends.
func (m *matrixPair) sync(ctx context.Context) {
	go m.alice.SyncWithContext(ctx)
	go m.bob.SyncWithContext(ctx)
}

func matrixUser(t testing.TB, ctx context.Context, hs, name string) *mautrix.Client {
	cli, err := mautrix.NewClient(hs, "", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: name, Password: "correct horse battery " + name})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	cli.SetCredentials(resp.UserID, resp.AccessToken)
	return cli
}

// TestSessionOverMatrix runs a MyClerk session through a real homeserver:
// every frame is an eu.myclerk.frame event in a room, and the homeserver
// stores only sealed frames.
func TestSessionOverMatrix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mx := newMatrixPair(t, ctx)
	ca, cb := mx.ca, mx.cb
	alice, room := mx.alice, mx.room
	mx.sync(ctx)
	f := newFam(t)
	errc := make(chan error, 1)
	go func() {
		s, err := (&session.Responder{Config: f.cfg(f.hub)}).Accept(ctx, cb)
		if err != nil {
			errc <- err
			return
		}
		m, err := s.Recv(ctx)
		if err == nil {
			err = s.Send(ctx, m.Op, append([]byte("hub saw: "), m.Payload...))
		}
		errc <- err
	}()
	cfg := f.cfg(f.node)
	cfg.MaxFrame = 36 << 10
	s, err := session.Dial(ctx, ca, cfg)
	if err != nil {
		t.Fatalf("session over Matrix: %v", err)
	}
	secret := "the porch light code is 4711"
	if err := s.Send(ctx, wire.OpDeviceConfigure, []byte(secret)); err != nil {
		t.Fatal(err)
	}
	m, err := s.Recv(ctx)
	if err != nil || string(m.Payload) != "hub saw: "+secret {
		t.Fatalf("reply: %q %v", m.Payload, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	// The room's history holds frame events, none of them readable.
	msgs, err := alice.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	frames := 0
	for _, evt := range msgs.Chunk {
		raw := string(evt.Content.VeryRaw)
		if strings.Contains(raw, "porch") {
			t.Fatal("plaintext reached the homeserver")
		}
		if evt.Type.Type == matrixconn.FrameType.Type {
			frames++
		}
	}
	if frames < 6 {
		t.Errorf("only %d frame events in the room", frames)
	}
}
