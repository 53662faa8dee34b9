package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/myclerk/myclerk-bridge/wire"
)

// NATS subjects (PROFILE.md §P12, README "NATS subjects"):
//
//	myclerk.<family>.<node>.accept        where a node accepts new connections
//	myclerk.<family>.<node>.c.<conn-id>   one end of one connection
//
// <family> and <node> are the hex IDs of the family and the node;
// <conn-id> is 16 random hex digits. A dialer sends its first frame
// (SESSION_INIT) to the peer's accept subject with its own connection
// subject as the reply subject; every later frame goes to the other end's
// connection subject, learned from the reply subject of the first frame
// received. One NATS message carries one frame.

// AcceptSubject is the subject where node of family accepts connections.
func AcceptSubject(family, node string) string {
	return "myclerk." + family + "." + node + ".accept"
}

func connSubject(family, node string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "myclerk." + family + "." + node + ".c." + hex.EncodeToString(b[:]), nil
}

// validToken reports whether s can stand in a subject.
func validToken(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*> \t\r\n")
}

// natsBuffer is how many frames a connection holds before NATS counts
// its subscriber as slow and drops.
const natsBuffer = 1024

// flushTimeout bounds the round trip that registers a subscription.
const flushTimeout = 5 * time.Second

// NATSConn is one connection between two nodes over NATS.
//
// The NATS client's reader puts each message straight into in (a channel
// subscription), where ReadFrame takes it: no goroutine in between. When
// the reader falls natsBuffer frames behind, NATS drops the next ones as
// a slow consumer's and counts them (Dropped); the session's counters and
// replay window cope.
type NATSConn struct {
	nc     *nats.Conn
	local  string // our connection subject
	sub    *nats.Subscription
	hello  *nats.Subscription // dialer: learns the peer's subject, then ends
	in     chan *nats.Msg
	accept string // the peer's accept subject, for the first frame (dialer)

	mu      sync.Mutex
	peer    string        // the peer's connection subject, once known
	known   chan struct{} // closed when peer is known
	first   bool          // the first frame was sent
	closed  chan struct{}
	closeMu sync.Once
	ready   atomic.Pointer[string] // the peer's subject, once the first frame went out
}

var _ Conn = (*NATSConn)(nil)

func newNATSConn(nc *nats.Conn, family, node string, dialer bool) (*NATSConn, error) {
	local, err := connSubject(family, node)
	if err != nil {
		return nil, err
	}
	c := &NATSConn{nc: nc, local: local, in: make(chan *nats.Msg, natsBuffer), known: make(chan struct{}), closed: make(chan struct{})}
	if c.sub, err = nc.ChanSubscribe(local, c.in); err != nil {
		return nil, fmt.Errorf("failed to subscribe to %s: %w", local, err)
	}
	var hello *nats.Subscription
	if dialer {
		// The first message to a dialer is the acceptor's hello, whose
		// reply subject names the acceptor's end. A second subscription
		// learns it as it arrives, whether or not anyone is reading yet,
		// so that a dialer may send more frames before it reads; it ends
		// itself after that one message.
		if hello, err = nc.Subscribe(local, func(m *nats.Msg) { c.learn(m.Reply) }); err == nil {
			err = hello.AutoUnsubscribe(1)
		}
		if err != nil {
			c.sub.Unsubscribe()
			return nil, fmt.Errorf("failed to subscribe to %s: %w", local, err)
		}
	}
	// The server must know the subscriptions before anyone is told their
	// subject, or the first frames to it are lost.
	if err := nc.FlushTimeout(flushTimeout); err != nil {
		c.sub.Unsubscribe()
		if hello != nil {
			hello.Unsubscribe()
		}
		return nil, fmt.Errorf("failed to register %s: %w", local, err)
	}
	c.hello = hello
	return c, nil
}

// DialNATS opens a connection from node `from` to node `to` of family.
func DialNATS(nc *nats.Conn, family, from, to string) (*NATSConn, error) {
	if !validToken(family) || !validToken(from) || !validToken(to) {
		return nil, fmt.Errorf("nats: family %q, nodes %q and %q must be subject tokens", family, from, to)
	}
	c, err := newNATSConn(nc, family, from, true)
	if err != nil {
		return nil, err
	}
	c.accept = AcceptSubject(family, to)
	return c, nil
}

func (c *NATSConn) learn(peer string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peer == "" && peer != "" {
		c.peer = peer
		close(c.known)
	}
}

// RemoteAddr names the peer.
func (c *NATSConn) RemoteAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peer == "" {
		return "nats " + c.accept
	}
	return "nats " + c.peer
}

