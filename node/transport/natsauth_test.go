package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// authFamily is a hub and two nodes with keys, and the embedded server
// that lets them in.
type authFamily struct {
	e              *EmbeddedNATS
	hub, pi, phone ed25519.PrivateKey

	mu      sync.Mutex
	revoked map[string]bool // node tokens
}

func newAuthFamily(t *testing.T) *authFamily {
	t.Helper()
	f := &authFamily{hub: newKey(t), pi: newKey(t), phone: newKey(t), revoked: map[string]bool{}}
	auth := &NATSAuth{Load: func(context.Context) ([]NATSUser, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		hub, err := HubNATSUser("fam", "hub", "hub", f.hub.Public().(ed25519.PublicKey))
		if err != nil {
			return nil, err
		}
		users := []NATSUser{hub}
		for node, k := range map[string]ed25519.PrivateKey{"pi": f.pi, "phone": f.phone} {
			if f.revoked[node] {
				continue
			}
			u, err := NodeNATSUser("fam", "hub", node, node, k.Public().(ed25519.PublicKey))
			if err != nil {
				return nil, err
			}
			users = append(users, u)
		}
		return users, nil
	}}
	e, err := StartEmbeddedNATS(context.Background(), "127.0.0.1:0", auth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	f.e = e
	return f
}

func newKey(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// join connects with key k; errs gets the server's asynchronous errors
// (permission violations).
func (f *authFamily) join(t *testing.T, k ed25519.PrivateKey, opts ...nats.Option) (*nats.Conn, chan error) {
	t.Helper()
	creds, err := NATSCredentials(k)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	opts = append(opts, creds, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	nc, err := nats.Connect(f.e.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

func wantViolation(t *testing.T, errs chan error, what string) {
	t.Helper()
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "Permissions Violation") || !strings.Contains(err.Error(), what) {
			t.Fatalf("want a permissions violation for %s, got %v", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s was allowed", what)
	}
}

func TestEmbeddedNATSNeedsCredentials(t *testing.T) {
	if _, err := StartEmbeddedNATS(context.Background(), "127.0.0.1:0", nil); err == nil {
		t.Fatal("the embedded server started without credentials")
	}
	f := newAuthFamily(t)
	if nc, err := nats.Connect(f.e.URL()); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("a client without credentials: %v", err)
	}
	creds, _ := NATSCredentials(newKey(t))
	if nc, err := nats.Connect(f.e.URL(), creds); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("a stranger's key: %v", err)
	}
	// A known key, but the nonce signed by another one.
	pub, _ := NATSUserKey(f.pi.Public().(ed25519.PublicKey))
	other := newKey(t)
	forged := nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return ed25519.Sign(other, nonce), nil })
	if nc, err := nats.Connect(f.e.URL(), forged); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("a forged signature: %v", err)
	}
	// A user name and password are no way in either.
	if nc, err := nats.Connect(f.e.URL(), nats.UserInfo("hub", "")); err == nil {
		nc.Close()
		t.Fatal("a user name without a key got in")
	}
}

func TestEmbeddedNATSNodeSubjects(t *testing.T) {
	f := newAuthFamily(t)
	for _, subject := range []string{"myclerk.>", ">", "myclerk.fam.hub.accept", "myclerk.fam.hub.c.*", "myclerk.fam.phone.c.*", "myclerk.fam.*.c.*", "_INBOX.>", "$SYS.>"} {
		t.Run("subscribe "+subject, func(t *testing.T) {
			nc, errs := f.join(t, f.pi)
			if _, err := nc.SubscribeSync(subject); err != nil {
				t.Fatal(err)
			}
			nc.Flush()
			wantViolation(t, errs, "Subscription to \""+subject+"\"")
		})
	}
	// pi may not write to phone's end, nor to anything but the hub.
	phone, _ := f.join(t, f.phone)
	inbox, err := phone.SubscribeSync("myclerk.fam.phone.c.0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	phone.Flush()
	for _, subject := range []string{"myclerk.fam.phone.c.0123456789abcdef", "myclerk.fam.phone.accept", "$SYS.REQ.SERVER.PING", "_INBOX.x"} {
		nc, errs := f.join(t, f.pi)
		if err := nc.Publish(subject, []byte("injected")); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
		wantViolation(t, errs, "Publish to \""+subject+"\"")
	}
	if m, err := inbox.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("phone got %q from pi", m.Data)
	}
}

