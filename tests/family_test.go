package tests

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/myclerk/myclerk-bridge/node/session"
)

// proc is a long-running process of the binary.
type proc struct {
	cmd *exec.Cmd
	out chan string
	log string // where its stderr goes
}

func start(t testing.TB, dir string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	stdout, _ := cmd.StdoutPipe()
	logf, err := os.CreateTemp(dir, args[0]+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	p := &proc{cmd: cmd, out: make(chan string, 100), log: logf.Name()}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.out <- sc.Text()
		}
		close(p.out)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
	})
	return p
}

// lines reads stdout until a line matches re, returning all lines read.
func (p *proc) until(t testing.TB, re *regexp.Regexp) []string {
	t.Helper()
	var lines []string
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-p.out:
			if !ok {
				t.Fatalf("the process ended; it printed:\n%s\n%s", strings.Join(lines, "\n"), p.logTail())
			}
			lines = append(lines, l)
			if re.MatchString(l) {
				return lines
			}
		case <-deadline:
			t.Fatalf("timed out; the process printed:\n%s\n%s", strings.Join(lines, "\n"), p.logTail())
		}
	}
}

// logTail is the end of the process's stderr, for failure messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return "stderr (" + p.log + "):\n" + string(b)
}

// runBin runs the binary in dir to completion and returns what it printed.
// hubWithCodes starts the built hub in dir on the configuration hubCfg
// with `-invite node,client` and returns it with the two pairing codes it
// printed.
func hubWithCodes(t *testing.T, dir, hubCfg string) (*proc, []string) {
	t.Helper()
	os.WriteFile(filepath.Join(dir, "hub.yaml"), []byte(hubCfg), 0o600)
	hub := start(t, dir, "hub", "-config", "hub.yaml", "-invite", "node,client")
	lines := hub.until(t, regexp.MustCompile(`^On the new machine`))
	codeRe := regexp.MustCompile(`[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}`)
	var codes []string
	for _, l := range lines {
		if c := codeRe.FindString(l); c != "" {
			codes = append(codes, c)
		}
	}
	if len(codes) != 2 {
		t.Fatalf("want two pairing codes, got:\n%s", strings.Join(lines, "\n"))
	}
	return hub, codes
}

func runBin(t testing.TB, dir string, args ...string) result {
	t.Helper()
	return runWith(t, dir, "", args...)
}

