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
// received. A message carries one frame, or, once both ends have said
// they read them, a container of several (wire.CheckContainer): each end
// says so with the header "Myclerk-Frames: containers" on the first
// message it sends (the dialer's first frame, the acceptor's hello).

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

// containersHeader, on the first message an end sends, says that it reads
// containers (PROFILE.md §P36).
const (
	containersHeader = "Myclerk-Frames"
	containersValue  = "containers"
)

// maxContainer bounds a container: half the NATS client's 32 KiB write
// buffer, so that publishing one never makes the client flush in the
// middle of it, and small enough that containers follow each other
// closely (64 KiB ones made one-way traffic slower: 0.70-0.75x of raw
// NATS against 0.77-0.84x with 16 KiB and 8 KiB); still about fifteen
// 1 KiB frames to a NATS message.
const maxContainer = 16 << 10

// queuePool holds the memory of send queues (maxContainer bytes each),
// shared by all connections: a connection holds one only while frames
// wait in it.
var queuePool = sync.Pool{New: func() any { b := make([]byte, 0, maxContainer); return &b }}

// NATSConn is one connection between two nodes over NATS.
//
// The NATS client's reader puts each message straight into in (a channel
// subscription), where ReadFrame takes it: no goroutine in between. When
// the reader falls natsBuffer messages behind, NATS drops the next ones as
// a slow consumer's and counts them (Dropped); the session's counters and
// replay window cope.
//
// Frames to a peer that reads containers are coalesced when the link is
// busy, in the way of Nagle's algorithm without its delay: a frame is
// published at once when the NATS client has nothing waiting to be sent,
// and otherwise queued; a goroutine that lives while the queue is not
// empty publishes what has gathered as one container. Under load that
// makes one NATS message out of several frames (NATS's cost is mostly per
// message); a lone request goes out as it did, without waiting.
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

	headers    bool        // the server passes headers: say we read containers
	coalesce   atomic.Bool // we may send containers (SetCoalesce)
	containers atomic.Bool // the peer reads containers
	rest       []byte      // frames of the container being read (ReadFrame)

	// The send queue: pmu is held from taking the queue until it is
	// published, so that frames leave in the order they were written;
	// wmu guards the rest.
	pmu      sync.Mutex
	wmu      sync.Mutex
	queue    []byte // a container being gathered (from queuePool), or nil
	queued   int    // frames in it
	flushing bool   // a flusher goroutine runs
	werr     error  // why publishing queued frames failed, for the next WriteFrame
}

var _ Conn = (*NATSConn)(nil)

func newNATSConn(nc *nats.Conn, family, node string, dialer bool) (*NATSConn, error) {
	local, err := connSubject(family, node)
	if err != nil {
		return nil, err
	}
	c := &NATSConn{nc: nc, local: local, in: make(chan *nats.Msg, natsBuffer), known: make(chan struct{}), closed: make(chan struct{}), headers: nc.HeadersSupported()}
	c.coalesce.Store(true)
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
		if hello, err = nc.Subscribe(local, func(m *nats.Msg) { c.learn(m) }); err == nil {
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

// learn takes the peer's subject from the reply subject of the first
// message it sent, and whether it reads containers from that message's
// header.
func (c *NATSConn) learn(m *nats.Msg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peer == "" && m.Reply != "" {
		if m.Header.Get(containersHeader) == containersValue {
			c.containers.Store(true) // before anyone can write to the peer
		}
		c.peer = m.Reply
		close(c.known)
	}
}

// helloHeader is the header of the first message this end sends.
func (c *NATSConn) helloHeader() nats.Header {
	if !c.headers {
		return nil
	}
	return nats.Header{containersHeader: []string{containersValue}}
}

// SetCoalesce says whether frames may be coalesced into containers when
// the peer reads them (the default); off, every frame is a message of its
// own, as for a peer that does not read containers.
func (c *NATSConn) SetCoalesce(on bool) { c.coalesce.Store(on) }

// Coalescing reports whether frames to the peer may go in containers: the
// peer reads them and SetCoalesce did not turn them off.
func (c *NATSConn) Coalescing() bool { return c.coalesce.Load() && c.containers.Load() }

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
// hello, an empty message that is no frame). The frames of a container
// are returned one by one, each in memory of its own. A message too large
// for a frame, or a malformed container, is dropped whole with a
// *MessageError; the connection goes on.
func (c *NATSConn) ReadFrame(ctx context.Context) ([]byte, error) {
	if len(c.rest) > 0 {
		return c.nextInContainer(), nil
	}
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
			c.learn(m)
		}
		if len(m.Data) == 0 {
			continue
		}
		if m.Data[0] == wire.ContainerMarker {
			if _, err := wire.CheckContainer(m.Data); err != nil {
				return nil, &MessageError{fmt.Errorf("nats message of %d bytes: %w", len(m.Data), err)}
			}
			c.rest = m.Data[1:]
			return c.nextInContainer(), nil
		}
		if len(m.Data) > wire.MaxFrameSize {
			return nil, &MessageError{fmt.Errorf("nats message of %d bytes: %w", len(m.Data), wire.ErrTooLarge)}
		}
		return m.Data, nil
	}
}

