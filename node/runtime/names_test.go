package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/keystore"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
)

// testHub starts a hub on TCP with admins "alice" and the Matrix user
// "@you:example.com" in a temporary data directory.
func testHub(t *testing.T) (*Hub, Endpoint) {
	t.Helper()
	c := config.Default()
	c.DataDir = t.TempDir()
	c.Listen = config.Listen{TCP: "127.0.0.1:0"}
	c.ACL.Admins = []string{"alice", "@you:example.com"}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h, err := StartHub(ctx, c, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ep, err := ParseEndpoint(h.Addrs["tcp"])
	if err != nil {
		t.Fatal(err)
	}
	return h, ep
}

func memberConfig(t *testing.T, name string) *config.Config {
	c := config.Default()
	c.Role, c.Name, c.DataDir = "node", name, t.TempDir()
	return c
}

func invite(t *testing.T, h *Hub, role identity.Role) identity.PairingCode {
	t.Helper()
	return inviteFor(t, h, role, "")
}

// inviteFor makes a code bound to name ("" for none).
func inviteFor(t *testing.T, h *Hub, role identity.Role, name string) identity.PairingCode {
	t.Helper()
	code, err := Invite(context.Background(), h.Store, role, name)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func pending(t *testing.T, h *Hub) int {
	t.Helper()
	n, err := h.Store.Codes.Pending(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEnrolmentNames: through a real hub, a client cannot enrol under an
// admin's name (in any case), the hub's name or an invalid one; each
// refusal is clear and leaves the code for a retry under another name.
// IssueMember (the bridge's members) follows the same rules.
func TestEnrolmentNames(t *testing.T) {
	ctx := context.Background()
	h, ep := testHub(t)
	if _, err := Pair(ctx, memberConfig(t, "alice"), ep, inviteFor(t, h, identity.RoleClient, "alice"), identity.RoleClient, false, zerolog.Nop()); err != nil {
		t.Fatalf("pair alice: %v", err)
	}
	code := invite(t, h, identity.RoleClient)
	for _, tc := range []struct {
		name string
		want wire.Code
	}{
		{"alice", wire.CodeConflict},
		{"Alice", wire.CodeConflict},
		{"hub", wire.CodeConflict}, // the hub's own name
		{"nas@1a2b3c4d", wire.CodeBadRequest},
		{"alice\x1b[2J", wire.CodeBadRequest},
	} {
		_, err := Pair(ctx, memberConfig(t, tc.name), ep, code, identity.RoleClient, false, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), tc.want.String()) {
			t.Errorf("pair as %q: %v, want %v", tc.name, err, tc.want)
		}
		if tc.want == wire.CodeConflict && !strings.Contains(err.Error(), "is taken") {
			t.Errorf("pair as %q: unclear refusal %v", tc.name, err)
		}
		if n := pending(t, h); n != 1 {
			t.Errorf("after pairing as %q %d codes pending, want 1", tc.name, n)
		}
	}
	id, err := Pair(ctx, memberConfig(t, "bob"), ep, code, identity.RoleClient, false, zerolog.Nop())
	if err != nil || id.Cert.Name != "bob" {
		t.Fatalf("retry as bob: %v", err)
	}

	for _, tc := range []struct {
		name string
		want error
	}{
		{"@carol:example.com", nil},
		{"@carol:example.com", identity.ErrNameTaken},
		{"ALICE", identity.ErrNameTaken},
		{"@carol\x1b:example.com", identity.ErrName},
		{"nas@1a2b3c4d", identity.ErrName},
	} {
		_, err := h.IssueMember(ctx, tc.name, identity.RoleClient)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("IssueMember(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestAdminNamesNeedBoundCodes: through a real hub, an ordinary client
// code cannot take an admin's name (in any case) or any Matrix user ID
// (the bridge's members, an admin's among them); a code bound to the
// admin's name enrols it, refuses another name and stays usable after
// that refusal. Every refusal leaves the codes valid.
func TestAdminNamesNeedBoundCodes(t *testing.T) {
	ctx := context.Background()
	h, ep := testHub(t)
	pair := func(name string, code identity.PairingCode) (*identity.Identity, error) {
		return Pair(ctx, memberConfig(t, name), ep, code, identity.RoleClient, false, zerolog.Nop())
	}
	unbound := invite(t, h, identity.RoleClient)
	bound := inviteFor(t, h, identity.RoleClient, "alice")
	for _, tc := range []struct {
		name  string
		code  identity.PairingCode
		want  wire.Code
		inMsg string
	}{
		{"alice", unbound, wire.CodeForbidden, "invite -name alice"},
		{"Alice", unbound, wire.CodeForbidden, "admin"},
		{"@you:example.com", unbound, wire.CodeBadRequest, "Matrix user ID"},
		{"@someone:example.com", unbound, wire.CodeBadRequest, "Matrix user ID"},
		{"mallory", bound, wire.CodeForbidden, "the pairing code is for another name"},
		{"ALICE", bound, wire.CodeForbidden, "for another name"},
		{"@you:example.com", bound, wire.CodeForbidden, "for another name"},
	} {
		_, err := pair(tc.name, tc.code)
		if err == nil || !strings.Contains(err.Error(), tc.want.String()) || !strings.Contains(err.Error(), tc.inMsg) {
			t.Errorf("pair as %q: %v, want %v with %q", tc.name, err, tc.want, tc.inMsg)
		}
		if n := pending(t, h); n != 2 {
			t.Errorf("after pairing as %q %d codes pending, want 2", tc.name, n)
		}
	}
	id, err := pair("alice", bound)
	if err != nil || id.Cert.Name != "alice" {
		t.Fatalf("pair as alice with her code: %v", err)
	}
	if _, err := pair("bob", bound); err == nil {
		t.Error("the bound code worked twice")
	}
	if id, err := pair("bob", unbound); err != nil || id.Cert.Name != "bob" {
		t.Errorf("pair as bob with the ordinary code: %v", err)
	}
	// The bridge still makes the Matrix admin's member.
	if _, err := h.IssueMember(ctx, "@you:example.com", identity.RoleClient); err != nil {
		t.Errorf("IssueMember(@you:example.com): %v", err)
	}
	// A code cannot be bound to a Matrix user ID or an invalid name.
	for _, tc := range []struct {
		name string
		want error
	}{{"@you:example.com", session.ErrMatrixName}, {"two words", identity.ErrName}, {"nas@1a2b3c4d", identity.ErrName}} {
		if _, err := Invite(ctx, h.Store, identity.RoleClient, tc.name); !errors.Is(err, tc.want) || wire.CodeOf(err) != wire.CodeBadRequest {
			t.Errorf("Invite for %q = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestRepairHandsDevicesOver: a node paired again under its revoked
// predecessor's name owns the predecessor's devices, in the store and in
// the hub's registry (its announcement makes them available again).
func TestRepairHandsDevicesOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, ep := testHub(t)
	announce := func(c *config.Config, id *identity.Identity) func() {
		s, done, err := Open(ctx, c, ep, id, h.Root.Public(), nil, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := ops.Marshal(ops.Announce{Devices: []ops.Device{{ID: "serial0", Kind: "serial", Name: "Serial"}}})
		if err := s.Send(ctx, wire.OpDeviceAnnounce, b); err != nil {
			t.Fatal(err)
		}
		return func() { s.Close(ctx); done() }
	}
	available := func() bool {
		for _, d := range h.Registry.Devices() {
			if d.ID == "pi/serial0" {
				return d.Available
			}
		}
		return false
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	c1 := memberConfig(t, "pi")
	old, err := Pair(ctx, c1, ep, invite(t, h, identity.RoleNode), identity.RoleNode, false, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	closeOld := announce(c1, old)
	waitFor("the first pi's device", available)
	closeOld()
	waitFor("the device to go offline", func() bool { return !available() })
	if err := h.Store.Nodes.Revoke(ctx, old.Cert.Node, time.Now()); err != nil {
		t.Fatal(err)
	}
	h.Registry.RevokeNode(ctx, old.Cert.Node)

	c2 := memberConfig(t, "pi")
	again, err := Pair(ctx, c2, ep, invite(t, h, identity.RoleNode), identity.RoleNode, false, zerolog.Nop())
	if err != nil {
		t.Fatalf("pair again under a revoked name: %v", err)
	}
	d, err := h.Store.Devices.Get(ctx, "pi/serial0")
	if err != nil || d.Owner != again.Cert.Node {
		t.Fatalf("stored device: %+v, %v; want owned by %s", d, err, again.Cert.Node)
	}
	defer announce(c2, again)()
	waitFor("the new pi's announcement to be taken", available)
}

// TestPairRefusesKeys: pair never writes over a hub's key directory, and
// over a node's keys only with -force; a refusal does not use the code.
func TestPairRefusesKeys(t *testing.T) {
	ctx := context.Background()
	h, ep := testHub(t)
	withFile := func(name string) *config.Config {
		c := memberConfig(t, "pi")
		if err := os.MkdirAll(c.KeyDir(), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.KeyDir(), name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return c
	}
	hubDir := memberConfig(t, "pi")
	hubDir.DataDir = h.cfg.DataDir
	code := invite(t, h, identity.RoleNode)
	for _, tc := range []struct {
		what  string
		c     *config.Config
		force bool
		want  error
	}{
		{"node keys", withFile(keystore.NodeKeyFile), false, ErrKeysExist},
		{"a certificate", withFile(keystore.NodeCertFile), false, ErrKeysExist},
		{"a pinned root", withFile(keystore.RootPubFile), false, ErrKeysExist},
		{"a root key", withFile(keystore.RootKeyFile), true, ErrHubKeys},
		{"the hub's data directory", hubDir, true, ErrHubKeys},
		{"the hub's data directory without -force", hubDir, false, ErrHubKeys},
	} {
		if _, err := Pair(ctx, tc.c, ep, code, identity.RoleNode, tc.force, zerolog.Nop()); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.what, err, tc.want)
		}
	}
	if n := pending(t, h); n != 1 {
		t.Fatalf("%d codes pending after the refusals, want 1", n)
	}
	if _, err := Pair(ctx, withFile(keystore.NodeKeyFile), ep, code, identity.RoleNode, true, zerolog.Nop()); err != nil {
		t.Errorf("-force over node keys: %v", err)
	}
	if _, err := keystore.Dir(h.cfg.KeyDir()).LoadIdentity(); err != nil {
		t.Errorf("the hub's identity after the refusals: %v", err)
	}
}
