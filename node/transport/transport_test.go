package transport

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"

	"github.com/myclerk/myclerk-bridge/node/transport/natstest"
	"github.com/myclerk/myclerk-bridge/node/transport/transporttest"
	"github.com/myclerk/myclerk-bridge/wire"
)

// pairFunc returns two connected Conns: a dialer's and an acceptor's.
type pairFunc func(t *testing.T) (Conn, Conn)

func tcpPair(t *testing.T) (Conn, Conn) {
	c, s := transporttest.LoopbackTCP(t)
	return NewStream(c), NewStream(s)
}

func wsPair(t *testing.T) (Conn, Conn) {
	acc := make(chan Conn, 1)
	done := make(chan struct{})
	srv := httptest.NewServer(WebSocketHandler(func(c Conn) {
		acc <- c
		<-done // keep the handler (and so the connection) alive
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	c, err := DialWebSocket(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	return c, <-acc
}

// natsClients starts an embedded NATS server and connects n clients to it.
func natsClients(t *testing.T, n int) []*nats.Conn {
	e := natstest.Start(t, "127.0.0.1:0")
	var err error
	ncs := make([]*nats.Conn, n)
	for i := range ncs {
		if ncs[i], err = nats.Connect(e.URL()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ncs[i].Close)
	}
	return ncs
}

func natsPair(t *testing.T) (Conn, Conn) {
	ncs := natsClients(t, 2)
	nc1, nc2 := ncs[0], ncs[1]
	l, err := ListenNATS(nc2, "fam", "hub")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	d, err := DialNATS(nc1, "fam", "pi", "hub")
	if err != nil {
		t.Fatal(err)
	}
	// A NATS connection exists for the acceptor once the first frame came.
	if err := d.WriteFrame(context.Background(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := a.ReadFrame(ctx); err != nil || string(b) != "hello" {
		t.Fatalf("first frame %q %v", b, err)
	}
	return d, a
}

var transports = map[string]pairFunc{
	"pipe": func(*testing.T) (Conn, Conn) { return Pipe() },
	"tcp":  tcpPair,
	"ws":   wsPair,
	"nats": natsPair,
}

func TestConformance(t *testing.T) {
	for name, mk := range transports {
		t.Run(name, func(t *testing.T) {
			a, b := mk(t)
			defer a.Close()
			defer b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			frames := [][]byte{{0x08, 0, 1, 0}, bytes.Repeat([]byte{0xab}, 1000), bytes.Repeat([]byte{0xcd}, 256<<10)}
			for _, f := range frames {
				if err := a.WriteFrame(ctx, f); err != nil {
					t.Fatal(err)
				}
			}
			for i, f := range frames {
				got, err := b.ReadFrame(ctx)
				if err != nil || !bytes.Equal(got, f) {
					t.Fatalf("frame %d: %d bytes, %v", i, len(got), err)
				}
			}
			if err := b.WriteFrame(ctx, []byte("back")); err != nil {
				t.Fatal(err)
			}
			if got, err := a.ReadFrame(ctx); err != nil || string(got) != "back" {
				t.Fatalf("reply %q %v", got, err)
			}
			// A read honours its context.
			short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel2()
			if _, err := a.ReadFrame(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("read past its deadline: %v", err)
			}
			// And the connection still works after that.
			b.WriteFrame(ctx, []byte("again"))
			if got, err := a.ReadFrame(ctx); err != nil || string(got) != "again" {
				t.Fatalf("after a timed-out read: %q %v", got, err)
			}
			a.Close()
			if err := a.WriteFrame(ctx, []byte("x")); err == nil {
				t.Error("write after close succeeded")
			}
		})
	}
}

func TestStreamRejectsHugeLength(t *testing.T) {
	c1, c2 := net.Pipe()
	s := NewStream(c2)
	go c1.Write([]byte{0xff, 0xff, 0xff, 0xff})
	if _, err := s.ReadFrame(context.Background()); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("4 GiB length prefix: %v", err)
	}
	go c1.Write([]byte{0, 0, 0, 0})
	if _, err := s.ReadFrame(context.Background()); !errors.Is(err, wire.ErrTruncated) {
		t.Fatalf("zero length prefix: %v", err)
	}
}

func TestWebSocketRejectsText(t *testing.T) {
	acc := make(chan Conn, 1)
	srv := httptest.NewServer(WebSocketHandler(func(c Conn) { acc <- c; time.Sleep(time.Second) }))
	defer srv.Close()
	raw, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.WriteMessage(websocket.TextMessage, []byte("hello"))
	if _, err := (<-acc).ReadFrame(context.Background()); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("text message: %v", err)
	}
	raw.WriteMessage(websocket.BinaryMessage, make([]byte, wire.MaxFrameSize+1))
}

func TestStreamReadsLargeFramesInPieces(t *testing.T) {
	c1, c2 := net.Pipe()
	s := NewStream(c2)
	frame := bytes.Repeat([]byte{0x5a}, wire.MaxFrameSize)
	go func() {
		p, _ := wire.AppendLengthPrefix(nil, len(frame))
		c1.Write(p)
		for i := 0; i < len(frame); i += 1000 {
			c1.Write(frame[i:min(i+1000, len(frame))])
		}
	}()
	got, err := s.ReadFrame(context.Background())
	if err != nil || !bytes.Equal(got, frame) {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	// A peer that announces 1 MiB and stops after a few bytes costs a
	// small buffer, and the read ends with the connection.
	go func() {
		p, _ := wire.AppendLengthPrefix(nil, wire.MaxFrameSize)
		c1.Write(p)
		c1.Write([]byte("only this"))
		c1.Close()
	}()
	if _, err := s.ReadFrame(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("truncated frame: %v", err)
	}
}

// TestReadLimit: with a read limit, a stream refuses a frame by its length
// prefix before its body arrives, and a WebSocket a message once it grows
// past the limit; frames within the limit, and larger ones once the limit
// is lifted, still arrive.
func TestReadLimit(t *testing.T) {
	for name, pair := range map[string]pairFunc{"tcp": tcpPair, "websocket": wsPair} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, s := pair(t)
			l := s.(ReadLimiter)
			l.SetReadLimit(1024)
			if err := c.WriteFrame(ctx, make([]byte, 1024)); err != nil {
				t.Fatal(err)
			}
			if b, err := s.ReadFrame(ctx); err != nil || len(b) != 1024 {
				t.Fatalf("a frame at the limit: %d bytes, %v", len(b), err)
			}
			l.SetReadLimit(0)
			if err := c.WriteFrame(ctx, make([]byte, 64<<10)); err != nil {
				t.Fatal(err)
			}
			if b, err := s.ReadFrame(ctx); err != nil || len(b) != 64<<10 {
				t.Fatalf("a large frame with the limit lifted: %d bytes, %v", len(b), err)
			}
			l.SetReadLimit(1024)
			go c.WriteFrame(ctx, make([]byte, 1025))
			if _, err := s.ReadFrame(ctx); !errors.Is(err, wire.ErrTooLarge) {
				t.Fatalf("a frame over the limit: %v", err)
			}
		})
	}
	// A stream decides on the prefix alone: the body never has to come.
	c1, c2 := net.Pipe()
	s := NewStream(c2)
	s.SetReadLimit(8 << 10)
	go c1.Write([]byte{0, 0x0f, 0, 0, 0x18})
	if _, err := s.ReadFrame(context.Background()); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("a 1 MiB prefix over an 8 KiB limit: %v", err)
	}
}

// TestWriteTimeout: a write to a peer that never reads ends after
// writeTimeout, whether or not its context can be cancelled, instead of
// waiting for ever.
func TestWriteTimeout(t *testing.T) {
	defer func(d time.Duration) { writeTimeout = d }(writeTimeout)
	writeTimeout = 200 * time.Millisecond
	for name, ctx := range map[string]context.Context{"background": context.Background(), "cancellable": t.Context()} {
		t.Run(name, func(t *testing.T) {
			c1, c2 := net.Pipe() // unbuffered: a write waits for a read that never comes
			defer c1.Close()
			defer c2.Close()
			s := NewStream(c1)
			done := make(chan error, 1)
			go func() { done <- s.WriteFrame(ctx, []byte("hello")) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("a write nobody read succeeded")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the write still waits for a peer that does not read")
			}
		})
	}
}
