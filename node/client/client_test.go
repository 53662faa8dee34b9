package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/agent"
	"github.com/myclerk/myclerk-bridge/node/hub"
	"github.com/myclerk/myclerk-bridge/node/hub/hubtest"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

const wait = 5 * time.Second

// world is a family root, a hub, and sessions to it over transport.Pipe,
// as in node/hub's tests.
type world struct {
	*hubtest.World
}

func newWorld(t *testing.T, cfg hub.Config) *world {
	return &world{World: hubtest.New(t, cfg)}
}

// waitDevices waits until the hub knows n devices.
func (w *world) waitDevices(n int) {
	w.T.Helper()
	for deadline := time.Now().Add(wait); len(w.Hub.Devices()) < n; {
		if time.Now().After(deadline) {
			w.T.Fatalf("the hub knows %d devices, want %d", len(w.Hub.Devices()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startNode connects node name with simulated sensors of the given IDs,
// each reading every interval.
func (w *world) startNode(name string, interval time.Duration, ids ...string) {
	var devs []agent.Device
	for _, id := range ids {
		devs = append(devs, agent.NewSimSensor(id, "sensor "+id, 21, interval))
	}
	before := len(w.Hub.Devices())
	s := w.Connect(w.Member(identity.RoleNode, name))
	ctx, cancel := context.WithCancel(context.Background())
	w.T.Cleanup(cancel)
	go (&agent.Agent{Devices: devs, Log: zerolog.Nop()}).Serve(ctx, s)
	w.waitDevices(before + len(ids))
}

// startSilentNode connects a node that announces device "dev" and never
// answers what the hub relays to it: a DEVICE_CONFIGURE of "NAME/dev"
// stays pending at the hub (for its 30 s relay timeout).
func (w *world) startSilentNode(name string) {
	before := len(w.Hub.Devices())
	s := w.Connect(w.Member(identity.RoleNode, name))
	b, err := ops.Marshal(ops.Announce{Devices: []ops.Device{{ID: "dev", Kind: "serial", Name: "quiet"}}})
	if err != nil {
		w.T.Fatal(err)
	}
	if err := s.Send(context.Background(), wire.OpDeviceAnnounce, b); err != nil {
		w.T.Fatal(err)
	}
	go func() {
		for {
			if _, err := s.Recv(context.Background()); err != nil {
				return
			}
		}
	}()
	w.waitDevices(before + 1)
}

// startClient connects a client named name and runs a Client on it; the
// returned channel yields Run's error.
func (w *world) startClient(ctx context.Context, name string) (*Client, <-chan error) {
	return w.startClientAs(ctx, w.Member(identity.RoleClient, name))
}

func (w *world) startClientAs(ctx context.Context, id *identity.Identity) (*Client, <-chan error) {
	c := New(w.Connect(id), zerolog.Nop())
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()
	return c, ran
}

func (c *Client) pendingLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// waitPending waits until n calls are pending.
func waitPending(t *testing.T, c *Client, n int) {
	t.Helper()
	for deadline := time.Now().Add(wait); c.pendingLen() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls pending, want %d", c.pendingLen(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConcurrentCalls(t *testing.T) {
	const workers, rounds = 20, 10
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	ids := make([]string, workers)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%02d", i)
	}
	w.startNode("pi", time.Hour, ids...)
	c, _ := w.startClient(context.Background(), "bridge")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*3)
	reqs := make(chan uint32, workers*rounds*2)
	for i := range workers {
		wg.Go(func() {
			mine := "pi/" + ids[i]
			for range rounds {
				r, err := c.Call(ctx, wire.OpDeviceInfo, ops.Request{Device: mine})
				switch {
				case err != nil:
					errs <- fmt.Errorf("info %s: %w", mine, err)
				case len(r.Devices) != 1 || r.Devices[0].ID != mine || r.Devices[0].Name != "sensor "+ids[i]:
					errs <- fmt.Errorf("info %s got %+v", mine, r.Devices)
				}
				reqs <- r.Req
				missing := fmt.Sprintf("pi/missing-%d", i)
				if _, err := c.Call(ctx, wire.OpDeviceInfo, ops.Request{Device: missing}); wire.CodeOf(err) != wire.CodeNotFound || !strings.Contains(err.Error(), "no such device") {
					errs <- fmt.Errorf("info %s: %v, want NOT_FOUND", missing, err)
				}
				r, err = c.Call(ctx, wire.OpDeviceList, ops.Request{})
				if err != nil || len(r.Devices) != workers {
					errs <- fmt.Errorf("list: %v, %d devices", err, len(r.Devices))
				}
				reqs <- r.Req
			}
		})
	}
	wg.Wait()
	close(errs)
	close(reqs)
	for err := range errs {
		t.Error(err)
	}
	seen := map[uint32]bool{}
	for id := range reqs {
		if id == 0 || seen[id] {
			t.Errorf("request ID %d reused or zero", id)
		}
		seen[id] = true
	}
	if n := c.pendingLen(); n != 0 {
		t.Errorf("%d calls still pending", n)
	}
}

func TestErrorAnswers(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeRead})
	w.startNode("pi", time.Hour, "temp")
	c, _ := w.startClient(context.Background(), "bridge")
	tests := []struct {
		name   string
		op     wire.Op
		req    ops.Request
		code   wire.Code
		reason string
	}{
		{"info", wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}, wire.CodeOK, ""},
		{"missing device", wire.OpDeviceInfo, ops.Request{Device: "pi/nothing"}, wire.CodeNotFound, hub.ErrNoDevice.Reason},
		{"lock with read-only", wire.OpDeviceLock, ops.Request{Device: "pi/temp"}, wire.CodeForbidden, hub.ErrDenied.Reason},
		{"op the hub does not serve", wire.OpStreamStart, ops.Request{Device: "pi/temp"}, wire.CodeUnsupported, "operation not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			r, err := c.Call(ctx, tt.op, tt.req)
			if got := wire.CodeOf(err); got != tt.code {
				t.Fatalf("code %v (%v), want %v", got, err, tt.code)
			}
			if tt.code == wire.CodeOK {
				if len(r.Devices) != 1 || r.Devices[0].ID != tt.req.Device || r.Mode != ops.ModeRead {
					t.Errorf("reply %+v", r)
				}
				return
			}
			var we *wire.Error
			if !errors.As(err, &we) || we.Reason != tt.reason {
				t.Errorf("error %v: want a *wire.Error with reason %q", err, tt.reason)
			}
			if !strings.Contains(err.Error(), tt.op.String()) {
				t.Errorf("error %q does not name %v", err, tt.op)
			}
		})
	}
	if n := c.pendingLen(); n != 0 {
		t.Errorf("%d calls still pending", n)
	}
}

