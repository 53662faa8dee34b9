package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myclerk/myclerk-bridge/bridge/frameevent"
	"github.com/myclerk/myclerk-bridge/bridge/matrixconn"
	"github.com/myclerk/myclerk-bridge/node/client"
	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/runtime"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
)

// bridgeEnv is a hub running as an appservice of a real Dendrite, as a
// family sets it up from the README: register, give the registration to
// the homeserver, start the hub.
type bridgeEnv struct {
	dir, hs, hubCfg string
	domain          string // the homeserver's server name
	tcp, metrics    string
	hub             *proc
	bot             id.UserID
	hsToken         string
	asURL           string
}

func newBridgeEnv(t testing.TB) *bridgeEnv {
	e := prepareBridgeEnv(t, false)
	e.startHub(t)
	return e
}

// newBridgeEnvWith is newBridgeEnv on a federating homeserver (server
// name 127.0.0.1:PORT) when federated is set.
func newBridgeEnvWith(t testing.TB, federated bool) *bridgeEnv {
	e := prepareBridgeEnv(t, federated)
	e.startHub(t)
	return e
}

// prepareBridgeEnv writes the hub's configuration, registers the bridge
// and starts the homeserver, but not the hub.
func prepareBridgeEnv(t testing.TB, federated bool) *bridgeEnv {
	dir := t.TempDir()
	hsPort, asPort, tcpPort, metricsPort := freePort(t), freePort(t), freePort(t), freePort(t)
	o := dendriteOpts{port: hsPort}
	if federated {
		o.fedPort = freePort(t)
	}
	domain := o.serverName()
	cfg := fmt.Sprintf(`role: hub
name: nas
data_dir: ./hub
log_level: info
listen: {tcp: "127.0.0.1:%d", websocket: "", nats: "", metrics: "127.0.0.1:%d"}
acl: {default_mode: none, admins: ["@admin:%[5]s"]}
matrix:
  homeserver: {address: "http://127.0.0.1:%[3]d", domain: %[5]q}
  appservice: {address: "http://127.0.0.1:%[4]d", hostname: 127.0.0.1, port: %[4]d}
  bridge:
    permissions: {%[5]q: user, "@admin:%[5]s": admin}
  accept_old_servers: true
  device_sync: 300ms
`, tcpPort, metricsPort, hsPort, asPort, domain)
	os.WriteFile(filepath.Join(dir, "hub.yaml"), []byte(cfg), 0o600)
	if r := runBin(t, dir, "register", "-config", "hub.yaml"); r.code != 0 {
		t.Fatalf("register: %s %s", r.stdout, r.stderr)
	}
	regPath := filepath.Join(dir, "hub", "registration.yaml")
	b, err := os.ReadFile(regPath)
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		HSToken string `yaml:"hs_token"`
	}
	if err := yaml.Unmarshal(b, &reg); err != nil || reg.HSToken == "" {
		t.Fatalf("registration %s: %v", regPath, err)
	}
	e := &bridgeEnv{dir: dir, hubCfg: "hub.yaml", domain: domain, tcp: fmt.Sprintf("tcp://127.0.0.1:%d", tcpPort),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort), bot: id.UserID("@myclerkbot:" + domain),
		hsToken: reg.HSToken, asURL: fmt.Sprintf("http://127.0.0.1:%d", asPort)}
	o.registrations = []string{regPath}
	e.hs = startDendriteWith(t, o)
	return e
}

// startHub starts the hub and waits until its bridge runs.
func (e *bridgeEnv) startHub(t testing.TB) {
	p := start(t, e.dir, "hub", "-config", e.hubCfg)
	e.hub = p
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the hub's warnings and errors:\n%s", grepLevels(p.log))
			if d := os.Getenv("MYCLERK_TEST_LOGDIR"); d != "" {
				b, _ := os.ReadFile(p.log)
				os.WriteFile(filepath.Join(d, filepath.Base(p.log)), b, 0o600)
			}
		}
	})
	p.until(t, regexp.MustCompile(`^\s+matrix\s+http`))
}

// stopHub stops the hub as a service manager does.
func (e *bridgeEnv) stopHub(t testing.TB) {
	e.hub.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- e.hub.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the hub did not stop within 15 s of SIGTERM")
	}
}