// TestFamilyFromTheCommandLine is the README's walk-through as a user does
// it: start a hub, pair a node and a client with the printed codes, run
// the node, and use its sensor from the client over each transport.
func TestFamilyFromTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	tcpPort, wsPort, natsPort, metricsPort := freePort(t), freePort(t), freePort(t), freePort(t)
	hubCfg := fmt.Sprintf("role: hub\nname: nas\ndata_dir: ./hub\nlisten: {tcp: 127.0.0.1:%d, websocket: 127.0.0.1:%d, nats: 127.0.0.1:%d, metrics: 127.0.0.1:%d}\n", tcpPort, wsPort, natsPort, metricsPort)
	_, codes := hubWithCodes(t, dir, hubCfg)
	tcp := fmt.Sprintf("tcp://127.0.0.1:%d", tcpPort)

	nodeCfg := fmt.Sprintf("role: node\nname: pi\ndata_dir: ./pi\nhub: {tcp: 127.0.0.1:%d}\ndevices: {sensors: [{id: temp, name: Kitchen, base: 19, interval: 1s}]}\n", tcpPort)
	os.WriteFile(filepath.Join(dir, "pi.yaml"), []byte(nodeCfg), 0o600)
	runIn := func(args ...string) result { t.Helper(); return runBin(t, dir, args...) }
	if r := runIn("pair", "-config", "pi.yaml", "-hub", tcp, "-code", codes[0]); r.code != 0 {
		t.Fatalf("pair node: %s %s", r.stdout, r.stderr)
	}
	// The code was single-use.
	if r := runIn("pair", "-config", "pi.yaml", "-data", "./pi2", "-hub", tcp, "-code", codes[0]); r.code == 0 {
		t.Fatal("a pairing code worked twice")
	}
	if r := runIn("pair", "-hub", tcp, "-code", strings.ToLower(codes[1]), "-name", "phone", "-role", "client", "-data", "./phone"); r.code != 0 {
		t.Fatalf("pair client: %s %s", r.stdout, r.stderr)
	}
	if st, err := os.Stat(filepath.Join(dir, "phone/keys/node.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("client key file: %v %v", st, err)
	}
	start(t, dir, "node", "-config", "pi.yaml")

	client := func(args ...string) result {
		return runIn(append([]string{"client", "-data", "./phone"}, args...)...)
	}
	var r result
	for i := 0; i < 100; i++ {
		if r = client("-hub", tcp, "devices"); strings.Contains(r.stdout, "pi/temp") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(r.stdout, "pi/temp") || !strings.Contains(r.stdout, "Kitchen") {
		t.Fatalf("devices: %q %q", r.stdout, r.stderr)
	}
	for _, hubAddr := range []string{tcp, fmt.Sprintf("ws://127.0.0.1:%d/myclerk", wsPort), fmt.Sprintf("nats://127.0.0.1:%d", natsPort)} {
		r = client("-hub", hubAddr, "-json", "subscribe", "pi/temp", "1")
		if r.code != 0 || !strings.Contains(r.stdout, `"temperature"`) {
			t.Errorf("subscribe over %s: %d %q %q", hubAddr, r.code, r.stdout, r.stderr)
		}
	}
	if r = client("-hub", tcp, "-tier", "5", "status"); r.code != 0 || !strings.Contains(r.stdout, "tier          3 (asked for 5)") {
		t.Errorf("status: %q %q", r.stdout, r.stderr)
	}
	// Hub and client run on this CPU: AES-256-GCM where it has AES
	// hardware, ChaCha20-Poly1305 otherwise (PROFILE.md §P23).
	wantCipher := "cipher        chacha20-poly1305"
	if session.HardwareAES() {
		wantCipher = "cipher        aes-256-gcm"
	}
	if !strings.Contains(r.stdout, wantCipher) {
		t.Errorf("status shows no %q: %q", wantCipher, r.stdout)
	}
	if r = client("-hub", tcp, "-tier", "5", "-floor", "5", "status"); r.code == 0 || !strings.Contains(r.stderr, "below the configured floor") {
		t.Errorf("floor above the hub's tier: %d %q", r.code, r.stderr)
	}
	if r = client("-hub", tcp, "lock", "pi/temp", "60"); r.code != 0 || !strings.Contains(r.stdout, "locked for 60 s") {
		t.Errorf("lock: %q %q", r.stdout, r.stderr)
	}
	if r = client("-hub", tcp, "configure", "pi/temp", "interval=2s"); r.code != 0 || !strings.Contains(r.stdout, "pi/temp") {
		t.Errorf("configure: %q %q", r.stdout, r.stderr)
	}
	if r = client("-hub", tcp, "info", "pi/none"); r.code != 1 || !strings.Contains(r.stderr, "NOT_FOUND") {
		t.Errorf("unknown device: %d %q", r.code, r.stderr)
	}
	if r = client("-hub", tcp, "fly"); r.code != 1 || !strings.Contains(r.stderr, "unknown command") {
		t.Errorf("unknown command: %d %q", r.code, r.stderr)
	}
	if r = runIn("client", "-data", "./nobody", "-hub", tcp, "devices"); r.code != 1 || !strings.Contains(r.stderr, "not paired") {
		t.Errorf("unpaired client: %d %q", r.code, r.stderr)
	}

	// The hub's metrics counted all of that, and its health check is fine.
	metrics := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	for _, want := range []string{`myclerk_frames_total{direction="in",op="DEVICE_LIST",result="ok",tier="3"}`,
		`myclerk_frames_total{direction="out",op="SESSION_AUTH"`, "myclerk_sessions "} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if h := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/health", metricsPort)); !strings.Contains(h, `"status":"ok"`) {
		t.Errorf("health: %s", h)
	}
}

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("role: hub\nsession: {tier: 7}\n"), 0o600)
	cmd := exec.Command(binPath, "hub", "-config", "bad.yaml")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "session.tier") {
		t.Fatalf("bad config: %v %s", err, out)
	}
}

