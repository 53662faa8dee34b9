package tests

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/client"
	"github.com/myclerk/myclerk-bridge/node/config"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/runtime"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// attackHub is the built hub with TCP, WebSocket, metrics and a real
// nats-server, and one enrolled client on NATS. The nats-server has the
// family's credentials (`myclerk-bridge nats-config`) and one more user,
// the attacker, who may publish and subscribe anywhere: a family whose
// server leaks, or a credential stolen, must still find the sessions
// deaf to what they did not authenticate.
type attackHub struct {
	hub              *proc
	tcp, ws, metrics string
	natsURL          string
	member           *client.Client
	family           identity.FamilyID
	node             string
}

// attacker is the extra user of the attack hub's nats-server.
const attackerUser, attackerPassword = "attacker", "attack"

func startAttackHub(t *testing.T) *attackHub {
	t.Helper()
	bin := natsBinary()
	if bin == "" {
		t.Skip("no nats-server binary")
	}
	dir := t.TempDir()
	natsPort, tcpPort, wsPort, metricsPort := freePort(t), freePort(t), freePort(t), freePort(t)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	cfgPath := filepath.Join(dir, "hub.yaml")
	yaml := fmt.Sprintf("role: hub\nname: nas\ndata_dir: %q\nlisten: {tcp: 127.0.0.1:%d, websocket: 127.0.0.1:%d, metrics: 127.0.0.1:%d, nats: ''}\nnats: {url: %q}\n",
		filepath.Join(dir, "hub"), tcpPort, wsPort, metricsPort, natsURL)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// The family, and a member enrolled as pairing would leave it.
	ctx, cancel := context.WithCancel(context.Background())
	root, member := familyWithMember(t, ctx, c, identity.RoleClient, "phone")
	st, err := runtime.OpenStore(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	block, err := runtime.NATSConfig(ctx, c, st, zerolog.Nop())
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	block = strings.Replace(block, "users = [\n", fmt.Sprintf("users = [\n    {user: %s, password: %s, permissions: {publish: \">\", subscribe: \">\"}}\n", attackerUser, attackerPassword), 1)
	serverCfg := filepath.Join(dir, "nats.conf")
	os.WriteFile(serverCfg, []byte(fmt.Sprintf("listen: 127.0.0.1:%d\nmax_payload: 2MB\n%s", natsPort, block)), 0o600)
	ns := exec.Command(bin, "-c", serverCfg)
	var nsLog strings.Builder
	ns.Stderr = &nsLog
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Process.Kill(); ns.Wait() })
	for i := 0; ; i++ {
		if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", natsPort)); err == nil {
			conn.Close()
			break
		}
		if i == 100 {
			t.Fatalf("nats-server did not start: %s", nsLog.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	a := &attackHub{hub: start(t, dir, "hub", "-config", cfgPath), natsURL: natsURL,
		tcp: fmt.Sprintf("127.0.0.1:%d", tcpPort), ws: fmt.Sprintf("ws://127.0.0.1:%d/myclerk", wsPort),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)}
	a.hub.until(t, regexp.MustCompile(`^MyClerk hub .* is running`))
	a.family, a.node = root.Family(), member.Cert.Node.String()
	mc := config.Default()
	mc.Role, mc.Name, mc.DataDir = "node", "phone", filepath.Join(dir, "phone")
	ep, _ := runtime.ParseEndpoint(natsURL)
	s, done, err := runtime.Open(ctx, mc, ep, member, root.Public(), nil, zerolog.Nop())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	a.member = client.New(s, zerolog.Nop())
	ran := make(chan struct{})
	go func() { defer close(ran); a.member.Run(ctx) }()
	t.Cleanup(func() { cancel(); s.Close(context.Background()); <-ran; done() })
	return a
}

// call makes one request as the member and says whether it was answered.
func (a *attackHub) call(t *testing.T) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := a.member.Call(ctx, wire.OpDeviceList, ops.Request{})
	return err
}

func (a *attackHub) rss(t *testing.T) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.hub.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	n, _ := strconv.Atoi(string(m[1]))
	return n / 1024
}