// A node's connection to the hub works as it did without credentials.
func TestEmbeddedNATSSessionWithCredentials(t *testing.T) {
	f := newAuthFamily(t)
	hubNC, hubErrs := f.join(t, f.hub)
	piNC, piErrs := f.join(t, f.pi)
	l, err := ListenNATS(hubNC, "fam", "hub")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d, err := DialNATS(piNC, "fam", "pi", "hub")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.WriteFrame(ctx, []byte("hello hub")); err != nil {
		t.Fatal(err)
	}
	a, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for i, want := range []string{"hello hub", "second"} {
		got, err := a.ReadFrame(ctx)
		if err != nil || string(got) != want {
			t.Fatalf("hub read %q, %v; want %q", got, err, want)
		}
		if err := a.WriteFrame(ctx, []byte("echo "+want)); err != nil {
			t.Fatal(err)
		}
		if got, err = d.ReadFrame(ctx); err != nil || string(got) != "echo "+want {
			t.Fatalf("pi read %q, %v", got, err)
		}
		if i == 0 {
			if err := d.WriteFrame(ctx, []byte("second")); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case err := <-hubErrs:
		t.Fatalf("hub: %v", err)
	case err := <-piErrs:
		t.Fatalf("pi: %v", err)
	default:
	}
}

// A revoked node's live connection is closed, and it cannot come back.
func TestEmbeddedNATSRevokedNode(t *testing.T) {
	f := newAuthFamily(t)
	dropped, back := make(chan struct{}, 1), make(chan struct{}, 1)
	piNC, _ := f.join(t, f.pi, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { dropped <- struct{}{} }),
		nats.ReconnectHandler(func(*nats.Conn) { back <- struct{}{} }))
	phoneNC, _ := f.join(t, f.phone)
	if n, err := f.e.Reauthorize(context.Background()); err != nil || n != 0 {
		t.Fatalf("nothing revoked: closed %d, %v", n, err)
	}
	f.mu.Lock()
	f.revoked["pi"] = true
	f.mu.Unlock()
	if n, err := f.e.Reauthorize(context.Background()); err != nil || n != 1 {
		t.Fatalf("pi revoked: closed %d, %v", n, err)
	}
	select {
	case <-dropped:
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked node's connection stayed open")
	}
	// pi tries to reconnect and is refused each time; it never gets back.
	select {
	case <-back:
		t.Fatal("the revoked node is connected again")
	case <-time.After(time.Second):
	}
	piNC.Close()
	if !phoneNC.IsConnected() {
		t.Fatal("phone lost its connection")
	}
	creds, _ := NATSCredentials(f.pi)
	if nc, err := nats.Connect(f.e.URL(), creds); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("the revoked node connected: %v", err)
	}
}

// A node enrolled after the last load gets in at once.
func TestEmbeddedNATSLoadsNewNodes(t *testing.T) {
	f := newAuthFamily(t)
	f.mu.Lock()
	f.revoked["phone"] = true
	f.mu.Unlock()
	if _, err := f.e.Reauthorize(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	delete(f.revoked, "phone")
	f.mu.Unlock()
	f.join(t, f.phone) // at once: the unknown key makes the server load again
}

func TestNATSAuthorization(t *testing.T) {
	k := newKey(t)
	u, err := NodeNATSUser("fam", "hub", "pi", "node pi", k.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	got := NATSAuthorization([]NATSUser{u})
	want := `{nkey: ` + u.Nkey + `, permissions: {publish: {allow: ["myclerk.fam.hub.accept", "myclerk.fam.hub.c.*"]}, subscribe: {allow: ["myclerk.fam.pi.c.*"]}}}`
	if !strings.Contains(got, want) || !strings.HasPrefix(u.Nkey, "U") {
		t.Fatalf("got\n%s\nwant a line\n%s", got, want)
	}
	if _, err := NodeNATSUser("fam", "hub", "a.b", "x", k.Public().(ed25519.PublicKey)); err == nil {
		t.Fatal("a node token with a dot")
	}
}

// A flood of connects with keys the hub does not know (the SESSION_INIT
// replay needs a connection first) is refused, and makes only a few loads
// of the users, not one per attempt; an enrolled node still gets in.
func TestEmbeddedNATSStrangerFlood(t *testing.T) {
	f := newAuthFamily(t)
	var mu sync.Mutex
	loads := 0
	load := f.e.auth.Load
	f.e.auth.Load = func(ctx context.Context) ([]NATSUser, error) {
		mu.Lock()
		loads++
		mu.Unlock()
		return load(ctx)
	}
	const attempts = 40
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < attempts; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, k, _ := ed25519.GenerateKey(rand.Reader)
			creds, _ := NATSCredentials(k)
			if nc, err := nats.Connect(f.e.URL(), creds); err == nil {
				nc.Close()
				t.Error("a stranger's key got in")
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	f.join(t, f.pi)
	mu.Lock()
	defer mu.Unlock()
	if max := int(elapsed/natsRefreshGap) + 2; loads > max {
		t.Fatalf("%d refused connects in %v made %d loads of the users, want at most %d", attempts, elapsed, loads, max)
	}
}

// TestNATSAuthDuplicateKeys: of users with the same key the first counts,
// so a node listed after the hub with the hub's key (enrolled before
// enrolment refused such keys) never takes the hub's subjects.
func TestNATSAuthDuplicateKeys(t *testing.T) {
	hubKey, piKey := newKey(t).Public().(ed25519.PublicKey), newKey(t).Public().(ed25519.PublicKey)
	hub, err := HubNATSUser("fam", "hub", "hub", hubKey)
	if err != nil {
		t.Fatal(err)
	}
	evil, err := NodeNATSUser("fam", "hub", "evil", "evil", hubKey)
	if err != nil {
		t.Fatal(err)
	}
	pi, err := NodeNATSUser("fam", "hub", "pi", "pi", piKey)
	if err != nil {
		t.Fatal(err)
	}
	thief, err := NodeNATSUser("fam", "hub", "thief", "thief", piKey)
	if err != nil {
		t.Fatal(err)
	}
	a := &NATSAuth{Load: func(context.Context) ([]NATSUser, error) { return []NATSUser{hub, evil, pi, thief}, nil }}
	if err := a.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []NATSUser{hub, pi} {
		got, ok := a.find(want.Nkey)
		if !ok || got.Name != want.Name || strings.Join(got.Subscribe, " ") != strings.Join(want.Subscribe, " ") {
			t.Errorf("key of %s: %+v, %v; want its own subjects %v", want.Name, got, ok, want.Subscribe)
		}
	}
}