// TestHubStateSurvivesRestartAndRevocation: codes made by `invite` in
// another process pair a node with a running hub; ACLs, devices and nodes
// survive a hub restart; `revoke` ends the node's session and keeps it out.
func TestHubStateSurvivesRestartAndRevocation(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { hubStateSurvives(t, "") })
	t.Run("postgres", func(t *testing.T) { hubStateSurvives(t, freshPostgres(t)) })
}

// freshPostgres creates a database on the PostgreSQL server the tests use
// (MYCLERK_TEST_POSTGRES, default postgres@127.0.0.1:5432) and drops it at
// the end; tests/run makes sure the server runs.
func freshPostgres(t *testing.T) string {
	dsn := os.Getenv("MYCLERK_TEST_POSTGRES")
	switch dsn {
	case "skip":
		t.Skip("MYCLERK_TEST_POSTGRES=skip")
	case "":
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	admin, err := sql.Open("postgres", dsn)
	if err == nil {
		err = admin.Ping()
	}
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable at 127.0.0.1:5432 (run bash tests/run, or set MYCLERK_TEST_POSTGRES): %v", err)
	}
	var b [8]byte
	rand.Read(b[:])
	name := "myclerk_it_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		admin.Close()
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func hubStateSurvives(t *testing.T, postgresURI string) {
	dir := t.TempDir()
	tcpPort := freePort(t)
	hubCfg := fmt.Sprintf("role: hub\nname: nas\ndata_dir: ./hub\nlisten: {tcp: 127.0.0.1:%d, websocket: '', nats: '', metrics: ''}\nacl: {default_mode: none, admins: [phone]}\nsession: {keepalive: 1s, dead_after: 3s}\n", tcpPort)
	if postgresURI != "" {
		hubCfg += fmt.Sprintf("database: {type: postgres, uri: '%s'}\n", postgresURI)
	}
	os.WriteFile(filepath.Join(dir, "hub.yaml"), []byte(hubCfg), 0o600)
	tcp := fmt.Sprintf("tcp://127.0.0.1:%d", tcpPort)
	runIn := func(args ...string) result { t.Helper(); return runBin(t, dir, args...) }
	codeRe := regexp.MustCompile(`[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}`)
	invite := func(role string, name ...string) string { // a name binds the code to it
		args := []string{"invite", "-config", "hub.yaml", "-role", role}
		if len(name) > 0 {
			args = append(args, "-name", name[0])
		}
		r := runIn(args...)
		c := codeRe.FindString(r.stdout)
		if r.code != 0 || c == "" {
			t.Fatalf("invite: %q %q", r.stdout, r.stderr)
		}
		return c
	}
	hubProc := start(t, dir, "hub", "-config", "hub.yaml")
	hubProc.until(t, regexp.MustCompile(`^  tcp`))

	os.WriteFile(filepath.Join(dir, "pi.yaml"), []byte(fmt.Sprintf("role: node\nname: pi\ndata_dir: ./pi\nhub: {tcp: 127.0.0.1:%d}\nsession: {keepalive: 1s, dead_after: 3s}\ndevices: {sensors: [{id: temp, interval: 1s}]}\n", tcpPort)), 0o600)
	if r := runIn("pair", "-config", "pi.yaml", "-hub", tcp, "-code", invite("node")); r.code != 0 {
		t.Fatalf("pair node: %q %q", r.stdout, r.stderr)
	}
	// phone is an admin (acl.admins): an ordinary code cannot take its
	// name, one made for it can.
	if r := runIn("pair", "-hub", tcp, "-code", invite("client"), "-name", "phone", "-role", "client", "-data", "./phone"); r.code == 0 || !strings.Contains(r.stderr, "invite -name phone") {
		t.Fatalf("pair the admin phone with an ordinary code: %d %q %q", r.code, r.stdout, r.stderr)
	}
	for _, n := range []string{"phone", "guest"} {
		if r := runIn("pair", "-hub", tcp, "-code", invite("client", n), "-name", n, "-role", "client", "-data", "./"+n); r.code != 0 {
			t.Fatalf("pair %s: %q %q", n, r.stdout, r.stderr)
		}
	}
	node := start(t, dir, "node", "-config", "pi.yaml")
	client := func(who string, args ...string) result {
		return runIn(append([]string{"client", "-data", "./" + who, "-hub", tcp}, args...)...)
	}
	var r result
	for i := 0; i < 100; i++ {
		if r = client("phone", "devices"); strings.Contains(r.stdout, "pi/temp") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r = client("phone", "acl", "grant", "pi/temp", "guest", "read-only"); r.code != 0 {
		t.Fatalf("grant: %q %q", r.stdout, r.stderr)
	}
	if r = client("guest", "info", "pi/temp"); r.code != 0 {
		t.Fatalf("guest info: %q %q", r.stdout, r.stderr)
	}

	// Restart the hub: the grant, the device and the nodes are still there.
	hubProc.cmd.Process.Signal(syscall.SIGTERM)
	hubProc.cmd.Wait()
	hubProc = start(t, dir, "hub", "-config", "hub.yaml")
	hubProc.until(t, regexp.MustCompile(`^  tcp`))
	if r = client("guest", "acl", "get", "pi/temp"); r.code != 0 || !strings.Contains(r.stdout, "read-only") {
		t.Fatalf("grant after restart: %q %q", r.stdout, r.stderr)
	}
	for i := 0; i < 100; i++ { // the node comes back by itself
		if r = client("guest", "devices"); strings.Contains(r.stdout, "true") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(r.stdout, "pi/temp") || !strings.Contains(r.stdout, "true") {
		t.Fatalf("device after restart: %q %q", r.stdout, r.stderr)
	}
	if r = runIn("nodes", "-config", "hub.yaml"); !strings.Contains(r.stdout, "pi") || !strings.Contains(r.stdout, "guest") {
		t.Fatalf("nodes: %q %q", r.stdout, r.stderr)
	}

	// Revoke the node: its session ends and it cannot come back.
	if r = runIn("revoke", "-config", "hub.yaml", "pi"); r.code != 0 {
		t.Fatalf("revoke: %q %q", r.stdout, r.stderr)
	}
	for i := 0; i < 100; i++ {
		if r = client("phone", "devices"); strings.Contains(r.stdout, "false") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(r.stdout, "false") {
		t.Fatalf("the revoked node's device is still available: %q", r.stdout)
	}
	if r = runIn("nodes", "-config", "hub.yaml"); !strings.Contains(r.stdout, "revoked") {
		t.Errorf("nodes after revoke: %q", r.stdout)
	}
	_ = node
}

// TestTLSListener wraps the hub's TCP listener in TLS 1.3: a client pairs
// and talks over tcps:// trusting the hub's certificate, and a client
// that does not trust it is refused.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hub"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "hub.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "hub.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	port := freePort(t)
	cfg := fmt.Sprintf("role: hub\nname: nas\ndata_dir: ./hub\nlisten: {tcp: 127.0.0.1:%d, websocket: '', nats: '', metrics: '', tls_cert: hub.crt, tls_key: hub.key}\n", port)
	os.WriteFile(filepath.Join(dir, "hub.yaml"), []byte(cfg), 0o600)
	hub := start(t, dir, "hub", "-config", "hub.yaml", "-invite", "client")
	lines := hub.until(t, regexp.MustCompile(`^On the new machine`))
	code := regexp.MustCompile(`[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}`).FindString(strings.Join(lines, "\n"))
	addr := fmt.Sprintf("tcps://127.0.0.1:%d", port)
	run := func(args ...string) result { return runBin(t, dir, args...) }
	if r := run("pair", "-hub", addr, "-tls-ca", "hub.crt", "-code", code, "-name", "phone", "-role", "client", "-data", "./phone"); r.code != 0 {
		t.Fatalf("pair over TLS: %q %q", r.stdout, r.stderr)
	}
	if r := run("client", "-data", "./phone", "-hub", addr, "-tls-ca", "hub.crt", "status"); r.code != 0 || !strings.Contains(r.stdout, "tcp 127.0.0.1") {
		t.Fatalf("status over TLS: %q %q", r.stdout, r.stderr)
	}
	if r := run("client", "-data", "./phone", "-hub", addr, "status"); r.code == 0 || !strings.Contains(r.stderr, "certificate") {
		t.Errorf("untrusted certificate accepted: %q %q", r.stdout, r.stderr)
	}
}
