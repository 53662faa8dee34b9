package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/myclerk/myclerk-bridge/wire"
)

// natsFrames is n distinct frames (first byte: Tier 3 flags, E set).
func natsFrames(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Repeat([]byte{byte(i + 1)}, size)
		out[i][0] = 0x19
	}
	return out
}

func readFrames(t *testing.T, c Conn, want [][]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, w := range want {
		got, err := c.ReadFrame(ctx)
		if err != nil || !bytes.Equal(got, w) {
			t.Fatalf("frame %d: %d bytes (%x…), %v; want %d bytes (%x…)", i, len(got), got[:min(4, len(got))], err, len(w), w[:4])
		}
	}
}

// connected returns a NATS pair after frames each way, so that both ends
// have seen the other's first message and are past their first writes.
func connected(t *testing.T) (d, a *NATSConn) {
	dc, ac := natsPair(t)
	d, a = dc.(*NATSConn), ac.(*NATSConn)
	for _, c := range [][2]*NATSConn{{a, d}, {d, a}} {
		if err := c[0].WriteFrame(context.Background(), []byte{0x19, 0}); err != nil {
			t.Fatal(err)
		}
		readFrames(t, c[1], [][]byte{{0x19, 0}})
	}
	return d, a
}

// TestNATSContainers: frames written while the link is busy leave in one
// container, in order, and arrive as the frames they were.
func TestNATSContainers(t *testing.T) {
	d, a := connected(t)
	if !d.Coalescing() || !a.Coalescing() {
		t.Fatalf("both ends are new: coalescing %v %v", d.Coalescing(), a.Coalescing())
	}
	ctx := context.Background()
	frames := natsFrames(10, 700)
	before := d.nc.Stats().OutMsgs
	d.pmu.Lock() // as if a publish were under way: the frames queue
	for _, f := range frames {
		if err := d.WriteFrame(ctx, f); err != nil {
			t.Fatal(err)
		}
		f[1] = 0xee // the frame is the caller's again once WriteFrame returns
	}
	d.pmu.Unlock()
	for _, f := range frames {
		f[1] = f[2]
	}
	readFrames(t, a, frames)
	if n := d.nc.Stats().OutMsgs - before; n != 1 {
		t.Errorf("10 queued frames went out as %d messages, want 1 container", n)
	}

	// A frame too large for a container goes alone, after what was
	// queued before it and before what is written after it.
	big := bytes.Repeat([]byte{0x77}, maxContainer)
	big[0] = 0x19
	small := natsFrames(5, 100)
	d.pmu.Lock()
	for _, f := range small[:3] {
		d.WriteFrame(ctx, f)
	}
	done := make(chan error, 1)
	go func() {
		err := d.WriteFrame(ctx, big)
		for _, f := range small[3:] {
			err = errors.Join(err, d.WriteFrame(ctx, f))
		}
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it wait for the publisher's lock
	d.pmu.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	readFrames(t, a, [][]byte{small[0], small[1], small[2], big, small[3], small[4]})
	// Once the queue is published, its memory goes back to the pool.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		d.wmu.Lock()
		idle, held := !d.flushing, cap(d.queue)
		d.wmu.Unlock()
		if idle {
			if held != 0 {
				t.Errorf("an idle connection holds %d bytes of queue", held)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flusher did not end")
		}
	}

	// Without coalescing every frame is a message of its own.
	d.SetCoalesce(false)
	before = d.nc.Stats().OutMsgs
	d.pmu.Lock()
	for _, f := range frames {
		d.WriteFrame(ctx, f)
	}
	d.pmu.Unlock()
	readFrames(t, a, frames)
	if n := d.nc.Stats().OutMsgs - before; n != 10 {
		t.Errorf("coalescing off: %d messages for 10 frames", n)
	}
}

// TestNATSContainersUnderLoad: many writers, many frames, none lost,
// each writer's in order.
func TestNATSContainersUnderLoad(t *testing.T) {
	d, a := connected(t)
	ctx := context.Background()
	const writers, each = 4, 500
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			var err error
			for i := range each {
				f := []byte(fmt.Sprintf("\x58%d:%d:%s", w, i, bytes.Repeat([]byte{'x'}, i%1500)))
				err = errors.Join(err, d.WriteFrame(ctx, f))
			}
			errs <- err
		}()
	}
	next := make([]int, writers)
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for range writers * each {
		f, err := a.ReadFrame(rctx)
		if err != nil {
			t.Fatalf("after %v frames: %v", next, err)
		}
		var w, i int
		if _, err := fmt.Sscanf(string(f[1:]), "%d:%d:", &w, &i); err != nil || w >= writers || i != next[w] {
			t.Fatalf("frame %q out of order (next %v)", f[:min(len(f), 12)], next)
		}
		next[w]++
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestNATSMalformedMessages: a malformed container or an oversized
// message is dropped with a MessageError and reading goes on.
func TestNATSMalformedMessages(t *testing.T) {
	d, a := connected(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, bad := range []struct {
		data []byte
		want error
	}{
		{[]byte{0, 0, 0, 0, 9, 0x19}, wire.ErrTruncated},
		{[]byte{0}, wire.ErrTruncated},
		{[]byte{0, 0, 0x10, 0, 1, 0x19}, wire.ErrTooLarge},
	} {
		if err := d.nc.Publish(a.local, bad.data); err != nil {
			t.Fatal(err)
		}
		d.WriteFrame(ctx, []byte{0x19, 1})
		var me *MessageError
		if _, err := a.ReadFrame(ctx); !errors.As(err, &me) || !errors.Is(err, bad.want) {
			t.Fatalf("%x: %v, want a MessageError with %v", bad.data, err, bad.want)
		}
		readFrames(t, a, [][]byte{{0x19, 1}})
	}
}

// TestNATSOlderPeers: an end that did not say it reads containers gets
// one frame per message, whichever end it is.
func TestNATSOlderPeers(t *testing.T) {
	nc := natsClients(t, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// An older acceptor answers the hello without the header.
	old, err := nc.SubscribeSync("old.end")
	if err != nil {
		t.Fatal(err)
	}
	acc, err := nc.Subscribe(AcceptSubject("fam", "oldhub"), func(m *nats.Msg) {
		if m.Header.Get(containersHeader) != containersValue {
			t.Error("a new dialer's first frame does not say it reads containers")
		}
		nc.PublishMsg(&nats.Msg{Subject: m.Reply, Reply: "old.end"})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Unsubscribe()
	d, err := DialNATS(nc, "fam", "pi", "oldhub")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.WriteFrame(ctx, []byte{0x19, 0}) // SESSION_INIT's place
	<-d.known
	frames := natsFrames(5, 300)
	d.pmu.Lock() // would queue, if the peer read containers
	for _, f := range frames {
		if err := d.WriteFrame(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	d.pmu.Unlock()
	if d.Coalescing() {
		t.Error("coalescing towards an older acceptor")
	}
	for i, f := range frames {
		m, err := old.NextMsg(5 * time.Second)
		if err != nil || !bytes.Equal(m.Data, f) {
			t.Fatalf("message %d: %v", i, err)
		}
	}

	// A new acceptor, an older dialer (no header on its first frame).
	l, err := ListenNATS(nc, "fam", "newhub")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hello, err := nc.SubscribeSync("myclerk.fam.older.c.0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishMsg(&nats.Msg{Subject: AcceptSubject("fam", "newhub"), Reply: "myclerk.fam.older.c.0123456789abcdef", Data: []byte{0x19, 0}}); err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h, err := hello.NextMsg(5 * time.Second); err != nil || h.Header.Get(containersHeader) != containersValue {
		t.Fatalf("the acceptor's hello does not say it reads containers: %v", err)
	}
	if c.Coalescing() {
		t.Error("coalescing towards an older dialer")
	}
}

// TestNATSQueuedFrameFailure: frames that could not be published after
// they were queued make the next WriteFrame fail, once.
func TestNATSQueuedFrameFailure(t *testing.T) {
	d, _ := connected(t)
	ctx := context.Background()
	d.pmu.Lock()
	for _, f := range natsFrames(2, 100) {
		if err := d.WriteFrame(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	d.nc.Close()
	d.pmu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		d.wmu.Lock()
		flushing, werr := d.flushing, d.werr
		d.wmu.Unlock()
		if !flushing {
			if !errors.Is(werr, nats.ErrConnectionClosed) {
				t.Fatalf("publishing the queue on a closed connection: %v", werr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flusher did not end")
		}
	}
	d.pmu.Lock() // the next frame takes the queue's way, where the error waits
	err := d.WriteFrame(ctx, []byte{0x19, 1})
	d.pmu.Unlock()
	if !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("the next write: %v", err)
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.werr != nil {
		t.Error("the error was kept after it was reported")
	}
}

// TestNATSReplySubjects: a reply subject needs no permission to claim, so
// the listener takes a connection attempt only from a dialer's connection
// subject (myclerk.<family>.<node ID>.c.<16 hex digits> for a hub); any
// other is dropped unanswered and counted.
func TestNATSReplySubjects(t *testing.T) {
	nc := natsClients(t, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := ListenNATS(nc, "fam", "hub")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.PeerToken = NodeIDToken
	node := strings.Repeat("0a", 16)
	bad := []string{
		"_INBOX.abc",
		"myclerk.fam." + node + ".accept",
		"myclerk.other." + node + ".c.0123456789abcdef",
		"myclerk.fam.pi.c.0123456789abcdef",
		"myclerk.fam." + strings.ToUpper(node) + ".c.0123456789abcdef",
		"myclerk.fam." + node + "0.c.0123456789abcdef",
		"myclerk.fam." + node + ".c.0123456789abcdeg",
		"myclerk.fam." + node + ".c.0123456789abcdef0",
		"myclerk.fam." + node + ".c.0123456789abcdef.x",
		"myclerk.fam.x." + node + ".c.0123456789abcdef",
	}
	good := "myclerk.fam." + node + ".c.0123456789abcdef"
	for _, reply := range append(bad, good) {
		if err := nc.PublishMsg(&nats.Msg{Subject: AcceptSubject("fam", "hub"), Reply: reply, Data: []byte{0x19, 0}}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.RemoteAddr(); got != "nats "+good {
		t.Errorf("accepted %s, want only %s", got, good)
	}
	if n := l.Refused(); n != int64(len(bad)) {
		t.Errorf("%d attempts refused, want %d", n, len(bad))
	}
}
