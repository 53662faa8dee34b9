// Package matrixconn carries a MyClerk session over a Matrix room: each
// frame is one eu.myclerk.frame event (package frameevent). A Router
// listens to one Matrix client's sync and hands each room's frames to the
// Conn open on that room, so the session code runs unchanged over Matrix
// as over TCP, WebSocket or NATS. An appservice, which gets its events
// pushed rather than synced, makes Conns with NewConn and feeds them with
// Deliver.
package matrixconn

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myclerk/myclerk-bridge/bridge/frameevent"
	"github.com/myclerk/myclerk-bridge/node/transport"
)

// FrameType is the frame event's type.
var FrameType = event.Type{Type: frameevent.EventType, Class: event.MessageEventType}

// buffer is how many frames a Conn holds before it drops (and counts).
const buffer = 1024

// Router dispatches the frame events of one client's sync to the Conns
// open on their rooms. Register it before the client starts syncing.
type Router struct {
	cli *mautrix.Client

	mu    sync.Mutex
	conns map[id.RoomID]*Conn

	// Refused counts frame events that were malformed or came from a user
	// the room's Conn does not expect.
	Refused atomic.Int64
}

// NewRouter registers a router on cli's syncer (a mautrix.DefaultSyncer).
func NewRouter(cli *mautrix.Client) (*Router, error) {
	s, ok := cli.Syncer.(mautrix.ExtensibleSyncer)
	if !ok {
		return nil, fmt.Errorf("matrixconn: the client's syncer (%T) cannot take event handlers", cli.Syncer)
	}
	r := &Router{cli: cli, conns: map[id.RoomID]*Conn{}}
	s.OnEventType(FrameType, r.handle)
	return r, nil
}

func (r *Router) handle(_ context.Context, evt *event.Event) {
	if evt.Sender == r.cli.UserID {
		return // our own frames come back in the timeline
	}
	r.mu.Lock()
	c := r.conns[evt.RoomID]
	r.mu.Unlock()
	if c == nil || (c.peer != "" && evt.Sender != c.peer) {
		r.Refused.Add(1)
		return
	}
	b, err := frameevent.Decode(evt.Content.VeryRaw)
	if err != nil {
		r.Refused.Add(1)
		return
	}
	c.Deliver(b)
}

// Open returns the Conn of room; only frames sent by peer are read ("" for
// any other member). One Conn per room at a time.
func (r *Router) Open(room id.RoomID, peer id.UserID) (*Conn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns[room] != nil {
		return nil, fmt.Errorf("matrixconn: room %s already has a connection", room)
	}
	c := NewConn(room, peer, func(ctx context.Context, content frameevent.Content) error {
		_, err := r.cli.SendMessageEvent(ctx, room, FrameType, content)
		return err
	})
	c.r = r
	r.conns[room] = c
	return c, nil
}

// SendFunc sends one frame event to the Conn's room.
type SendFunc func(ctx context.Context, content frameevent.Content) error

// NewConn returns a Conn on room that sends with send and reads what
// Deliver hands it (for an appservice, whose events are pushed to it).
// peer is the user whose frames it expects ("" for any).
func NewConn(room id.RoomID, peer id.UserID, send SendFunc) *Conn {
	return &Conn{room: room, peer: peer, send: send, in: make(chan []byte, buffer), closed: make(chan struct{})}
}

// Peer is the user whose frames the Conn reads ("" for any).
func (c *Conn) Peer() id.UserID { return c.peer }

// Deliver hands the Conn one received frame; it reports false when the
// Conn is closed or its buffer is full (the frame is dropped and counted).
func (c *Conn) Deliver(frame []byte) bool {
	select {
	case <-c.closed:
		return false
	default:
	}
	select {
	case c.in <- frame:
		return true
	default:
		c.Dropped.Add(1)
		return false
	}
}

// Conn is a transport.Conn over one Matrix room.
type Conn struct {
	r      *Router // nil for a Conn made by NewConn
	send   SendFunc
	room   id.RoomID
	peer   id.UserID
	in     chan []byte
	closed chan struct{}
	once   sync.Once

	// Dropped counts frames dropped because the reader fell behind.
	Dropped atomic.Int64
}

var _ transport.Conn = (*Conn)(nil)

// RemoteAddr names the room.
func (c *Conn) RemoteAddr() string { return "matrix " + c.room.String() }

// ReadFrame returns the next frame from the room.
func (c *Conn) ReadFrame(ctx context.Context) ([]byte, error) {
	select {
	case b := <-c.in:
		return b, nil
	case <-c.closed:
		return nil, transport.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// WriteFrame sends one frame event to the room.
func (c *Conn) WriteFrame(ctx context.Context, frame []byte) error {
	select {
	case <-c.closed:
		return transport.ErrClosed
	default:
	}
	content, err := frameevent.Encode(frame)
	if err != nil {
		return err
	}
	if err := c.send(ctx, content); err != nil {
		return fmt.Errorf("failed to send a frame to %s: %w", c.room, err)
	}
	return nil
}

// Close stops reading the room.
func (c *Conn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		if c.r == nil {
			return
		}
		c.r.mu.Lock()
		if c.r.conns[c.room] == c {
			delete(c.r.conns, c.room)
		}
		c.r.mu.Unlock()
	})
	return nil
}

// Queued is the number of received frames waiting to be read.
func (c *Conn) Queued() int { return len(c.in) }

// Room is the Conn's room.
func (c *Conn) Room() id.RoomID { return c.room }
