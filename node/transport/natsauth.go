package transport

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// NATS credentials (PROFILE.md §P36, "Credentials"): every node signs the
// server's nonce with its identity key, which is an Ed25519 key and so a
// NATS user NKEY. A family's NATS server lets in only the keys of its
// enrolled, non-revoked nodes and the hub, each with the subjects below:
//
//	who    publish                                          subscribe
//	node   myclerk.<f>.hub.accept, myclerk.<f>.hub.c.*      myclerk.<f>.<node>.c.*
//	hub    myclerk.<f>.*.c.*                                myclerk.<f>.hub.>
//
// A node thus reaches only the hub, and reads only what is sent to it.

// NATSUserKey is the NATS user NKEY ("U…") of an Ed25519 identity key.
func NATSUserKey(pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("nats: an identity key of %d bytes is no Ed25519 key", len(pub))
	}
	k, err := nkeys.Encode(nkeys.PrefixByteUser, pub)
	if err != nil {
		return "", fmt.Errorf("failed to encode a NATS user key: %w", err)
	}
	return string(k), nil
}

// NATSCredentials is the nats.go option that signs in with an identity
// key: the server's nonce is signed with it.
func NATSCredentials(priv ed25519.PrivateKey) (nats.Option, error) {
	pub, err := NATSUserKey(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return ed25519.Sign(priv, nonce), nil }), nil
}

// NATSUser is one key a family's NATS server lets in, with the subjects
// it may use.
type NATSUser struct {
	Nkey      string // the user NKEY, "U…"
	Name      string // who it is, for logs and the generated configuration
	Publish   []string
	Subscribe []string
}

// NodeNATSUser is the user of a node (or client) of family whose NATS
// token is node, reaching the hub whose token is hub.
func NodeNATSUser(family, hub, node, name string, pub ed25519.PublicKey) (NATSUser, error) {
	if !validToken(family) || !validToken(hub) || !validToken(node) {
		return NATSUser{}, fmt.Errorf("nats: family %q, hub %q and node %q must be subject tokens", family, hub, node)
	}
	k, err := NATSUserKey(pub)
	if err != nil {
		return NATSUser{}, err
	}
	return NATSUser{Nkey: k, Name: name,
		Publish:   []string{AcceptSubject(family, hub), "myclerk." + family + "." + hub + ".c.*"},
		Subscribe: []string{"myclerk." + family + "." + node + ".c.*"}}, nil
}

// HubNATSUser is the user of the hub of family whose NATS token is hub.
func HubNATSUser(family, hub, name string, pub ed25519.PublicKey) (NATSUser, error) {
	if !validToken(family) || !validToken(hub) {
		return NATSUser{}, fmt.Errorf("nats: family %q and hub %q must be subject tokens", family, hub)
	}
	k, err := NATSUserKey(pub)
	if err != nil {
		return NATSUser{}, err
	}
	return NATSUser{Nkey: k, Name: name,
		Publish:   []string{"myclerk." + family + ".*.c.*"},
		Subscribe: []string{"myclerk." + family + "." + hub + ".>"}}, nil
}

func (u NATSUser) permissions() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: append([]string(nil), u.Publish...)},
		Subscribe: &server.SubjectPermission{Allow: append([]string(nil), u.Subscribe...)},
	}
}