func TestEvents(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	w.startNode("pi", 20*time.Millisecond, "temp")
	c, _ := w.startClient(context.Background(), "bridge")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if r, err := c.Call(ctx, wire.OpDeviceSubscribe, ops.Request{Device: "pi/temp"}); err != nil || r.Result != "subscribed" {
		t.Fatalf("subscribe: %v %+v", err, r)
	}
	for i := range 3 {
		select {
		case e := <-c.Events():
			if e.Device != "pi/temp" || e.Kind != "reading" || e.Values["temperature"] == "" {
				t.Errorf("event %d: %+v", i, e)
			}
		case <-ctx.Done():
			t.Fatalf("event %d did not arrive", i)
		}
	}
	// Calls go on while events flow.
	if _, err := c.Call(ctx, wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); err != nil {
		t.Errorf("info while subscribed: %v", err)
	}
}

func TestSessionEnd(t *testing.T) {
	tests := []struct {
		name string
		end  func(w *world, c *Client, me identity.NodeID)
		want error
	}{
		{"client closes", func(_ *world, c *Client, _ identity.NodeID) { c.Session().Close(context.Background()) }, session.ErrClosed},
		{"hub revokes", func(w *world, _ *Client, me identity.NodeID) {
			if n := w.Hub.RevokeNode(context.Background(), me); n != 1 {
				w.T.Errorf("revoked %d sessions", n)
			}
		}, session.ErrRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const calls = 5
			w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
			w.startSilentNode("quiet")
			w.startNode("pi", time.Hour, "temp")
			me := w.Member(identity.RoleClient, "bridge")
			c, ran := w.startClientAs(context.Background(), me)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			results := make(chan error, calls)
			for range calls {
				go func() {
					_, err := c.Call(ctx, wire.OpDeviceConfigure, ops.Request{Device: "quiet/dev", Settings: map[string]string{"a": "b"}})
					results <- err
				}()
			}
			waitPending(t, c, calls)
			select {
			case err := <-results:
				t.Fatalf("a call to the silent node returned early: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
			select {
			case <-c.Done():
				t.Fatal("Done closed while the session is open")
			default:
			}
			if c.Err() != nil {
				t.Fatalf("Err before Run returned: %v", c.Err())
			}

			tt.end(w, c, me.Cert.Node)

			for i := range calls {
				select {
				case err := <-results:
					if !errors.Is(err, tt.want) {
						t.Errorf("pending call %d: %v, want %v", i, err, tt.want)
					}
				case <-ctx.Done():
					t.Fatalf("pending call %d did not fail", i)
				}
			}
			select {
			case <-c.Done():
			case <-ctx.Done():
				t.Fatal("Done not closed")
			}
			if err := <-ran; !errors.Is(err, tt.want) {
				t.Errorf("Run: %v, want %v", err, tt.want)
			}
			if err := c.Err(); !errors.Is(err, tt.want) {
				t.Errorf("Err: %v, want %v", err, tt.want)
			}
			wantEventsClosed(t, c)
			if _, err := c.Call(ctx, wire.OpDeviceInfo, ops.Request{Device: "pi/temp"}); !errors.Is(err, tt.want) {
				t.Errorf("call after the end: %v, want %v", err, tt.want)
			}
			if n := c.pendingLen(); n != 0 {
				t.Errorf("%d calls still pending", n)
			}
			if err := c.Run(ctx); !errors.Is(err, ErrRunning) {
				t.Errorf("second Run: %v", err)
			}
		})
	}
}

func TestCallContext(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	w.startSilentNode("quiet")
	c, _ := w.startClient(context.Background(), "bridge")
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		end  func(cancel context.CancelFunc) // ends the call once it is pending
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, func(context.CancelFunc) {}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			func(cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"cancelled before", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, nil, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := c.Call(ctx, wire.OpDeviceConfigure, ops.Request{Device: "quiet/dev"})
				done <- err
			}()
			if tt.end != nil {
				waitPending(t, c, 1)
				tt.end(cancel)
			}
			select {
			case err := <-done:
				if err != tt.want { // ctx.Err() itself, not wrapped
					t.Errorf("Call: %v, want %v", err, tt.want)
				}
			case <-time.After(wait):
				t.Fatal("Call did not return")
			}
			if n := c.pendingLen(); n != 0 {
				t.Errorf("%d calls still pending after ctx ended", n)
			}
		})
	}
	// The client still works.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if r, err := c.Call(ctx, wire.OpDeviceList, ops.Request{}); err != nil || len(r.Devices) != 1 {
		t.Errorf("list after cancelled calls: %v %+v", err, r)
	}
}