// dm opens a direct chat between cli and the bot and waits until the bot
// has joined it.
func (e *bridgeEnv) dm(t testing.TB, ctx context.Context, cli *mautrix.Client) id.RoomID {
	room, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{e.bot}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the bot to join "+room.RoomID.String(), func() bool {
		m, err := cli.JoinedMembers(ctx, room.RoomID)
		return err == nil && m.Joined[e.bot].DisplayName != "" || err == nil && len(m.Joined) == 2
	})
	return room.RoomID
}

// grepLevels returns the warn and error lines of a JSON log file.
func grepLevels(path string) string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if os.Getenv("MYCLERK_TEST_GREP") != "" && strings.Contains(l, os.Getenv("MYCLERK_TEST_GREP")) || strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) || strings.Contains(l, `"level":"fatal"`) {
			out = append(out, l)
		}
	}
	if len(out) > 60 {
		out = out[len(out)-60:]
	}
	return strings.Join(out, "\n")
}

func waitFor(t testing.TB, ctx context.Context, what string, ok func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	for {
		if ok() {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// notices returns the bodies of the m.notice events from sender in room,
// oldest first.
func notices(t testing.TB, ctx context.Context, cli *mautrix.Client, room id.RoomID, sender id.UserID) []string {
	t.Helper()
	msgs, err := cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 200)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(msgs.Chunk) - 1; i >= 0; i-- {
		evt := msgs.Chunk[i]
		if evt.Sender != sender || evt.Type != event.EventMessage {
			continue
		}
		var c struct {
			MsgType string `json:"msgtype"`
			Body    string `json:"body"`
		}
		if json.Unmarshal(evt.Content.VeryRaw, &c) == nil && c.MsgType == "m.notice" {
			out = append(out, c.Body)
		}
	}
	return out
}

// command sends body to room and returns the bot's first new notice that
// contains want.
func (e *bridgeEnv) command(t testing.TB, ctx context.Context, cli *mautrix.Client, room id.RoomID, body, want string) string {
	t.Helper()
	before := len(notices(t, ctx, cli, room, e.bot))
	if _, err := cli.SendText(ctx, room, body); err != nil {
		t.Fatal(err)
	}
	var got string
	var seen []string
	defer func() {
		if t.Failed() && got == "" {
			t.Logf("the bot's replies after %q: %q", body, seen)
		}
	}()
	waitFor(t, ctx, fmt.Sprintf("a reply to %q containing %q", body, want), func() bool {
		ns := notices(t, ctx, cli, room, e.bot)
		seen = ns[min(before, len(ns)):]
		for _, n := range seen {
			if strings.Contains(n, want) {
				got = n
				return true
			}
		}
		return false
	})
	return got
}

// invitedTo joins the room cli is invited to whose name is name, and
// returns it. (Dendrite's invites carry no room name, so each invited room
// is joined and read.)
func invitedTo(t testing.TB, ctx context.Context, cli *mautrix.Client, name string) id.RoomID {
	t.Helper()
	var room id.RoomID
	checked := map[id.RoomID]bool{}
	waitFor(t, ctx, "an invite to the portal "+name, func() bool {
		resp, err := cli.FullSyncRequest(ctx, mautrix.ReqSync{Timeout: 0})
		if err != nil {
			return false
		}
		for rid := range resp.Rooms.Invite {
			if checked[rid] {
				continue
			}
			if _, err := cli.JoinRoomByID(ctx, rid); err != nil {
				continue
			}
			checked[rid] = true
			var c event.RoomNameEventContent
			if cli.StateEvent(ctx, rid, event.StateRoomName, "", &c) == nil && c.Name == name {
				room = rid
				return true
			}
		}
		return false
	})
	return room
}

// roomWithBot registers the Matrix user name, makes a room with the bot,
// waits for the bot to join it, and opens a frame connection on it (the
// caller starts the user's sync).
func (e *bridgeEnv) roomWithBot(t testing.TB, ctx context.Context, name string) (*mautrix.Client, id.RoomID, *matrixconn.Conn) {
	t.Helper()
	cli := matrixUser(t, ctx, e.hs, name)
	room, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{e.bot}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the bot to join", func() bool {
		m, err := cli.JoinedMembers(ctx, room.RoomID)
		return err == nil && len(m.Joined) == 2
	})
	r, err := matrixconn.NewRouter(cli)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := r.Open(room.RoomID, e.bot)
	if err != nil {
		t.Fatal(err)
	}
	return cli, room.RoomID, conn
}

