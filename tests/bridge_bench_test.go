package tests

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/wire"
)

// BenchmarkBridgeRoundTrip measures a request through the appservice: a
// family member's syncing client sends a Tier 3 DEVICE_LIST in an
// eu.myclerk.frame event, the homeserver pushes it to the bridge, the hub
// answers, the bot sends the answer back and the client syncs it
// ("frame"). The baseline of the same run, on the same homeserver, is a
// plain m.room.message echoed by a second syncing client ("message"). It
// needs Dendrite (tests/run builds it) and reports p50/p99 in ms.
func BenchmarkBridgeRoundTrip(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newBridgeEnv(b)

	// A family member (a client identity) that reaches the hub through a
	// room with the bot.
	code := regexp.MustCompile(`[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}`).FindString(
		runBin(b, e.dir, "invite", "-config", e.hubCfg, "-role", "client").stdout)
	if r := runBin(b, e.dir, "pair", "-hub", e.tcp, "-code", code, "-name", "phone", "-role", "client", "-data", "./phone"); r.code != 0 {
		b.Fatalf("pair: %s %s", r.stdout, r.stderr)
	}
	c := config.Default()
	c.Role, c.Name, c.DataDir = "node", "phone", filepath.Join(e.dir, "phone")
	phone, _, conn := e.roomWithBot(b, ctx, "phone")

	// The baseline: two users of the same homeserver, one echoing.
	alice, bob := matrixUser(b, ctx, e.hs, "alice"), matrixUser(b, ctx, e.hs, "bob")
	echoRoom, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, echoRoom.RoomID); err != nil {
		b.Fatal(err)
	}
	message := messageEcho(ctx, alice, bob, echoRoom.RoomID, 10*time.Second)
	for _, cli := range []*mautrix.Client{phone, alice, bob} {
		go cli.SyncWithContext(ctx)
	}

	_, cli := dialThroughBridge(b, ctx, conn, c)

	b.Run("frame", func(b *testing.B) {
		var d []time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := cli.Call(ctx, wire.OpDeviceList, ops.Request{}); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t0))
		}
		reportLatency(b, d)
	})
	b.Run("message", message)
}