// ReadFrame returns the next frame. A message's reply subject names the
// peer's connection subject (the dialer learns it from the acceptor's
// hello, an empty message that is no frame).
func (c *NATSConn) ReadFrame(ctx context.Context) ([]byte, error) {
	for {
		var m *nats.Msg
		select {
		case m = <-c.in: // under load a frame is waiting: no three-way select
		default:
			select {
			case m = <-c.in:
			case <-c.closed:
				return nil, ErrClosed
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if m.Reply != "" {
			c.learn(m.Reply)
		}
		if len(m.Data) == 0 {
			continue
		}
		if len(m.Data) > wire.MaxFrameSize {
			return nil, fmt.Errorf("nats message: %w", wire.ErrTooLarge)
		}
		return m.Data, nil
	}
}

// Dropped returns how many frames NATS dropped because the reader fell
// behind.
func (c *NATSConn) Dropped() int {
	n, err := c.sub.Dropped()
	if err != nil {
		return 0 // closed
	}
	return n
}

// WriteFrame publishes one frame. The dialer's first frame goes to the
// peer's accept subject; later frames wait until the peer's connection
// subject is known.
func (c *NATSConn) WriteFrame(ctx context.Context, frame []byte) error {
	if p := c.ready.Load(); p != nil { // the usual case, without the mutex
		select {
		case <-c.closed:
			return ErrClosed
		default:
		}
		if err := c.nc.Publish(*p, frame); err != nil {
			return fmt.Errorf("failed to publish to %s: %w", *p, err)
		}
		return nil
	}
	c.mu.Lock()
	peer, first := c.peer, !c.first && c.accept != ""
	c.first = true
	if peer != "" && !first {
		c.ready.Store(&c.peer) // c.peer never changes once set
	}
	c.mu.Unlock()
	if first {
		return c.publish(&nats.Msg{Subject: c.accept, Reply: c.local, Data: frame})
	}
	if peer == "" {
		select {
		case <-c.known:
		case <-c.closed:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
		peer = c.peer
		c.mu.Unlock()
	}
	// Both ends know each other's subject by now: no reply subject needed.
	select {
	case <-c.closed:
		return ErrClosed
	default:
	}
	if err := c.nc.Publish(peer, frame); err != nil {
		return fmt.Errorf("failed to publish to %s: %w", peer, err)
	}
	return nil
}

func (c *NATSConn) publish(m *nats.Msg) error {
	select {
	case <-c.closed:
		return ErrClosed
	default:
	}
	if err := c.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("failed to publish to %s: %w", m.Subject, err)
	}
	return nil
}

// Close stops the connection's subscription.
func (c *NATSConn) Close() error {
	c.closeMu.Do(func() {
		close(c.closed)
		c.sub.Unsubscribe()
		if c.hello != nil {
			c.hello.Unsubscribe() // an error once it has ended by itself
		}
	})
	return nil
}

// NATSListener accepts connections on a node's accept subject.
type NATSListener struct {
	nc           *nats.Conn
	family, node string
	sub          *nats.Subscription
	in           chan *nats.Msg
	closed       chan struct{}
	closeOnce    sync.Once
}

// ListenNATS starts accepting connections for node of family.
func ListenNATS(nc *nats.Conn, family, node string) (*NATSListener, error) {
	if !validToken(family) || !validToken(node) {
		return nil, fmt.Errorf("nats: family %q and node %q must be subject tokens", family, node)
	}
	l := &NATSListener{nc: nc, family: family, node: node, in: make(chan *nats.Msg, 256), closed: make(chan struct{})}
	var err error
	if l.sub, err = nc.ChanSubscribe(AcceptSubject(family, node), l.in); err != nil {
		return nil, fmt.Errorf("failed to subscribe to %s: %w", AcceptSubject(family, node), err)
	}
	if err := nc.FlushTimeout(flushTimeout); err != nil {
		l.sub.Unsubscribe()
		return nil, fmt.Errorf("failed to register %s: %w", AcceptSubject(family, node), err)
	}
	return l, nil
}

// Accept returns the next new connection; its first frame is already
// waiting to be read.
func (l *NATSListener) Accept(ctx context.Context) (*NATSConn, error) {
	for {
		select {
		case m := <-l.in:
			if m.Reply == "" || len(m.Data) > wire.MaxFrameSize {
				continue // not a connection attempt
			}
			c, err := newNATSConn(l.nc, l.family, l.node, false)
			if err != nil {
				return nil, err
			}
			c.learn(m.Reply)
			c.in <- m // room: the subscription was made just now
			// Name our subject at once (an empty message, which is no
			// frame), so the dialer can send before we answer.
			if err := l.nc.PublishMsg(&nats.Msg{Subject: m.Reply, Reply: c.local}); err != nil {
				c.Close()
				return nil, fmt.Errorf("failed to answer %s: %w", m.Reply, err)
			}
			return c, nil
		case <-l.closed:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close stops accepting.
func (l *NATSListener) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.sub.Unsubscribe()
	})
	return nil
}
