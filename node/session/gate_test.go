package session

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/ratelog"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/node/transport/transporttest"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// quiet waits a little for a frame on c and fails the test if one comes:
// what a session drops must never be answered.
func quiet(t *testing.T, c transport.Conn, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if b, err := c.ReadFrame(ctx); err == nil {
		t.Fatalf("%s was answered with a %d-byte frame", what, len(b))
	}
}

func plain(t *testing.T, tier wire.Tier, op wire.Op, sid uint16, seq uint8, body []byte) []byte {
	t.Helper()
	b, err := wire.AppendPlain(nil, &wire.Header{Tier: tier, Op: op, SessionID: sid, Sequence: seq}, nil, body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPlainFramesInSessionDropped: once a session has keys, a Tier 1-2
// frame is neither answered nor returned nor taken as an answer.
func TestPlainFramesInSessionDropped(t *testing.T) {
	f := newFamily(t)
	errBody, _ := (&payload.Error{Code: wire.CodeUnauthorized, RefSeq: 1, Message: "forged"}).Marshal()
	tests := []struct {
		name  string
		frame func(sid uint16) []byte
	}{
		{"tier 1 ERROR", func(uint16) []byte { return plain(t, wire.Tier1, wire.OpError, 0, 1, errBody) }},
		{"tier 2 ERROR with the session ID", func(sid uint16) []byte { return plain(t, wire.Tier2, wire.OpError, sid, 1, errBody) }},
		{"tier 1 request", func(uint16) []byte { return plain(t, wire.Tier1, wire.OpGPIOLineSet, 0, 77, []byte("1")) }},
		{"tier 2 request", func(sid uint16) []byte { return plain(t, wire.Tier2, wire.OpDeviceList, sid, 78, nil) }},
		{"tier 1 KEEPALIVE", func(uint16) []byte { return plain(t, wire.Tier1, wire.OpKeepalive, 0, 2, nil) }},
		{"tier 2 NOP", func(sid uint16) []byte { return plain(t, wire.Tier2, wire.OpNOP, sid, 3, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, sc := transport.Pipe()
			p, cerr, serr := connect(t, cc, sc, f.config(f.node, wire.Tier3), &Responder{Config: f.config(f.hub, wire.Tier3)})
			if cerr != nil || serr != nil {
				t.Fatal(cerr, serr)
			}
			ctx := context.Background()
			// Towards the hub: dropped, not answered.
			got := make(chan Message, 1)
			go func() {
				m, _ := p.server.Recv(ctx)
				got <- m
			}()
			before := p.server.Status().Rejected
			cc.WriteFrame(ctx, tt.frame(p.server.ID()))
			quiet(t, cc, "an injected plaintext frame")
			if err := p.client.Send(ctx, wire.OpDeviceList, []byte("real")); err != nil {
				t.Fatal(err)
			}
			if m := <-got; m.Op != wire.OpDeviceList || string(m.Payload) != "real" {
				t.Fatalf("the hub's Recv returned %+v, want the genuine request", m)
			}
			if n := p.server.Status().Rejected - before; n != 1 {
				t.Errorf("the hub counted %d rejections, want 1", n)
			}
			// Towards a client waiting for a reply: not taken as the reply.
			sc.WriteFrame(ctx, tt.frame(p.client.ID()))
			if err := p.server.Send(ctx, wire.OpDeviceInfo, []byte("reply")); err != nil {
				t.Fatal(err)
			}
			if m := recv(t, p.client); m.Op != wire.OpDeviceInfo || string(m.Payload) != "reply" {
				t.Fatalf("the client's Recv returned %+v, want the genuine reply", m)
			}
			if n := p.client.Status().Rejected; n != 1 {
				t.Errorf("the client counted %d rejections, want 1", n)
			}
		})
	}
}

// TestSealedBelowSessionTier: a frame sealed with the session's keys but
// below its tier is dropped unanswered; one at the session's tier but
// below its op's minimum keeps its ERROR FORBIDDEN (TestPolicyForbidden).
func TestSealedBelowSessionTier(t *testing.T) {
	f := newFamily(t)
	p := mustConnect(t, f, wire.Tier4, wire.Tier4)
	ctx := context.Background()
	got := make(chan Message, 1)
	go func() {
		m, _ := p.server.Recv(ctx)
		got <- m
	}()
	if err := p.client.SendAt(ctx, wire.OpDeviceList, wire.Tier3, []byte("low")); err != nil {
		t.Fatal(err)
	}
	if err := p.client.Send(ctx, wire.OpDeviceList, []byte("high")); err != nil {
		t.Fatal(err)
	}
	if m := <-got; string(m.Payload) != "high" || m.Tier != wire.Tier4 {
		t.Fatalf("the hub's Recv returned %+v, want the tier 4 request", m)
	}
	if n := p.server.Status().Rejected; n != 1 {
		t.Errorf("rejected %d, want 1", n)
	}
	done := make(chan struct{})
	go func() { defer close(done); p.client.Recv(ctx) }()
	select {
	case <-done:
		t.Fatal("the tier 3 frame was answered")
	case <-time.After(150 * time.Millisecond):
	}
	p.client.shutdown(ErrClosed)
	<-done
}

// TestFragmentsMustAgree: the fragments of one message carry one op, one
// tier and the same flags, or the message is dropped.
func TestFragmentsMustAgree(t *testing.T) {
	f := newFamily(t)
	tests := []struct {
		name         string
		second       wire.Header
		wantRejected int64
	}{
		{"other op", wire.Header{Tier: wire.Tier3, Encrypted: true, Fragmented: true, Op: wire.OpDeviceList}, 1},
		{"higher tier", wire.Header{Tier: wire.Tier5, Encrypted: true, Fragmented: true, Op: wire.OpStreamData}, 1},
		{"compressed, then not", wire.Header{Tier: wire.Tier3, Encrypted: true, Fragmented: true, Op: wire.OpStreamData}, 1},
		{"not encrypted", wire.Header{Tier: wire.Tier3, Fragmented: true, Op: wire.OpStreamData}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustConnect(t, f, wire.Tier3, wire.Tier3)
			ctx := context.Background()
			got := make(chan Message, 1)
			go func() {
				m, _ := p.server.Recv(ctx)
				got <- m
			}()
			first := wire.Header{Tier: wire.Tier3, Encrypted: true, Fragmented: true, Op: wire.OpStreamData, SessionID: p.client.ID()}
			first.Compressed = strings.HasPrefix(tt.name, "compressed")
			second := tt.second
			second.SessionID = p.client.ID()
			if err := p.client.sendFrame(ctx, &first, &wire.FragmentHeader{MessageID: 9, Index: 0, Total: 2}, []byte("aaaa")); err != nil {
				t.Fatal(err)
			}
			if err := p.client.sendFrame(ctx, &second, &wire.FragmentHeader{MessageID: 9, Index: 1, Total: 2}, []byte("bbbb")); err != nil {
				t.Fatal(err)
			}
			if err := p.client.Send(ctx, wire.OpDeviceList, []byte("after")); err != nil {
				t.Fatal(err)
			}
			if m := <-got; string(m.Payload) != "after" {
				t.Fatalf("Recv returned %v %q, want the message after the mixed one", m.Op, m.Payload)
			}
			if n := p.server.Status().Rejected; n != tt.wantRejected {
				t.Errorf("rejected %d, want %d", n, tt.wantRejected)
			}
		})
	}
}

// stranger runs a handshake up to SESSION_ACK, then does what it is told
// instead of SESSION_AUTH, and returns what the responder's Accept said.
func stranger(t *testing.T, f *family, r *Responder, ctx context.Context, act func(s *Session, ctx context.Context) error) error {
	t.Helper()
	cc, sc := transport.Pipe()
	var serr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, serr = r.Accept(ctx, sc)
	}()
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := dial(dctx, cc, f.config(f.node, wire.Tier3), func(s *Session, ctx context.Context, _ [32]byte) error { return act(s, ctx) })
	if err != nil && !errors.Is(err, transport.ErrClosed) {
		t.Logf("stranger: %v", err)
	}
	cc.Close()
	wg.Wait()
	return serr
}

// TestStrangerGetsOnlyTheHandshake: before SESSION_AUTH is verified a
// peer gets no KEEPALIVE answer and no key exchange, and what it may make
// the responder hold is small.
func TestStrangerGetsOnlyTheHandshake(t *testing.T) {
	f := newFamily(t)
	r := &Responder{Config: f.config(f.hub, wire.Tier3)}
	ctx := context.Background()

	t.Run("keepalive and key exchange are not answered", func(t *testing.T) {
		for _, op := range []wire.Op{wire.OpKeepalive, wire.OpKeyExchangeInit} {
			var answered []wire.Op
			serr := stranger(t, f, r, ctx, func(s *Session, ctx context.Context) error {
				kx, _ := (&payload.KeyExchange{}).Marshal()
				if err := s.Send(ctx, op, kx); err != nil {
					return err
				}
				rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				defer cancel()
				if b, err := s.conn.ReadFrame(rctx); err == nil {
					if o, err := s.opener.Open(nil, b, s.cfg.now()); err == nil {
						answered = append(answered, o.Header.Op)
					}
				}
				return s.proveAndVerify(ctx, s.th) // then a proper handshake
			})
			if len(answered) > 0 {
				t.Errorf("%v before SESSION_AUTH was answered with %v", op, answered)
			}
			if serr != nil {
				t.Errorf("%v before SESSION_AUTH: the handshake after it failed: %v", op, serr)
			}
		}
	})

	t.Run("fragment upload is capped", func(t *testing.T) {
		sent := 0
		start := time.Now()
		serr := stranger(t, f, r, ctx, func(s *Session, ctx context.Context) error {
			body := bytes.Repeat([]byte{'x'}, 4000)
			for i := range 1000 { // 4 MB of a message that never completes
				h := wire.Header{Tier: wire.Tier3, Encrypted: true, Fragmented: true, Op: wire.OpStreamData, SessionID: s.id}
				if err := s.sendFrame(ctx, &h, &wire.FragmentHeader{MessageID: 1, Index: uint16(i), Total: 1000}, body); err != nil {
					return err
				}
				sent += len(body)
			}
			return nil
		})
		if !errors.Is(serr, ErrPreAuthLimit) {
			t.Fatalf("Accept: %v, want ErrPreAuthLimit", serr)
		}
		if sent > wire.PreAuthBytes+65*4000 { // the frame that crosses the limit, then the pipe buffers 64
			t.Errorf("the stranger sent %d bytes before the responder gave up", sent)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("one large frame", func(t *testing.T) {
		serr := stranger(t, f, r, ctx, func(s *Session, ctx context.Context) error {
			return s.Send(ctx, wire.OpStreamData, make([]byte, wire.PreAuthMaxFrame))
		})
		if !errors.Is(serr, ErrPreAuthLimit) {
			t.Fatalf("Accept: %v, want ErrPreAuthLimit", serr)
		}
	})

	t.Run("the handshake deadline holds under a longer context", func(t *testing.T) {
		r := &Responder{Config: f.config(f.hub, wire.Tier3), HandshakeTimeout: 200 * time.Millisecond}
		long, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		start := time.Now()
		serr := stranger(t, f, r, long, func(s *Session, ctx context.Context) error {
			_, err := s.conn.ReadFrame(ctx) // stall until the responder gives up
			return err
		})
		if !errors.Is(serr, context.DeadlineExceeded) {
			t.Errorf("Accept: %v, want a deadline", serr)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Accept took %v with a 200 ms handshake timeout", d)
		}
	})
}

// TestRejectLogIsRateLimited: a flood of rejected frames writes a few log
// lines and then one that says how many were left out; the counter keeps
// the true number.
func TestRejectLogIsRateLimited(t *testing.T) {
	f := newFamily(t)
	var buf syncBuffer
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	scfg := f.config(f.hub, wire.Tier3)
	scfg.Log = zerolog.New(&buf)
	scfg.RejectLog = ratelog.New(3, time.Minute, clock)
	cc, sc := transport.Pipe()
	p, cerr, serr := connect(t, cc, sc, f.config(f.node, wire.Tier3), &Responder{Config: scfg})
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	ctx := context.Background()
	go func() {
		for {
			if _, err := p.server.Recv(ctx); err != nil {
				return
			}
		}
	}()
	junk := plain(t, wire.Tier1, wire.OpGPIOLineSet, 0, 1, []byte("1"))
	for range 50 {
		cc.WriteFrame(ctx, junk)
	}
	waitFor(t, func() bool { return p.server.Status().Rejected == 50 })
	if n := strings.Count(buf.String(), `"level":"warn"`); n != 3 {
		t.Errorf("50 rejected frames wrote %d log lines, want 3:\n%s", n, buf.String())
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	cc.WriteFrame(ctx, junk)
	waitFor(t, func() bool { return p.server.Status().Rejected == 51 })
	var lines []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, `"level":"warn"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 4 || !strings.Contains(lines[3], `"suppressed":47`) {
		t.Errorf("after a minute: %d lines, the last %q; want 4 and suppressed 47", len(lines), lines[len(lines)-1])
	}
	p.client.shutdown(ErrClosed)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer a logger and a test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestStrangerLargeFrameRefusedByItsPrefix: over TCP a stranger's first
// frame over PreAuthMaxFrame is refused by its length prefix: the
// responder neither waits for nor holds its body.
func TestStrangerLargeFrameRefusedByItsPrefix(t *testing.T) {
	f := newFamily(t)
	r := &Responder{Config: f.config(f.hub, wire.Tier3)}
	c, s := transporttest.LoopbackTCP(t)
	done := make(chan error, 1)
	go func() { _, err := r.Accept(context.Background(), transport.NewStream(s)); done <- err }()
	if _, err := c.Write([]byte{0, 0x0f, 0, 0, 0x20, 1, 2, 3}); err != nil { // 1 MiB announced, 4 bytes sent
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, wire.ErrTooLarge) {
			t.Errorf("Accept: %v, want a frame too large", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the responder waits for the body of a 1 MiB frame from a stranger")
	}
}

// TestHubOnlyOps: SESSION_REVOKE and SESSION_TICKET are the hub's to send
// (the op table's senders); from a node they are dropped and counted.
func TestHubOnlyOps(t *testing.T) {
	f := newFamily(t)
	p := mustConnect(t, f, wire.Tier3, wire.Tier3) // client: the node; server: the hub
	ctx := context.Background()
	if err := p.client.Send(ctx, wire.OpSessionRevoke, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.client.Send(ctx, wire.OpSessionTicket, []byte{0x80}); err != nil {
		t.Fatal(err)
	}
	p.client.Send(ctx, wire.OpDeviceList, nil)
	if m := recv(t, p.server); m.Op != wire.OpDeviceList {
		t.Fatalf("after a node's SESSION_REVOKE the hub got %v", m.Op)
	}
	if st := p.server.Status(); st.Rejected != 2 {
		t.Errorf("%d rejected, want 2", st.Rejected)
	}
	// The hub's own revoke still ends the node's session.
	errc := make(chan error, 1)
	go func() { _, err := p.client.Recv(ctx); errc <- err }()
	p.server.Revoke(ctx)
	if err := <-errc; !errors.Is(err, ErrRevoked) {
		t.Errorf("the node after the hub's revoke: %v", err)
	}
}