func (a *attackHub) goroutines(t *testing.T) int {
	resp, err := http.Get(a.metrics)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	m := regexp.MustCompile(`(?m)^go_goroutines (\d+)`).FindStringSubmatch(b.String())
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func (a *attackHub) logSize(t *testing.T) int64 {
	st, err := os.Stat(a.hub.log)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// injector is the attacker's NATS connection; a stranger without
// credentials is refused first.
func injector(t *testing.T, url string) *nats.Conn {
	t.Helper()
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("the family's nats-server let in a client without credentials")
	}
	nc, err := nats.Connect(url, nats.UserInfo(attackerUser, attackerPassword))
	if err != nil {
		t.Fatalf("the attacker's user: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func plainFrame(op wire.Op, seq uint8, body []byte) []byte {
	b, _ := wire.AppendPlain(nil, &wire.Header{Tier: wire.Tier1, Op: op, Sequence: seq}, nil, body)
	return b
}

// TestPlaintextInjectionOverNATS: an attacker on the NATS server sends
// plaintext frames to both ends of a member's session: the hub answers
// none, and the member's calls are answered only by the hub.
func TestPlaintextInjectionOverNATS(t *testing.T) {
	a := startAttackHub(t)
	nc := injector(t, a.natsURL)
	// The member's end: what the hub sends there shows whether it answers.
	prefix := "myclerk." + a.family.String() + "." + a.node + ".c."
	toMember := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(prefix+"*", toMember)
	if err != nil {
		t.Skipf("the NATS server refused a subscription: %v", err)
	}
	defer sub.Unsubscribe()
	hubSide := make(chan *nats.Msg, 1024)
	sub2, err := nc.ChanSubscribe("myclerk."+a.family.String()+".hub.c.*", hubSide)
	if err != nil {
		t.Skipf("the NATS server refused a subscription: %v", err)
	}
	defer sub2.Unsubscribe()
	nc.Flush()
	if err := a.call(t); err != nil {
		t.Fatal(err)
	}
	var memberSubj, hubSubj string
	for memberSubj == "" || hubSubj == "" {
		select {
		case m := <-toMember:
			memberSubj = m.Subject
		case m := <-hubSide:
			hubSubj = m.Subject
		case <-time.After(3 * time.Second):
			t.Fatal("saw no traffic of the member's session")
		}
	}
	drain := func(c chan *nats.Msg) {
		for {
			select {
			case <-c:
			default:
				return
			}
		}
	}
	// Plaintext requests to the hub: none is answered.
	drain(toMember)
	for i := range 20 {
		nc.Publish(hubSubj, plainFrame(wire.OpDeviceList, uint8(i), nil))
		nc.Publish(hubSubj, plainFrame(wire.OpKeepalive, uint8(i), nil))
	}
	nc.Flush()
	select {
	case m := <-toMember:
		t.Errorf("the hub answered an injected plaintext frame with %d bytes", len(m.Data))
	case <-time.After(500 * time.Millisecond):
	}
	// Plaintext ERRORs to the member while its calls are pending: every
	// call is answered by the hub.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ref := uint32(1); ; ref++ {
			select {
			case <-stop:
				return
			default:
			}
			e, _ := (&payload.Error{Code: wire.CodeUnauthorized, RefSeq: ref % 64, Message: "forged"}).Marshal()
			nc.Publish(memberSubj, plainFrame(wire.OpError, uint8(ref), e))
			time.Sleep(100 * time.Microsecond)
		}
	}()
	for i := range 30 {
		if err := a.call(t); err != nil {
			t.Errorf("call %d during the injection: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if st := a.member.Session().Status(); st.Rejected == 0 {
		t.Errorf("the member counted no rejected frames")
	}
}

// sealedUpload is a stranger that completes SESSION_INIT/ACK, as anyone
// may, and then uploads sealed fragments of a message that never ends,
// without ever proving who it is: before the gate, each such connection
// made the hub hold 16 MiB.
func sealedUpload(ctx context.Context, c net.Conn) {
	st := transport.NewStream(c)
	priv, err := wire.GenerateKey(rand.Reader)
	if err != nil {
		return
	}
	pub := [32]byte(priv.PublicKey().Bytes())
	var nonce [8]byte
	rand.Read(nonce[:])
	init := payload.SessionInit{Nonce: nonce, Timestamp: uint64(time.Now().Unix()), RequestedTier: 3, HasRequestedTier: true}
	body, _ := init.Marshal()
	initFrame, err := wire.AppendHandshake(nil, &wire.Header{Tier: wire.Tier4, Op: wire.OpSessionInit, Timestamp: uint32(time.Now().Unix()), PublicKey: pub}, body)
	if err != nil || st.WriteFrame(ctx, initFrame) != nil {
		return
	}
	ackFrame, err := st.ReadFrame(ctx)
	if err != nil {
		return
	}
	f, err := wire.ParseHandshake(ackFrame)
	var ack payload.SessionAck
	if err != nil || f.Header.Op != wire.OpSessionAck || ack.Unmarshal(f.Body) != nil {
		return
	}
	shared, err := wire.SharedSecret(priv, f.Header.PublicKey)
	if err != nil {
		return
	}
	sec := wire.SessionSecrets{SessionKey: wire.SessionKey(shared, nonce, ack.Nonce), TranscriptHash: wire.TranscriptHash(initFrame, ackFrame),
		InitiatorKey: pub, ResponderKey: f.Header.PublicKey, AEAD: payload.SelectAEAD(ack.SelectedCapabilities)}
	sealer := wire.NewSealer(&sec, wire.InitiatorToResponder, time.Now())
	chunk := make([]byte, 60<<10)
	for i := 0; i < 1000 && ctx.Err() == nil; i++ { // 60 MB of one message
		h := wire.Header{Tier: wire.Tier3, Encrypted: true, Fragmented: true, Op: wire.OpStreamData, SessionID: ack.SessionID}
		b, err := sealer.Seal(nil, &h, &wire.FragmentHeader{MessageID: 1, Index: uint16(i), Total: 1000}, chunk, time.Now())
		if err != nil || st.WriteFrame(ctx, b) != nil {
			return
		}
	}
}

// TestStrangersBounded: 64 strangers on TCP, WebSocket and NATS flood the
// built hub with frames, handshakes, silence and slowness; its memory,
// goroutines and log stay bounded, come back afterwards, and the member is
// answered throughout.
func TestStrangersBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("attack test")
	}
	a := startAttackHub(t)
	nc := injector(t, a.natsURL)
	time.Sleep(time.Second)
	baseRSS, baseG, baseLog := a.rss(t), a.goroutines(t), a.logSize(t)
	t.Logf("before: RSS %d MiB, %d goroutines, log %d bytes", baseRSS, baseG, baseLog)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var attempts atomic.Int64
	big := make([]byte, 1<<20)
	rand.Read(big)
	sealedJunk := func(n int) []byte { // looks like a Tier 3 fragment, opens under no key
		b := append([]byte(nil), big[:n]...)
		b[0] = 0<<6 | 3<<3 | wire.FlagFragmented | wire.FlagEncrypted
		return b
	}
	tcpFlood := func(kind int) {
		defer wg.Done()
		for ctx.Err() == nil {
			c, err := net.DialTimeout("tcp", a.tcp, time.Second)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			attempts.Add(1)
			context.AfterFunc(ctx, func() { c.Close() })
			switch kind {
			case 0: // frame flood: 1 MiB frames
				for ctx.Err() == nil {
					var p [4]byte
					binary.BigEndian.PutUint32(p[:], uint32(len(big)))
					if _, err := c.Write(append(p[:], sealedJunk(len(big))...)); err != nil {
						break
					}
				}
			case 1: // handshake flood: a junk first frame, again and again
				c.Write([]byte{0, 0, 0, 8, 0x08, 0, 0, 0, 0, 0, 0, 0})
				buf := make([]byte, 256)
				c.SetReadDeadline(time.Now().Add(time.Second))
				c.Read(buf)
			case 2: // idle
				<-ctx.Done()
			case 4: // a real handshake, then sealed fragments before SESSION_AUTH
				sealedUpload(ctx, c)
			case 3: // slow: one byte a second of a large frame
				c.Write([]byte{0, 0x0f, 0, 0})
				for ctx.Err() == nil {
					if _, err := c.Write([]byte{0x18}); err != nil {
						break
					}
					time.Sleep(time.Second)
				}
			}
			c.Close()
		}
	}
	wsFlood := func() {
		defer wg.Done()
		for ctx.Err() == nil {
			c, _, err := websocket.DefaultDialer.DialContext(ctx, a.ws, nil)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			attempts.Add(1)
			context.AfterFunc(ctx, func() { c.Close() })
			for ctx.Err() == nil {
				if err := c.WriteMessage(websocket.BinaryMessage, sealedJunk(256<<10)); err != nil {
					break
				}
			}
			c.Close()
		}
	}
	accept := transport.AcceptSubject(a.family.String(), runtime.HubNATSNode)
	natsFlood := func(i int) {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			inbox := fmt.Sprintf("myclerk.%s.%032x.c.%016x", a.family, i, n) // a dialer's form (§P41)
			hello := make(chan *nats.Msg, 4)
			sub, err := nc.ChanSubscribe(inbox, hello)
			if err != nil {
				return
			}
			attempts.Add(1)
			nc.PublishMsg(&nats.Msg{Subject: accept, Reply: inbox, Data: sealedJunk(512)})
			select {
			case m := <-hello:
				for k := 0; k < 64 && ctx.Err() == nil && m.Reply != ""; k++ {
					nc.Publish(m.Reply, sealedJunk(256<<10))
				}
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			sub.Unsubscribe()
		}
	}
	for i := range 64 {
		wg.Add(1)
		switch {
		case i < 16:
			go tcpFlood(i % 4)
		case i < 32:
			go wsFlood()
		case i < 48:
			go natsFlood(i)
		case i < 56:
			go tcpFlood(4)
		default:
			go tcpFlood(1)
		}
	}
	peakRSS, peakG, calls, failed := 0, 0, 0, 0
	for ctx.Err() == nil {
		if err := a.call(t); err != nil {
			failed++
			t.Logf("a member's call during the attack: %v", err)
		}
		calls++
		peakRSS, peakG = max(peakRSS, a.rss(t)), max(peakG, a.goroutines(t))
		time.Sleep(200 * time.Millisecond)
	}
	wg.Wait()
	duringLog := a.logSize(t)
	t.Logf("during: peak RSS %d MiB, peak %d goroutines, log +%d bytes, %d stranger connections, member %d/%d calls answered",
		peakRSS, peakG, duringLog-baseLog, attempts.Load(), calls-failed, calls)
	if peakRSS > 128 {
		t.Errorf("peak RSS %d MiB, want under 128", peakRSS)
	}
	if duringLog-baseLog > 1<<20 {
		t.Errorf("the log grew by %d bytes, want under 1 MiB", duringLog-baseLog)
	}
	if failed > 0 {
		t.Errorf("%d of the member's %d calls failed during the attack", failed, calls)
	}
	var afterRSS, afterG int
	for deadline := time.Now().Add(60 * time.Second); ; {
		afterRSS, afterG = a.rss(t), a.goroutines(t)
		if (afterRSS <= baseRSS+16 && afterG <= baseG+8) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	t.Logf("after: RSS %d MiB, %d goroutines, log %d bytes", afterRSS, afterG, a.logSize(t))
	if afterRSS > baseRSS+16 {
		t.Errorf("RSS %d MiB a minute after the attack, baseline %d", afterRSS, baseRSS)
	}
	if afterG > baseG+8 {
		t.Errorf("%d goroutines after the attack, baseline %d", afterG, baseG)
	}
	if err := a.call(t); err != nil {
		t.Errorf("a call after the attack: %v", err)
	}
}
