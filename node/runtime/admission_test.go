package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// sessionInit is a fresh SESSION_INIT frame, as any dialer sends first.
func sessionInit(t *testing.T) []byte {
	t.Helper()
	priv, err := wire.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	init := payload.SessionInit{Nonce: nonce, Timestamp: uint64(time.Now().Unix()), RequestedTier: 3, HasRequestedTier: true}
	body, err := init.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	f, err := wire.AppendHandshake(nil, &wire.Header{Tier: wire.Tier4, Op: wire.OpSessionInit, Timestamp: uint32(time.Now().Unix()),
		PublicKey: [32]byte(priv.PublicKey().Bytes())}, body)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestNATSAdmissionIsSeparate: an enrolled node on NATS opens handshakes
// from as many made-up reply subjects (each a source of its own) as the
// hub has slots and never finishes them; NATS handshakes are refused
// while they last, but TCP ones still go through: NATS has a cap of its
// own (PROFILE.md §P41 rule 4).
func TestNATSAdmissionIsSeparate(t *testing.T) {
	c := config.Default()
	c.DataDir = t.TempDir()
	c.Listen = config.Listen{TCP: "127.0.0.1:0", NATS: "127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := StartHub(ctx, c, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	pi, err := h.IssueMember(ctx, "pi", identity.RoleNode)
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := h.IssueMember(ctx, "mallory", identity.RoleNode)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := transport.NATSCredentials(mallory.Private)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(h.Addrs["nats"], creds)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	family := h.Root.Family().String()
	accept := transport.AcceptSubject(family, HubNATSNode)
	for range session.MaxHandshakes {
		reply := "myclerk." + family + "." + randomHex(32) + ".c." + randomHex(16)
		if err := nc.PublishMsg(&nats.Msg{Subject: accept, Reply: reply, Data: sessionInit(t)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	open := func(url string) error {
		ep, err := ParseEndpoint(url)
		if err != nil {
			t.Fatal(err)
		}
		mc := config.Default()
		mc.Name = "pi"
		octx, ocancel := context.WithTimeout(ctx, 3*time.Second)
		defer ocancel()
		s, done, err := Open(octx, mc, ep, pi, h.Root.Public(), nil, zerolog.Nop())
		if err == nil {
			s.Close(octx)
			done()
		}
		return err
	}
	// Wait until the flood holds NATS's slots: a NATS handshake is refused.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := open(h.Addrs["nats"])
		if err != nil && strings.Contains(err.Error(), "too many handshakes") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NATS handshakes still admitted under the flood: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := open(h.Addrs["tcp"]); err != nil {
		t.Fatalf("a TCP handshake while NATS's slots are held: %v", err)
	}
}