// dialThroughBridge opens a session to the hub over conn as the paired
// member whose configuration (data_dir) is c, with a running client.
func dialThroughBridge(t testing.TB, ctx context.Context, conn *matrixconn.Conn, c *config.Config) (*session.Session, *client.Client) {
	t.Helper()
	idn, root, err := runtime.LoadMember(c)
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := runtime.SessionConfig(c, idn, root, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	scfg.MaxFrame = frameevent.MaxFrame
	s, err := session.Dial(ctx, conn, scfg)
	if err != nil {
		t.Fatalf("session through the bridge: %v", err)
	}
	cli := client.New(s, zerolog.Nop())
	go cli.Run(ctx)
	return s, cli
}

// TestBridgeWithDendrite drives the bridge as family members would, on a
// real homeserver: invite the bot, send commands, get portals for a
// node's devices, grant and revoke access, reach the hub with sealed
// frames through a room, survive a retried transaction and a restart.
func TestBridgeWithDendrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e := newBridgeEnv(t)
	admin := matrixUser(t, ctx, e.hs, "admin")
	bob := matrixUser(t, ctx, e.hs, "bob")
	mgmt := e.dm(t, ctx, admin)

	help := e.command(t, ctx, admin, mgmt, "help", "devices")
	for _, want := range []string{"lock", "grant", "pair", "sessions"} {
		if !strings.Contains(help, want) {
			t.Errorf("help does not mention %q:\n%s", want, help)
		}
	}
	e.command(t, ctx, admin, mgmt, "frobnicate", "Unknown command")
	e.command(t, ctx, admin, mgmt, "lock", "Usage")
	e.command(t, ctx, admin, mgmt, "devices", "may not use any device yet")

	// A node pairs with a code from chat and announces its sensor.
	code := regexp.MustCompile(`[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}`).FindString(
		e.command(t, ctx, admin, mgmt, "pair node", "Pairing code"))
	nodeCfg := fmt.Sprintf("role: node\nname: pi\ndata_dir: ./pi\nhub: {tcp: %q}\ndevices: {sensors: [{id: temp, name: Kitchen, base: 19, interval: 1s}]}\n", strings.TrimPrefix(e.tcp, "tcp://"))
	os.WriteFile(filepath.Join(e.dir, "pi.yaml"), []byte(nodeCfg), 0o600)
	if r := runBin(t, e.dir, "pair", "-config", "pi.yaml", "-hub", e.tcp, "-code", code); r.code != 0 {
		t.Fatalf("pair: %s %s", r.stdout, r.stderr)
	}
	start(t, e.dir, "node", "-config", "pi.yaml")
	waitFor(t, ctx, "the sensor in the device list", func() bool {
		return strings.Contains(e.command(t, ctx, admin, mgmt, "devices", "device"), "pi/temp")
	})

	// The device's portal: the admin is invited, the ghost posts readings.
	portal := invitedTo(t, ctx, admin, "Kitchen")
	ghost := id.UserID("")
	waitFor(t, ctx, "a reading in the portal", func() bool {
		members, err := admin.JoinedMembers(ctx, portal)
		if err != nil {
			return false
		}
		for u := range members.Joined {
			if strings.HasPrefix(u.String(), "@myclerk_") {
				ghost = u
			}
		}
		for _, n := range notices(t, ctx, admin, portal, ghost) {
			if strings.Contains(n, "pi/temp: reading") {
				return true
			}
		}
		return false
	})
	e.command(t, ctx, admin, mgmt, "info pi/temp", "read-write")
	e.command(t, ctx, admin, mgmt, "lock pi/temp 60", "Locked")
	e.command(t, ctx, admin, mgmt, "info pi/nothing", "NOT_FOUND")

	// Bob sees nothing until the admin grants him the sensor; a grant
	// invites him to its portal, a revoke takes him out.
	bobDM := e.dm(t, ctx, bob)
	e.command(t, ctx, bob, bobDM, "devices", "may not use any device yet")
	e.command(t, ctx, bob, bobDM, "grant pi/temp @bob:localhost read-write", "FORBIDDEN")
	e.command(t, ctx, admin, mgmt, "grant pi/temp @bob:localhost read-only", "read-only access")
	if got := invitedTo(t, ctx, bob, "Kitchen"); got != portal {
		t.Fatalf("bob was invited to %s, not the portal %s", got, portal)
	}
	e.command(t, ctx, bob, bobDM, "lock pi/temp", "FORBIDDEN") // read-only
	e.command(t, ctx, admin, mgmt, "deny pi/temp @bob:localhost", "grant")
	waitFor(t, ctx, "bob to leave the portal", func() bool {
		var m event.MemberEventContent
		err := admin.StateEvent(ctx, portal, event.StateMember, bob.UserID.String(), &m)
		return err == nil && (m.Membership == event.MembershipLeave || m.Membership == event.MembershipBan)
	})

	// A family node reaches the hub through Matrix: its session's frames
	// are room events between it and the bot.
	t.Run("SessionThroughTheBridge", func(t *testing.T) {
		pi, room, conn := e.roomWithBot(t, ctx, "pi")
		syncCtx, stopSync := context.WithCancel(ctx)
		defer stopSync()
		go pi.SyncWithContext(syncCtx)
		c, err := config.Load(filepath.Join(e.dir, "pi.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		c.DataDir = filepath.Join(e.dir, "pi")
		s, cli := dialThroughBridge(t, ctx, conn, c)
		rep, err := cli.Call(ctx, wire.OpDeviceList, ops.Request{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Devices) == 0 || rep.Devices[0].ID != "pi/temp" {
			t.Fatalf("devices through the bridge: %+v", rep.Devices)
		}
		s.Close(ctx)

		// Rude frame events are counted and dropped; the bridge carries on.
		for _, content := range []map[string]any{{"frame": "!!not base64!!"}, {"frame": 42}, {}} {
			if _, err := pi.SendMessageEvent(ctx, room, matrixconn.FrameType, content); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, ctx, "the malformed frame events to be counted", func() bool {
			return regexp.MustCompile(`myclerk_matrix_frame_events_total\{direction="in",result="malformed"\} 3`).MatchString(httpGet(t, e.metrics))
		})
		if !regexp.MustCompile(`myclerk_matrix_frame_events_total\{direction="in",result="accepted"\} [1-9]`).MatchString(httpGet(t, e.metrics)) {
			t.Error("the accepted frame events are not counted")
		}
	})

	// The homeserver retries a transaction: it is applied once, also
	// after a restart.
	token := fmt.Sprintf("bogus%d", time.Now().UnixNano())
	txn := map[string]any{"events": []map[string]any{{
		"type": "m.room.message", "room_id": mgmt, "sender": admin.UserID, "event_id": "$" + token + ":localhost",
		"origin_server_ts": time.Now().UnixMilli(), "content": map[string]any{"msgtype": "m.text", "body": "grant pi/temp @bob:localhost " + token},
	}}}
	put := func() {
		t.Helper()
		b, _ := json.Marshal(txn)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, e.asURL+"/_matrix/app/v1/transactions/"+token, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+e.hsToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("transaction answered %d", resp.StatusCode)
		}
	}
	countReplies := func() int {
		n := 0
		for _, b := range notices(t, ctx, admin, mgmt, e.bot) {
			if strings.Contains(b, token) {
				n++
			}
		}
		return n
	}
	put()
	waitFor(t, ctx, "the transaction's command to be answered", func() bool { return countReplies() == 1 })
	put()
	e.stopHub(t)
	e.startHub(t)
	put()
	e.command(t, ctx, admin, mgmt, "devices", "pi/temp") // the bridge carries on after the restart
	time.Sleep(time.Second)
	if n := countReplies(); n != 1 {
		t.Errorf("a retried transaction was answered %d times", n)
	}
	if h := httpGet(t, strings.TrimSuffix(e.metrics, "metrics")+"health"); !strings.Contains(h, `"status":"ok"`) {
		t.Errorf("health: %s", h)
	}
	if m := httpGet(t, e.metrics); !regexp.MustCompile(`myclerk_matrix_transactions_total\{result="duplicate"\} [1-9]`).MatchString(m) {
		t.Errorf("the metrics do not count the duplicate transaction")
	}
}
