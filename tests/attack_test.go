package tests

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
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

// attackHub is the built hub with TCP, WebSocket, metrics and a real NATS
// server, and one enrolled client.
type attackHub struct {
	hub              *proc
	tcp, ws, metrics string
	nats             *natsServer
	member           *client.Client
	family           identity.FamilyID
	node             string
}

func startAttackHub(t *testing.T) *attackHub {
	t.Helper()
	dir := t.TempDir()
	ns := startNATS(t, freePort(t))
	t.Cleanup(ns.stop)
	tcpPort, wsPort, metricsPort := freePort(t), freePort(t), freePort(t)
	cfg := fmt.Sprintf("role: hub\nname: nas\ndata_dir: ./hub\nlisten: {tcp: 127.0.0.1:%d, websocket: 127.0.0.1:%d, metrics: 127.0.0.1:%d}\nnats: {url: %q}\n",
		tcpPort, wsPort, metricsPort, ns.url)
	os.WriteFile(filepath.Join(dir, "hub.yaml"), []byte(cfg), 0o600)
	a := &attackHub{hub: start(t, dir, "hub", "-config", "hub.yaml", "-invite", "client"), nats: ns,
		tcp: fmt.Sprintf("127.0.0.1:%d", tcpPort), ws: fmt.Sprintf("ws://127.0.0.1:%d/myclerk", wsPort),
		metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)}
	code := ""
	for _, l := range a.hub.until(t, regexp.MustCompile(`^On the new machine`)) {
		if c := regexp.MustCompile(`[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}`).FindString(l); c != "" {
			code = c
		}
	}
	if r := runBin(t, dir, "pair", "-hub", "tcp://"+a.tcp, "-code", code, "-name", "phone", "-role", "client", "-data", "./phone"); r.code != 0 {
		t.Fatalf("pair: %s %s", r.stdout, r.stderr)
	}
	c := config.Default()
	c.DataDir = filepath.Join(dir, "phone")
	id, root, err := runtime.LoadMember(c)
	if err != nil {
		t.Fatal(err)
	}
	a.family, a.node = identity.FamilyOf(root), id.Cert.Node.String()
	ep, _ := runtime.ParseEndpoint(ns.url)
	ctx, cancel := context.WithCancel(context.Background())
	s, done, err := runtime.Open(ctx, c, ep, id, root, nil, zerolog.Nop())
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

// injector is a NATS connection for an attacker; it uses the credentials
// in MYCLERK_TEST_NATS_CREDS when set, and skips the test when the server
// refuses it.
func injector(t *testing.T, url string) *nats.Conn {
	t.Helper()
	var opts []nats.Option
	if creds := os.Getenv("MYCLERK_TEST_NATS_CREDS"); creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Skipf("the NATS server refused an attacker's connection: %v", err)
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
	nc := injector(t, a.nats.url)
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

// TestStrangersBounded: 64 strangers on TCP, WebSocket and NATS flood the
// built hub with frames, handshakes, silence and slowness; its memory,
// goroutines and log stay bounded, come back afterwards, and the member is
// answered throughout.
func TestStrangersBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("attack test")
	}
	a := startAttackHub(t)
	nc := injector(t, a.nats.url)
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
			inbox := fmt.Sprintf("myclerk.%s.stranger%d.c.%016x", a.family, i, n)
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