func TestRunContext(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	w.startSilentNode("quiet")
	ctx, cancel := context.WithCancel(context.Background())
	c, ran := w.startClient(ctx, "bridge")
	callCtx, callCancel := context.WithTimeout(context.Background(), wait)
	defer callCancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(callCtx, wire.OpDeviceConfigure, ops.Request{Device: "quiet/dev"})
		done <- err
	}()
	waitPending(t, c, 1)
	cancel()
	select {
	case err := <-ran:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return when its ctx was cancelled")
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("pending call: %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("Done not closed")
	}
	wantEventsClosed(t, c)
}

// TestDispatch feeds Run's dispatcher what a peer might send.
func TestDispatch(t *testing.T) {
	var logs bytes.Buffer
	c := New(nil, zerolog.New(&logs).Level(zerolog.DebugLevel))
	const id = 7
	ch := make(chan result, 1)
	c.pending[id] = ch
	mustMarshal := func(v any) []byte {
		b, err := ops.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	errPayload := func(e payload.Error) []byte {
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ignored := []struct {
		name string
		m    session.Message
		log  string
	}{
		{"malformed reply", session.Message{Op: wire.OpDeviceInfo, Payload: []byte{0xc1, 0xff}}, "malformed reply"},
		{"reply of a wrong shape", session.Message{Op: wire.OpDeviceList, Payload: mustMarshal(map[string]any{"req": "seven"})}, "malformed reply"},
		{"truncated reply", session.Message{Op: wire.OpDeviceList, Payload: mustMarshal(ops.Reply{Req: id, Result: "x"})[:3]}, "malformed reply"},
		{"malformed error", session.Message{Op: wire.OpError, Payload: []byte{0x93, 1}}, "malformed ERROR"},
		{"malformed event", session.Message{Op: wire.OpDeviceEvent, Payload: []byte{0xde}}, "malformed device event"},
		{"empty payload", session.Message{Op: wire.OpDeviceInfo}, "malformed reply"},
		{"unknown request", session.Message{Op: wire.OpDeviceInfo, Payload: mustMarshal(ops.Reply{Req: id + 1})}, "no pending request"},
		{"error with ref-seq 0", session.Message{Op: wire.OpError, Payload: errPayload(payload.Error{Code: wire.CodeBadRequest})}, "no pending request"},
		{"unknown op", session.Message{Op: wire.OpStreamData, Payload: mustMarshal(ops.Reply{Req: id})}, "does not handle"},
		{"announce", session.Message{Op: wire.OpDeviceAnnounce, Payload: mustMarshal(ops.Reply{Req: id})}, "does not handle"},
	}
	for _, tt := range ignored {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			c.dispatch(tt.m)
			select {
			case r := <-ch:
				t.Fatalf("delivered %+v", r)
			default:
			}
			if c.pendingLen() != 1 {
				t.Fatal("the pending call was removed")
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log %q, want %q", logs.String(), tt.log)
			}
		})
	}

	c.dispatch(session.Message{Op: wire.OpDeviceInfo, Payload: mustMarshal(ops.Reply{Req: id, Result: "ok"})})
	if r := <-ch; r.err != nil || r.answer != nil || r.reply.Result != "ok" {
		t.Errorf("reply delivered as %+v", r)
	}
	c.pending[id] = ch
	c.dispatch(session.Message{Op: wire.OpError, Payload: errPayload(payload.Error{Code: wire.CodeForbidden, RefSeq: id, RequiredTier: 4, HasRequiredTier: true})})
	r := <-ch
	if r.answer == nil {
		t.Fatalf("ERROR delivered as %+v", r)
	}
	err := answerError(wire.OpDeviceLock, r.answer)
	if wire.CodeOf(err) != wire.CodeForbidden || !strings.Contains(err.Error(), "needs tier 4") || !strings.Contains(err.Error(), "DEVICE_LOCK") {
		t.Errorf("answer error %v", err)
	}
	if c.pendingLen() != 0 {
		t.Error("answered calls still pending")
	}

	// A full Events channel drops and counts.
	ev := mustMarshal(ops.Event{Device: "pi/temp", Kind: "reading"})
	for range EventBuffer + 44 {
		c.dispatch(session.Message{Op: wire.OpDeviceEvent, Payload: ev})
	}
	if len(c.Events()) != EventBuffer || c.Dropped() != 44 {
		t.Errorf("%d events buffered, %d dropped; want %d, 44", len(c.Events()), c.Dropped(), EventBuffer)
	}
	if e := <-c.Events(); e.Device != "pi/temp" || e.Kind != "reading" {
		t.Errorf("event %+v", e)
	}
}

