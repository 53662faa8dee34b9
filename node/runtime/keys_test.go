package runtime

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/node/store"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
)

// enrolWithKey enrols name through the hub at ep with the node key of
// priv (which a real node would never share: enrolment proves nothing
// about the key, which is the point).
func enrolWithKey(ctx context.Context, t *testing.T, ep Endpoint, code identity.PairingCode, name string, priv ed25519.PrivateKey) (*identity.Identity, error) {
	t.Helper()
	conn, done, err := ep.Dial(ctx, identity.FamilyID{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	scfg, err := SessionConfig(memberConfig(t, name), nil, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	// identity.NewNodeKey reads the key's seed, then the node ID.
	id := make([]byte, identity.IDSize)
	rand.Read(id)
	scfg.Rand = io.MultiReader(bytes.NewReader(slices.Concat(priv.Seed(), id)), rand.Reader)
	got, _, err := session.Enrol(ctx, conn, *scfg, code, name, identity.RoleNode)
	return got, err
}

// TestEnrolmentRefusesEnrolledKeys: through a real hub, an enrolment with
// the hub's public key or a live node's is refused with CONFLICT and the
// code stays valid; a revoked node's key is free again.
func TestEnrolmentRefusesEnrolledKeys(t *testing.T) {
	ctx := context.Background()
	h, ep := testHub(t)
	pi, err := Pair(ctx, memberConfig(t, "pi"), ep, invite(t, h, identity.RoleNode), identity.RoleNode, false, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	code := invite(t, h, identity.RoleNode)
	for _, tc := range []struct {
		what string
		key  ed25519.PrivateKey
	}{
		{"the hub's key", h.Identity.Private},
		{"pi's key", pi.Private},
	} {
		_, err := enrolWithKey(ctx, t, ep, code, "evil", tc.key)
		if err == nil || !strings.Contains(err.Error(), wire.CodeConflict.String()) || !strings.Contains(err.Error(), "already enrolled") {
			t.Errorf("enrolment with %s: %v, want CONFLICT, already enrolled", tc.what, err)
		}
		if n := pending(t, h); n != 1 {
			t.Errorf("after the enrolment with %s %d codes pending, want 1", tc.what, n)
		}
	}
	if err := h.Store.Nodes.Revoke(ctx, pi.Cert.Node, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := enrolWithKey(ctx, t, ep, code, "evil", pi.Private); err != nil {
		t.Errorf("enrolment with a revoked node's key: %v", err)
	}
	// What stands between a race and the store: record refuses it too.
	c, err := h.Root.Issue(identity.NodeID{9}, identity.RoleNode, "late", h.Identity.Cert.PublicKey, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.record(ctx, c); wire.CodeOf(err) != wire.CodeConflict {
		t.Errorf("record of a certificate for the hub's key: %v, want CONFLICT", err)
	}
}

// TestNATSUsersDuplicateKeys: a database from before enrolment refused
// enrolled keys may hold a node with the hub's key, or a second holder of
// a node's: the NATS users list each key once, the hub's with the hub's
// subjects and a node's with its first holder's, and nats-config writes
// no key twice.
func TestNATSUsersDuplicateKeys(t *testing.T) {
	ctx := context.Background()
	h, _ := testHub(t)
	put := func(id byte, name string, pub ed25519.PublicKey, enrolled time.Time) {
		t.Helper()
		c, err := h.Root.Issue(identity.NodeID{id}, identity.RoleNode, name, pub, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Store.Nodes.Put(ctx, &store.Node{ID: c.Node, Name: name, Role: c.Role, Certificate: b, EnrolledAt: enrolled}); err != nil {
			t.Fatal(err)
		}
	}
	victim, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	put(1, "a-hubkey", h.Identity.Cert.PublicKey, now.Add(-time.Hour))
	put(2, "z-victim", victim, now.Add(-time.Hour)) // enrolled first
	put(3, "b-thief", victim, now)                  // sorts first by name
	users, err := NATSUsers(ctx, h.Store, h.Root.Public(), h.Identity, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	hubKey, _ := transport.NATSUserKey(h.Identity.Cert.PublicKey)
	victimKey, _ := transport.NATSUserKey(victim)
	seen := map[string]transport.NATSUser{}
	for _, u := range users {
		if _, ok := seen[u.Nkey]; ok {
			t.Errorf("key %s listed twice (%s)", u.Nkey, u.Name)
		}
		seen[u.Nkey] = u
	}
	family := h.Root.Family().String()
	if u := seen[hubKey]; !slices.Contains(u.Subscribe, "myclerk."+family+".hub.>") {
		t.Errorf("the hub's key has %+v, want the hub's subjects", u)
	}
	if u := seen[victimKey]; !slices.Contains(u.Subscribe, "myclerk."+family+"."+identity.NodeID{2}.String()+".c.*") {
		t.Errorf("the victim's key has %+v, want the victim's subjects", u)
	}

	if block := transport.NATSAuthorization(users); strings.Count(block, hubKey) != 1 || strings.Count(block, victimKey) != 1 {
		t.Errorf("nats-config lists a key twice:\n%s", block)
	}
}
