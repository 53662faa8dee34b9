package tests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// startSensorNode pairs a node "pi" with a simulated sensor with e's hub
// (a code from `invite`, as on the hub's machine) and runs it.
func (e *bridgeEnv) startSensorNode(t testing.TB) {
	code := regexp.MustCompile(`[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}`).FindString(
		runBin(t, e.dir, "invite", "-config", e.hubCfg, "-role", "node").stdout)
	nodeCfg := fmt.Sprintf("role: node\nname: pi\ndata_dir: ./pi\nhub: {tcp: %q}\ndevices: {sensors: [{id: temp, name: Kitchen, base: 19, interval: 1s}]}\n", strings.TrimPrefix(e.tcp, "tcp://"))
	os.WriteFile(filepath.Join(e.dir, "pi.yaml"), []byte(nodeCfg), 0o600)
	if r := runBin(t, e.dir, "pair", "-config", "pi.yaml", "-hub", e.tcp, "-code", code); r.code != 0 {
		t.Fatalf("pair: %s %s", r.stdout, r.stderr)
	}
	start(t, e.dir, "node", "-config", "pi.yaml")
}

var codeRe = regexp.MustCompile(`code with the other family's admin[^:]*: (\d{3} \d{3})`)

// TestFederationThroughMatrix: two families, each with its own homeserver
// and bridge, federate over Matrix federation: they meet in a room, each
// admin confirms the same code, and then family B uses exactly the
// device family A granted it, through a Tier 4 session whose sealed frames
// cross both homeservers; a revoke ends it.
func TestFederationThroughMatrix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	a, b := newBridgeEnvWith(t, true), newBridgeEnvWith(t, true)
	a.startSensorNode(t)
	adminA, adminB := matrixUser(t, ctx, a.hs, "admin"), matrixUser(t, ctx, b.hs, "admin")
	mgmtA, mgmtB := a.dm(t, ctx, adminA), b.dm(t, ctx, adminB)
	waitFor(t, ctx, "family A's sensor", func() bool {
		return strings.Contains(a.command(t, ctx, adminA, mgmtA, "devices", "device"), "pi/temp")
	})

	a.command(t, ctx, adminA, mgmtA, "federation invite grandkids not-a-user", "not a Matrix user ID")
	a.command(t, ctx, adminA, mgmtA, "federation verify nobody 123456", "no federation is called")
	e := a.command(t, ctx, adminA, mgmtA, "federation invite grandkids "+b.bot.String(), "federation room")
	room := regexp.MustCompile(`![A-Za-z0-9]+:127\.0\.0\.1:\d+`).FindString(e)
	if room == "" {
		t.Fatalf("no room in %q", e)
	}
	b.command(t, ctx, adminB, mgmtB, "federation accept grandparents "+room, "Joined")
	// Each new session shows a new code; the admins compare the latest.
	var code string
	waitFor(t, ctx, "the same code on both sides", func() bool {
		ca, cb := latestCode(t, ctx, a, adminA, mgmtA), latestCode(t, ctx, b, adminB, mgmtB)
		code = ca
		return ca != "" && ca == cb
	})

	// Nothing crosses before both have confirmed.
	b.command(t, ctx, adminB, mgmtB, "remote grandparents devices", "FEDERATION_UNTRUSTED")
	b.command(t, ctx, adminB, mgmtB, "federation verify grandparents 000000", "does not match")
	b.command(t, ctx, adminB, mgmtB, "federation verify grandparents "+code, "Confirmed")
	b.command(t, ctx, adminB, mgmtB, "remote grandparents devices", "FEDERATION_UNTRUSTED") // A has not confirmed
	a.command(t, ctx, adminA, mgmtA, "federation verify grandkids "+code, "Confirmed")

	// Confirmed: B sees what A granted, nothing more.
	b.command(t, ctx, adminB, mgmtB, "remote grandparents devices", "may not use any device")
	b.command(t, ctx, adminB, mgmtB, "remote grandparents info pi/temp", "NOT_FOUND") // ungranted looks like missing
	a.command(t, ctx, adminA, mgmtA, "federation grant grandkids pi/temp read-only", "read-only access")
	if got := b.command(t, ctx, adminB, mgmtB, "remote grandparents devices", "devices"); !strings.Contains(got, "pi/temp") {
		t.Fatalf("B does not see the granted device: %s", got)
	}
	b.command(t, ctx, adminB, mgmtB, "remote grandparents info pi/temp", "read-only")
	b.command(t, ctx, adminB, mgmtB, "remote grandparents lock pi/temp", "FORBIDDEN")
	b.command(t, ctx, adminB, mgmtB, "remote grandparents subscribe pi/temp", "Subscribed")
	b.notice(t, ctx, adminB, mgmtB, "grandparents:pi/temp: reading")
	a.command(t, ctx, adminA, mgmtA, "federation list", "confirmed")
	if m := httpGet(t, a.metrics); !strings.Contains(m, `myclerk_matrix_federations{state="confirmed"} 1`) {
		t.Error("the metrics do not count the confirmed federation")
	}

	// B's bridge restarts: it dials again with its pinned key, A's bridge
	// answers the new session at once, and nobody confirms anything again.
	b.stopHub(t)
	b.startHub(t)
	waitFor(t, ctx, "the federation after B's restart", func() bool {
		return strings.Contains(b.command(t, ctx, adminB, mgmtB, "remote grandparents devices", ""), "pi/temp")
	})
	// A's bridge restarts: it closes the session as it stops, so B dials
	// again as soon as A is back.
	a.stopHub(t)
	a.startHub(t)
	waitFor(t, ctx, "the federation after A's restart", func() bool {
		return strings.Contains(b.command(t, ctx, adminB, mgmtB, "remote grandparents devices", ""), "pi/temp")
	})

	// A revokes: the session ends and B can no longer reach A's devices.
	a.command(t, ctx, adminA, mgmtA, "federation revoke grandkids", "Revoked")
	waitFor(t, ctx, "B to lose the federation", func() bool {
		r := b.command(t, ctx, adminB, mgmtB, "remote grandparents devices", "")
		return !strings.Contains(r, "pi/temp")
	})
}

// latestCode is the last federation code the bot told cli in room ("" if
// none yet).
func latestCode(t testing.TB, ctx context.Context, e *bridgeEnv, cli *mautrix.Client, room id.RoomID) string {
	code := ""
	for _, n := range notices(t, ctx, cli, room, e.bot) {
		if m := codeRe.FindStringSubmatch(n); m != nil {
			code = m[1]
		}
	}
	return code
}

// notice waits for a notice from the bot in room that contains want.
func (e *bridgeEnv) notice(t testing.TB, ctx context.Context, cli *mautrix.Client, room id.RoomID, want string) string {
	t.Helper()
	var got string
	waitFor(t, ctx, fmt.Sprintf("a notice containing %q", want), func() bool {
		for _, n := range notices(t, ctx, cli, room, e.bot) {
			if strings.Contains(n, want) {
				got = n
				return true
			}
		}
		return false
	})
	return got
}
