package cli

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/node/hub"
	"github.com/myclerk/myclerk-bridge/node/hub/hubtest"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/keystore"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/node/transport"
)

// TestClientRequestTimesOut: a hub that completes the handshake and then
// never answers makes `client devices` fail after -timeout with a message
// saying so, instead of hanging.
func TestClientRequestTimesOut(t *testing.T) {
	w := hubtest.New(t, hub.Config{}) // its identities; the hub below is the test's own
	dir := t.TempDir()
	keys := keystore.Dir(filepath.Join(dir, "keys"))
	if err := keys.SaveIdentity(w.Member(identity.RoleClient, "phone")); err != nil {
		t.Fatal(err)
	}
	if err := keys.SaveRootPublic(w.Root.Public()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := (&session.Responder{Config: w.Config(w.HubID)}).Accept(ctx, transport.NewStream(c))
		if err != nil {
			return
		}
		for { // read, never answer
			if _, err := s.Recv(ctx); err != nil {
				return
			}
		}
	}()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := Main([]string{"client", "-data", dir, "-hub", "tcp://" + ln.Addr().String(), "-timeout", "500ms", "devices"},
		Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
	if code != 1 || !strings.Contains(stderr.String(), "no answer from the hub within 500ms") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
	cancel()
	<-served
}