// nextInContainer splits the next frame off the container being read,
// which was checked whole when it arrived.
func (c *NATSConn) nextInContainer() []byte {
	f, rest, _ := wire.NextContainerFrame(c.rest)
	c.rest = rest
	return f
}

// Dropped returns how many messages (frames or containers) NATS dropped
// because the reader fell behind.
func (c *NATSConn) Dropped() int {
	n, err := c.sub.Dropped()
	if err != nil {
		return 0 // closed
	}
	return n
}

// WriteFrame publishes one frame, or queues it to be published in a
// container (see NATSConn); the frame is the caller's again when it
// returns. The dialer's first frame goes to the peer's accept subject;
// later frames wait until the peer's connection subject is known.
func (c *NATSConn) WriteFrame(ctx context.Context, frame []byte) error {
	if p := c.ready.Load(); p != nil { // the usual case, without the mutex
		select {
		case <-c.closed:
			return ErrClosed
		default:
		}
		if c.Coalescing() {
			return c.enqueue(*p, frame)
		}
		return c.publishFrame(*p, frame)
	}
	c.mu.Lock()
	peer, first := c.peer, !c.first && c.accept != ""
	c.first = true
	if peer != "" && !first {
		c.ready.Store(&c.peer) // c.peer never changes once set
	}
	c.mu.Unlock()
	if first {
		return c.publish(&nats.Msg{Subject: c.accept, Reply: c.local, Data: frame, Header: c.helloHeader()})
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
	return c.publishFrame(peer, frame)
}

// enqueue publishes frame to subject at once when nothing is queued and
// the NATS client has nothing waiting to be sent; otherwise it adds the
// frame to the queue, which the flusher publishes. Locks: pmu before wmu.
func (c *NATSConn) enqueue(subject string, frame []byte) error {
	if c.pmu.TryLock() { // nobody is publishing
		c.wmu.Lock()
		idle := len(c.queue) == 0 && !c.flushing && c.werr == nil
		c.wmu.Unlock()
		if idle {
			if n, err := c.nc.Buffered(); err != nil || n == 0 {
				// An idle link: publish now, as if there were no queue.
				// A frame queued meanwhile starts the flusher, which
				// waits for pmu: the order holds.
				defer c.pmu.Unlock()
				return c.publishFrame(subject, frame)
			}
		}
		c.pmu.Unlock()
	}
	need := wire.LengthPrefixSize + len(frame)
	c.wmu.Lock()
	if err := c.werr; err != nil {
		// Queued frames were lost (as frames of a dropped message are):
		// say so once, to the next writer, and go on.
		c.werr = nil
		c.wmu.Unlock()
		return err
	}
	if len(c.queue)+need > maxContainer {
		// Full, or too large for a container: publish what is queued,
		// then the frame (alone, if it is that large).
		c.wmu.Unlock()
		c.pmu.Lock()
		defer c.pmu.Unlock()
		for {
			if err := c.publishQueue(subject); err != nil {
				return err
			}
			if wire.ContainerOverhead(1)+len(frame) > maxContainer {
				return c.publishFrame(subject, frame)
			}
			c.wmu.Lock()
			if len(c.queue)+need <= maxContainer {
				break
			}
			c.wmu.Unlock() // filled again meanwhile
		}
	}
	if c.queue == nil {
		c.queue = (*queuePool.Get().(*[]byte))[:0]
	}
	q, err := wire.AppendContainerFrame(c.queue, frame)
	if err != nil {
		c.wmu.Unlock()
		return err
	}
	c.queue = q
	c.queued++
	if !c.flushing {
		c.flushing = true
		go c.flush(subject)
	}
	c.wmu.Unlock()
	return nil
}

// flush publishes the queue until it stays empty.
func (c *NATSConn) flush(subject string) {
	for {
		c.pmu.Lock()
		c.wmu.Lock()
		if len(c.queue) == 0 {
			c.flushing = false
			c.wmu.Unlock()
			c.pmu.Unlock()
			return
		}
		c.wmu.Unlock()
		c.publishQueue(subject) // an error waits in werr
		c.pmu.Unlock()
	}
}

// publishQueue publishes what is queued, a single frame as itself, and
// gives the queue's memory back to queuePool; pmu is held. A failure is
// also kept for the next WriteFrame to report.
func (c *NATSConn) publishQueue(subject string) error {
	c.wmu.Lock()
	q, n := c.queue, c.queued
	c.queue, c.queued = nil, 0
	c.wmu.Unlock()
	if n == 0 {
		return nil
	}
	data := q
	if n == 1 {
		data = q[wire.ContainerOverhead(1):]
	}
	err := c.publishFrame(subject, data) // NATS copies it: q may be reused
	queuePool.Put(&q)
	if err != nil {
		c.wmu.Lock()
		if c.werr == nil {
			c.werr = err
		}
		c.wmu.Unlock()
	}
	return err
}

func (c *NATSConn) publishFrame(subject string, data []byte) error {
	if err := c.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("failed to publish to %s: %w", subject, err)
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
	// PeerToken, when set before Accept is called, says which node
	// tokens a dialer's connection subject may carry; nil takes any
	// subject token. A hub takes only node IDs (NodeIDToken).
	PeerToken func(token string) bool

	nc           *nats.Conn
	family, node string
	sub          *nats.Subscription
	in           chan *nats.Msg
	closed       chan struct{}
	closeOnce    sync.Once
	refused      atomic.Int64
}

// NodeIDToken reports whether token is a node ID in hex (32 lowercase
// hex digits), the token a node dials from.
func NodeIDToken(token string) bool { return isHex(token, 32) }

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// dialerSubject reports whether reply is a dialer's connection subject in
// l's family: myclerk.<family>.<token>.c.<16 hex digits>, the token one
// PeerToken takes.
func (l *NATSListener) dialerSubject(reply string) bool {
	rest, ok := strings.CutPrefix(reply, "myclerk."+l.family+".")
	if !ok {
		return false
	}
	token, id, ok := strings.Cut(rest, ".c.")
	if !ok || !validToken(token) || !isHex(id, 16) {
		return false
	}
	return l.PeerToken == nil || l.PeerToken(token)
}

// Refused returns how many connection attempts Accept dropped for their
// reply subject.
func (l *NATSListener) Refused() int64 { return l.refused.Load() }

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
			if !l.dialerSubject(m.Reply) {
				// A reply subject needs no permission to claim: one not
				// of a dialer's form is refused before it costs a
				// handshake (PROFILE.md §P41 rule 4), and not answered.
				l.refused.Add(1)
				continue
			}
			c, err := newNATSConn(l.nc, l.family, l.node, false)
			if err != nil {
				return nil, err
			}
			c.learn(m)
			c.in <- m // room: the subscription was made just now
			// Name our subject at once (an empty message, which is no
			// frame), so the dialer can send before we answer.
			if err := l.nc.PublishMsg(&nats.Msg{Subject: m.Reply, Reply: c.local, Header: c.helloHeader()}); err != nil {
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