// NATSAuthorization writes the nats-server configuration block that lets
// in users and nobody else, for a family's own NATS server, cluster or
// leaf node.
func NATSAuthorization(users []NATSUser) string {
	users = append([]NATSUser(nil), users...)
	sort.Slice(users, func(i, j int) bool { return users[i].Name < users[j].Name })
	list := func(s []string) string {
		q := make([]string, len(s))
		for i, v := range s {
			q[i] = fmt.Sprintf("%q", v)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	var b strings.Builder
	b.WriteString("# Written by `myclerk-bridge nats-config`: the family's hub and enrolled,\n")
	b.WriteString("# non-revoked nodes, each signing in with its identity key (an NKEY).\n")
	b.WriteString("# Write it again after enrolling or revoking a node, and reload the server.\n")
	b.WriteString("authorization {\n  users = [\n")
	for _, u := range users {
		fmt.Fprintf(&b, "    # %s\n", strings.ReplaceAll(u.Name, "\n", " "))
		fmt.Fprintf(&b, "    {nkey: %s, permissions: {publish: {allow: %s}, subscribe: {allow: %s}}}\n", u.Nkey, list(u.Publish), list(u.Subscribe))
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

// natsRefreshGap is the least time between two loads of the users
// that unknown keys cause: a node enrolled a moment ago gets in (its
// connect waits for the next load), and a stranger trying keys makes at
// most a few queries a second, however many connections it opens.
const natsRefreshGap = 250 * time.Millisecond

// natsLoadTimeout bounds one load of the users.
const natsLoadTimeout = 5 * time.Second

// NATSAuth is the embedded NATS server's authenticator: a client must
// sign the server's nonce with the key of one of the users that Load
// returns, and gets that user's permissions. It implements
// server.Authentication.
type NATSAuth struct {
	// Load returns the users let in now (the hub itself, first, and its
	// enrolled, non-revoked nodes). Of entries with the same key the
	// first counts.
	Load func(context.Context) ([]NATSUser, error)

	loadMu sync.Mutex // held while loading: one load at a time
	mu     sync.Mutex
	users  map[string]NATSUser
	loaded time.Time // when the last load began
}

var _ server.Authentication = (*NATSAuth)(nil)

// Refresh loads the users again; a key no longer among them is refused
// from now on (EmbeddedNATS.Reauthorize also closes its connections).
func (a *NATSAuth) Refresh(ctx context.Context) error {
	a.loadMu.Lock()
	defer a.loadMu.Unlock()
	return a.refresh(ctx)
}

// refresh loads the users; loadMu is held.
func (a *NATSAuth) refresh(ctx context.Context) error {
	began := time.Now()
	users, err := a.Load(ctx)
	if err != nil {
		a.mu.Lock()
		a.loaded = began // no load per attempt while the store fails
		a.mu.Unlock()
		return fmt.Errorf("failed to load the NATS users: %w", err)
	}
	m := make(map[string]NATSUser, len(users))
	for _, u := range users {
		if _, ok := m[u.Nkey]; ok {
			// The first holder of a key keeps it: Load lists the hub
			// first, so no node ever takes the hub's subjects (a key
			// enrolled twice would otherwise give the later entry's).
			continue
		}
		m[u.Nkey] = u
	}
	a.mu.Lock()
	a.users, a.loaded = m, began
	a.mu.Unlock()
	return nil
}

func (a *NATSAuth) find(nkey string) (NATSUser, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.users[nkey]
	return u, ok
}

// lookup returns the user of key nkey. An unknown key waits for a load
// that began after it was asked about (starting one no sooner than
// natsRefreshGap after the last), and is looked up again.
func (a *NATSAuth) lookup(nkey string) (NATSUser, bool) {
	asked := time.Now()
	if u, ok := a.find(nkey); ok {
		return u, true
	}
	a.loadMu.Lock()
	defer a.loadMu.Unlock()
	a.mu.Lock()
	loaded := a.loaded
	a.mu.Unlock()
	if loaded.Before(asked) {
		time.Sleep(time.Until(loaded.Add(natsRefreshGap)))
		ctx, cancel := context.WithTimeout(context.Background(), natsLoadTimeout)
		defer cancel()
		if a.refresh(ctx) != nil {
			return NATSUser{}, false
		}
	}
	return a.find(nkey)
}

// allowed reports whether nkey is let in now, without loading.
func (a *NATSAuth) allowed(nkey string) bool {
	_, ok := a.find(nkey)
	return ok
}

// Check lets a client in when it signed the nonce with a known key.
func (a *NATSAuth) Check(c server.ClientAuthentication) bool {
	if c.Kind() != server.CLIENT {
		return false // no routes, gateways or leaf nodes
	}
	o := c.GetOpts()
	if o == nil || o.Nkey == "" || o.Sig == "" {
		return false
	}
	nonce := c.GetNonce()
	if len(nonce) == 0 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(o.Sig)
	if err != nil {
		if sig, err = base64.StdEncoding.DecodeString(o.Sig); err != nil {
			return false
		}
	}
	pub, err := nkeys.FromPublicKey(o.Nkey)
	if err != nil {
		return false
	}
	if err := pub.Verify(nonce, sig); err != nil {
		return false
	}
	u, ok := a.lookup(o.Nkey)
	if !ok {
		return false
	}
	c.RegisterUser(&server.User{Username: u.Nkey, Permissions: u.permissions()})
	return true
}