func TestRequestIDs(t *testing.T) {
	c := New(nil, zerolog.Nop())
	c.next.Store(math.MaxUint32 - 1)
	c.pending[1] = make(chan result, 1) // still pending after the wrap
	var got []uint32
	for range 3 {
		id, _, err := c.register()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if want := []uint32{math.MaxUint32, 2, 3}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("IDs %v, want %v (never 0, never a pending one)", got, want)
	}
	c.finish(session.ErrClosed)
	if _, _, err := c.register(); !errors.Is(err, session.ErrClosed) {
		t.Errorf("register after the end: %v", err)
	}
}

// wantEventsClosed fails unless c's Events channel is closed (soon).
func wantEventsClosed(t *testing.T, c *Client) {
	t.Helper()
	select {
	case _, ok := <-c.Events():
		if ok {
			t.Error("an event instead of a closed Events")
		}
	case <-time.After(wait):
		t.Error("Events not closed")
	}
}

// TestCallTimeout: a call whose context has no deadline ends after the
// client's Timeout with TIMEOUT, when the hub never answers it.
func TestCallTimeout(t *testing.T) {
	w := newWorld(t, hub.Config{DefaultMode: ops.ModeReadWrite})
	w.startSilentNode("quiet")
	c, _ := w.startClient(context.Background(), "phone")
	c.Timeout = 100 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), wire.OpDeviceConfigure, ops.Request{Device: "quiet/dev"})
		done <- err
	}()
	select {
	case err := <-done:
		if wire.CodeOf(err) != wire.CodeTimeout {
			t.Errorf("Call: %v, want TIMEOUT", err)
		}
	case <-time.After(wait):
		t.Fatal("a call without a deadline waits for ever")
	}
	if n := c.pendingLen(); n != 0 {
		t.Errorf("%d calls still pending", n)
	}
}
