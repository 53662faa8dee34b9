package session

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

var (
	capsAES    = Capabilities(true)  // AES-256-GCM, ChaCha20-Poly1305, fragmentation
	capsChaCha = Capabilities(false) // ChaCha20-Poly1305, fragmentation
	// Offers both but prefers ChaCha20-Poly1305: as a responder it picks it.
	capsChaChaFirst = []payload.Capability{payload.CapChaCha20, payload.CapAES256GCM, payload.CapFragmentation}
)

// PROFILE.md §P23: AES-256-GCM only when both ends offered it, with the
// responder's order deciding; ChaCha20-Poly1305 otherwise. Traffic flows
// both ways under the cipher both ends report, including after a
// rotation and a re-handshake, which keep it.
func TestAEADNegotiation(t *testing.T) {
	f := newFamily(t)
	for _, tc := range []struct {
		name           string
		client, server []payload.Capability
		want           wire.AEAD
	}{
		{"both offer AES", capsAES, capsAES, wire.AES256GCM},
		{"client without AES hardware", capsChaCha, capsAES, wire.ChaCha20Poly1305},
		{"server without AES hardware", capsAES, capsChaCha, wire.ChaCha20Poly1305},
		{"server prefers ChaCha20", capsAES, capsChaChaFirst, wire.ChaCha20Poly1305},
		{"client order does not decide", capsChaChaFirst, capsAES, wire.AES256GCM},
		{"client offers nothing", nil, capsAES, wire.ChaCha20Poly1305},
		{"client offers only AES", []payload.Capability{payload.CapAES256GCM}, capsAES, wire.AES256GCM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ccfg, scfg := f.config(f.node, wire.Tier4), f.config(f.hub, wire.Tier4)
			ccfg.Capabilities, scfg.Capabilities = tc.client, tc.server
			cc, sc := transport.Pipe()
			p, cerr, serr := connect(t, cc, sc, ccfg, &Responder{Config: scfg})
			if cerr != nil || serr != nil {
				t.Fatalf("handshake: %v / %v", cerr, serr)
			}
			if p.client.AEAD() != tc.want || p.server.AEAD() != tc.want || p.client.Status().AEAD != tc.want {
				t.Fatalf("client %v, server %v, want %v", p.client.AEAD(), p.server.AEAD(), tc.want)
			}
			ctx := context.Background()
			exchange := func(step string) {
				t.Helper()
				for _, dir := range []struct{ from, to *Session }{{p.client, p.server}, {p.server, p.client}} {
					if err := dir.from.Send(ctx, wire.OpStreamData, []byte(step)); err != nil {
						t.Fatalf("%s: %v", step, err)
					}
					if m := recv(t, dir.to); string(m.Payload) != step {
						t.Fatalf("%s: got %q", step, m.Payload)
					}
				}
			}
			exchange("first")
			if err := p.client.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
			exchange("after rotation")
			// The server echoes while the client runs a re-handshake; the
			// echo arrives under the new keys.
			go func() {
				for {
					m, err := p.server.Recv(ctx)
					if err != nil || p.server.Send(ctx, m.Op, m.Payload) != nil {
						return
					}
				}
			}()
			if err := p.client.Rekey(ctx); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if err := p.client.Send(ctx, wire.OpStreamData, []byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
				if m := recv(t, p.client); len(m.Payload) != 1 || m.Payload[0] != byte(i) {
					t.Fatalf("echo %d after rekey: %v", i, m.Payload)
				}
			}
			if p.client.Rekeys() != 1 || p.client.AEAD() != tc.want {
				t.Errorf("after rekey: %d key exchanges, %v", p.client.Rekeys(), p.client.AEAD())
			}
			p.client.conn.Close()
		})
	}
}

// A responder that selects a capability the initiator did not offer (here
// AES-256-GCM) is refused: the initiator would otherwise seal with a
// cipher it never agreed to.
func TestSelectedCapabilityNotOffered(t *testing.T) {
	if _, err := selectedAEAD(capsChaCha, capsAES); !errors.Is(err, ErrHandshake) {
		t.Errorf("AES selected without an offer: %v", err)
	}
	if a, err := selectedAEAD(capsAES, []payload.Capability{payload.CapAES256GCM}); err != nil || a != wire.AES256GCM {
		t.Errorf("AES offered and selected: %v %v", a, err)
	}
	if a, err := selectedAEAD(capsAES, nil); err != nil || a != wire.ChaCha20Poly1305 {
		t.Errorf("nothing selected: %v %v", a, err)
	}
}

// A resumed session negotiates its capabilities again (SESSION_RESUME
// offers them, SESSION_RESUMED selects): the cipher follows what both ends
// offer now, not what the ticket's session had.
func TestResumeNegotiatesAEAD(t *testing.T) {
	f := newFamily(t)
	r := ticketResponder(t, f)
	r.Config.Capabilities = capsAES
	_, tk := firstTicket(t, f, r) // client offers ChaCha20-Poly1305 only
	ctx := context.Background()
	for _, tc := range []struct {
		client []payload.Capability
		want   wire.AEAD
	}{{capsAES, wire.AES256GCM}, {capsChaCha, wire.ChaCha20Poly1305}, {nil, wire.ChaCha20Poly1305}} {
		cc, sc := transport.Pipe()
		ccfg := f.config(f.node, wire.Tier4)
		ccfg.Capabilities = tc.client
		ch := make(chan *Session, 1)
		go func() { s, _ := r.Accept(ctx, sc); ch <- s }()
		cs, err := Resume(ctx, cc, ccfg, tk)
		ss := <-ch
		if err != nil || ss == nil {
			t.Fatalf("resume offering %v: %v", tc.client, err)
		}
		if cs.AEAD() != tc.want || ss.AEAD() != tc.want {
			t.Errorf("resume offering %v: client %v, server %v, want %v", tc.client, cs.AEAD(), ss.AEAD(), tc.want)
		}
		if tc.client != nil && !slices.Equal(cs.Status().Capabilities, ss.Status().Capabilities) {
			t.Errorf("capabilities differ: %v / %v", cs.Status().Capabilities, ss.Status().Capabilities)
		}
		if err := cs.Send(ctx, wire.OpDeviceList, []byte("resumed")); err != nil {
			t.Fatal(err)
		}
		if m := recv(t, ss); string(m.Payload) != "resumed" {
			t.Fatalf("%+v", m)
		}
		var ok bool
		if tk, ok = cs.Ticket(); !ok {
			t.Fatal("no ticket after resuming")
		}
	}
}
