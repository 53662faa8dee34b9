package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
