package tests

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/cli"
	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/runtime"
	"github.com/myclerk/myclerk-bridge/node/store"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
)

// TestExternalNATSWithGeneratedCredentials: a family runs its own
// nats-server with the authorization block `myclerk-bridge nats-config`
// writes; the hub and an enrolled node sign in with their identity keys
// and a session runs through it, while a client without credentials is
// refused and the node cannot read the hub's subjects.
func TestExternalNATSWithGeneratedCredentials(t *testing.T) {
	bin := natsBinary()
	if bin == "" {
		t.Skip("no nats-server binary")
	}
	dir := t.TempDir()
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	cfgPath := filepath.Join(dir, "hub.yaml")
	yaml := fmt.Sprintf("role: hub\nname: nas\ndata_dir: %s\nlisten: {tcp: '127.0.0.1:0', websocket: '', nats: '', metrics: ''}\nnats: {url: %q}\n", filepath.Join(dir, "hub"), url)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	// The family's keys and one enrolled node, as pairing leaves them.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, pi := familyWithMember(t, ctx, c, identity.RoleNode, "pi")

	// The authorization block, from the command line, into the server's config.
	var out, errOut bytes.Buffer
	if code := cli.Main([]string{"nats-config", "-config", cfgPath}, cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}); code != 0 {
		t.Fatalf("nats-config: %d %s", code, errOut.String())
	}
	if n := strings.Count(out.String(), "nkey: U"); n != 2 {
		t.Fatalf("want the hub's and pi's keys, got %d:\n%s", n, out.String())
	}
	serverCfg := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(serverCfg, []byte(fmt.Sprintf("listen: 127.0.0.1:%d\n%s", port, out.String())), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", serverCfg)
	var serverLog bytes.Buffer
	cmd.Stderr = &serverLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("nats-server did not start: %s", serverLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	if nc, err := nats.Connect(url); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("a client without credentials: %v", err)
	}
	// So a process without a key cannot replay SESSION_INITs at the hub:
	// it never gets to publish.

	h, err := runtime.StartHub(ctx, c, zerolog.Nop())
	if err != nil {
		t.Fatalf("the hub on the family's nats-server: %v", err)
	}
	ep, err := runtime.ParseEndpoint(url)
	if err != nil {
		t.Fatal(err)
	}
	ncfg := config.Default()
	ncfg.Name = "pi"
	s, done, err := runtime.Open(ctx, ncfg, ep, pi, h.Root.Public(), nil, zerolog.Nop())
	if err != nil {
		t.Fatalf("pi's session through nats-server: %v", err)
	}
	defer done()
	if err := s.Send(ctx, wire.OpDeviceList, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(ctx); err != nil {
		t.Fatalf("the hub's answer: %v", err)
	}
	s.Close(ctx)

	// pi may not read the hub's accept subject (where other nodes'
	// SESSION_INITs arrive).
	creds, err := transport.NATSCredentials(pi.Private)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	nc, err := nats.Connect(url, creds, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	accept := transport.AcceptSubject(h.Root.Family().String(), runtime.HubNATSNode)
	if _, err := nc.SubscribeSync(accept); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "Permissions Violation") {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("pi subscribed to %s", accept)
	}
}

// familyWithMember makes c's family as a hub's first start does (its keys
// in c's key directory, its database) and enrols one member in it, as
// pairing would leave it.
func familyWithMember(t *testing.T, ctx context.Context, c *config.Config, role identity.Role, name string) (*identity.Root, *identity.Identity) {
	t.Helper()
	root, _, err := runtime.LoadOrCreateFamily(c, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	priv, nodeID, err := identity.NewNodeKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := root.Issue(nodeID, role, name, priv.Public().(ed25519.PublicKey), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st, err := runtime.OpenStore(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, _ := cert.Marshal()
	if err := st.Nodes.Put(ctx, &store.Node{ID: nodeID, Name: name, Role: role, Certificate: b, EnrolledAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return root, &identity.Identity{Cert: cert, Private: priv}
}
