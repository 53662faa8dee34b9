package tests

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myclerk/myclerk-bridge/bridge"
	"github.com/myclerk/myclerk-bridge/commands"
	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/runtime"
	"github.com/myclerk/myclerk-bridge/wire"
)

// startBridgeInProcess runs e's hub and bridge in the test process, so a
// benchmark can call the bridge directly.
func (e *bridgeEnv) startBridgeInProcess(t testing.TB, ctx context.Context) *bridge.Bridge {
	c, err := config.Load(filepath.Join(e.dir, e.hubCfg))
	if err != nil {
		t.Fatal(err)
	}
	c.DataDir = filepath.Join(e.dir, "hub")
	log := zerolog.Nop()
	h, err := runtime.StartHub(ctx, c, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := bridge.LoadSettings(c, h.Root, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bridge.Start(ctx, s, h, commands.Register, log)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkFederationRoundTrip measures the round trip: bridge B
// sends a Tier 4 DEVICE_LIST in a frame event through its homeserver,
// Matrix federation carries it to family A's homeserver, which pushes it
// to bridge A; hub A answers, and the answer goes back the same way
// ("frame"). The baseline of the same run is a plain m.room.message
// between a user of each homeserver, echoed by the other ("message"),
// through the same two federating homeservers. It needs Dendrite (tests/run
// builds it) and reports p50/p99 in ms.
func BenchmarkFederationRoundTrip(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ea, eb := newBridgeEnvWith(b, true), prepareBridgeEnv(b, true)
	ea.startSensorNode(b)
	bridgeB := eb.startBridgeInProcess(b, ctx)
	adminA, adminB := matrixUser(b, ctx, ea.hs, "admin"), matrixUser(b, ctx, eb.hs, "admin")
	mgmtA, mgmtB := ea.dm(b, ctx, adminA), eb.dm(b, ctx, adminB)
	room := regexp.MustCompile(`![A-Za-z0-9]+:127\.0\.0\.1:\d+`).FindString(
		ea.command(b, ctx, adminA, mgmtA, "federation invite kids "+eb.bot.String(), "federation room"))
	eb.command(b, ctx, adminB, mgmtB, "federation accept parents "+room, "Joined")
	var code string
	waitFor(b, ctx, "the same code on both sides", func() bool {
		ca, cb := latestCode(b, ctx, ea, adminA, mgmtA), latestCode(b, ctx, eb, adminB, mgmtB)
		code = ca
		return ca != "" && ca == cb
	})
	ea.command(b, ctx, adminA, mgmtA, "federation verify kids "+code, "Confirmed")
	eb.command(b, ctx, adminB, mgmtB, "federation verify parents "+code, "Confirmed")
	ea.command(b, ctx, adminA, mgmtA, "federation grant kids pi/temp read-only", "read-only access")
	cli, err := bridgeB.Network.Federations.Client("parents")
	if err != nil {
		b.Fatal(err)
	}

	// The baseline: a user on each homeserver, one echoing the other.
	alice, bob := matrixUser(b, ctx, ea.hs, "alice"), matrixUser(b, ctx, eb.hs, "bob")
	echoRoom, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
	if err != nil {
		b.Fatal(err)
	}
	waitFor(b, ctx, "bob to join over federation", func() bool {
		_, err := bob.JoinRoomByID(ctx, echoRoom.RoomID)
		return err == nil
	})
	message := messageEcho(ctx, alice, bob, echoRoom.RoomID, 20*time.Second)
	go alice.SyncWithContext(ctx)
	go bob.SyncWithContext(ctx)

	b.Run("frame", func(b *testing.B) {
		var d []time.Duration
		for b.Loop() {
			t0 := time.Now()
			r, err := cli.Call(ctx, wire.OpDeviceList, ops.Request{})
			if err != nil || len(r.Devices) != 1 {
				b.Fatalf("%v %+v", err, r)
			}
			d = append(d, time.Since(t0))
		}
		reportLatency(b, d)
	})
	b.Run("message", message)
}
