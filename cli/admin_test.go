package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/runtime"
	"github.com/myclerk/myclerk-bridge/node/store"
)

// TestNodesAndRevoke: `nodes` shows a name an old database holds with its
// escape sequence escaped, and `revoke` takes a name or a node ID.
func TestNodesAndRevoke(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "hub.yaml")
	if err := os.WriteFile(cfgFile, []byte("role: hub\nname: hub\ndata_dir: "+filepath.Join(dir, "data")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := runtime.OpenStore(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	evil := "evil\x1b]0;owned\x07\x1b[2J"
	for i, name := range []string{evil, "pi", "nas"} {
		n := &store.Node{ID: identity.NodeID{byte(i + 1)}, Name: name, Role: identity.RoleClient, Certificate: []byte("c"), EnrolledAt: time.Now()}
		if err := st.Nodes.Put(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := adminMain(args[0], append([]string{"-config", cfgFile}, args[1:]...), Env{Stdout: &out, Stderr: &errOut})
		return code, out.String() + errOut.String()
	}
	for _, tc := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"nodes"}, 0, `evil\x1b]0;owned\x07\x1b[2J`},
		{[]string{"revoke", identity.NodeID{2}.String()}, 0, "Revoked pi"},
		{[]string{"revoke", "pi"}, 1, "no enrolled, unrevoked node"},
		{[]string{"revoke", "NAS"}, 0, "Revoked nas"},
		{[]string{"revoke", evil}, 0, `Revoked evil\x1b`},
		{[]string{"revoke", "nobody\x1b[2J"}, 1, `nobody\x1b[2J`},
	} {
		code, out := run(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.contains) {
			t.Errorf("%q: exit %d, output %q; want exit %d with %q", tc.args, code, out, tc.code, tc.contains)
		}
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("%q: raw control characters in %q", tc.args, out)
		}
	}
}

// TestInviteName: `invite -name alice` prints a code that enrols alice,
// an admin, at a running hub and refuses another name; a Matrix user ID
// or an invalid name cannot be bound.
func TestInviteName(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "hub.yaml")
	yaml := "role: hub\nname: hub\ndata_dir: " + filepath.Join(dir, "data") +
		"\nlisten: {tcp: 127.0.0.1:0, websocket: '', nats: '', metrics: ''}\nacl: {admins: [alice]}\n"
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h, err := runtime.StartHub(ctx, c, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); h.Wait() })
	ep, err := runtime.ParseEndpoint(h.Addrs["tcp"])
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := adminMain("invite", append([]string{"-config", cfgFile}, args...), Env{Stdout: &out, Stderr: &errOut})
		return code, out.String() + errOut.String()
	}
	for _, bad := range []string{"@alice:example.com", "two words"} {
		if code, out := run("-role", "client", "-name", bad); code != 2 || !strings.Contains(out, "-name") {
			t.Errorf("invite -name %q: exit %d, %q; want exit 2 naming -name", bad, code, out)
		}
	}
	code, out := run("-role", "client", "-name", "alice")
	pc := regexp.MustCompile(`[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}`).FindString(out)
	if code != 0 || pc == "" || !strings.Contains(out, "client alice (that name only)") {
		t.Fatalf("invite -name alice: exit %d, %q", code, out)
	}
	pairing, err := identity.ParsePairingCode(pc)
	if err != nil {
		t.Fatal(err)
	}
	pair := func(name string) (*identity.Identity, error) {
		m := config.Default()
		m.Role, m.Name, m.DataDir = "node", name, t.TempDir()
		return runtime.Pair(ctx, m, ep, pairing, identity.RoleClient, false, zerolog.Nop())
	}
	if _, err := pair("mallory"); err == nil || !strings.Contains(err.Error(), "FORBIDDEN") || !strings.Contains(err.Error(), "for another name") {
		t.Errorf("pair as mallory with alice's code: %v", err)
	}
	if id, err := pair("alice"); err != nil || id.Cert.Name != "alice" {
		t.Errorf("pair as alice with her code: %v", err)
	}
}
