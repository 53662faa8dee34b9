package bridge

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myclerk/myclerk-bridge/bridge/frameevent"
	"github.com/myclerk/myclerk-bridge/bridge/matrixconn"
	"github.com/myclerk/myclerk-bridge/node/ratelog"
	"github.com/myclerk/myclerk-bridge/wire"
)

// FrameEventType is the room event that carries one MyClerk frame.
var FrameEventType = matrixconn.FrameType

// maxRoomSessions bounds the rooms with a MyClerk session through the
// bridge at once, so a flood of rooms cannot exhaust the hub.
const maxRoomSessions = 1024

// frames terminates MyClerk sessions that reach the hub through Matrix:
// a node (or another family's bridge) sends eu.myclerk.frame events into
// a room the bridge bot is in, and the hub serves the session as if it
// had come over TCP. bridgev2 routes only standard event types, so the
// frame event is taken straight from the appservice's event processor:
// the sender's permission is checked, the event ID deduplicated (also
// across restarts), and the frame handed to the room's queue at once.
type frames struct {
	b *Bridge
	// rejects samples the log lines of dropped frame events (a rude
	// homeserver or user could send millions); the metrics count all.
	rejects *ratelog.Limiter

	mu    sync.Mutex
	rooms map[id.RoomID]*matrixconn.Conn
}

func newFrames(b *Bridge) *frames {
	return &frames{b: b, rooms: map[id.RoomID]*matrixconn.Conn{}, rejects: ratelog.New(10, time.Minute, time.Now)}
}

// drop counts a dropped frame event under result and logs why, at most
// ten lines a minute for each result.
func (f *frames) drop(log *zerolog.Logger, result string, err error, why string) {
	f.count("in", result)
	ok, suppressed := f.rejects.Allow(result)
	if !ok {
		return
	}
	e := log.Info()
	if result == "failed" {
		e = log.Warn()
	}
	if suppressed > 0 {
		e = e.Int("suppressed", suppressed)
	}
	e.Err(err).Msg(why)
}

func (f *frames) count(dir, result string) {
	f.b.Metrics.MatrixFrames.WithLabelValues(dir, result).Inc()
}

func (f *frames) handle(ctx context.Context, evt *event.Event) {
	b := f.b
	log := b.log.With().Stringer("event_id", evt.ID).Stringer("room_id", evt.RoomID).Stringer("sender", evt.Sender).Logger()
	if evt.Sender == b.Matrix.Bot.UserID {
		return // our own frames, echoed
	}
	if _, isGhost := b.Matrix.ParseGhostMXID(evt.Sender); isGhost {
		return
	}
	frame, err := frameevent.Decode(evt.Content.VeryRaw)
	if err != nil {
		f.drop(&log, "malformed", err, "Dropped a malformed frame event")
		return
	}
	// In a federation room only the other family's bot speaks; elsewhere
	// the bridge's permissions say who may.
	fed := b.Network.Federations.byRoom(evt.RoomID)
	if fed != nil && evt.Sender.String() != fed.rec.PeerBot {
		f.drop(&log, "forbidden", nil, "Dropped a frame event in a federation room from another user than the other family's bot")
		return
	}
	if fed == nil {
		user, err := b.Bridge.GetUserByMXID(ctx, evt.Sender)
		if err != nil || !user.Permissions.SendEvents {
			f.drop(&log, "forbidden", nil, "Dropped a frame event from a user the bridge's permissions do not allow")
			return
		}
	}
	first, err := b.Hub.Store.Matrix.MarkSeen(ctx, evt.ID.String(), time.Now())
	if err != nil {
		f.drop(&log, "failed", err, "Failed to record a frame event; dropped it")
		return
	}
	if !first {
		f.count("in", "duplicate") // a homeserver's retry: not worth a line
		return
	}
	c, why := f.conn(evt.RoomID, evt.Sender, fed, opensSession(frame))
	if c == nil {
		f.drop(&log, "dropped", nil, "Dropped a frame event: "+why)
		return
	}
	if c.Peer() != evt.Sender {
		f.drop(&log, "forbidden", nil, "Dropped a frame event from another member than the room's peer "+c.Peer().String())
		return
	}
	if !c.Deliver(frame) {
		f.count("in", "dropped")
		return
	}
	f.count("in", "accepted")
}

// conn returns the room's connection, making one (and starting the hub's
// side of a session on it) for a room's first frame. In a federation room
// where this side dials, only the dialer's own connection is returned.
//
// A hello that opens a session (the peer restarted, say) replaces the
// room's answering connection: the old session ends at once rather than
// when its keepalive gives up.
// Only a hello opens a connection: other frames without one belong to a
// session that ended, and are dropped (with the reason).
func (f *frames) conn(room id.RoomID, sender id.UserID, fed *fedLink, hello bool) (*matrixconn.Conn, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dialer := fed != nil && fed.rec.Dialer
	if c := f.rooms[room]; c != nil {
		if !hello || dialer || c.Peer() != sender {
			return c, ""
		}
		c.Close() // its goroutine forgets it; the new one takes the room
		delete(f.rooms, room)
	}
	switch {
	case dialer:
		return nil, "this side is not dialing the room's federation session right now"
	case !hello:
		return nil, "no session in the room (a frame of one that ended)"
	case len(f.rooms) >= maxRoomSessions:
		return nil, "too many rooms with sessions"
	}
	c := f.newConn(room, sender)
	// The room's session runs in the hub's group: the hub's Wait waits
	// for it.
	if !f.b.Hub.Go(func() {
		if fed != nil {
			f.b.Network.Federations.accept(f.b.Network.ctx, fed, c)
		} else {
			f.b.Hub.Serve(c) // handshake, authentication, registry: as over TCP
		}
		f.close(c)
	}) {
		c.Close()
		return nil, "the hub is stopping"
	}
	f.rooms[room] = c
	return c, ""
}

// opensSession reports whether frame is a hello that opens a session.
func opensSession(frame []byte) bool {
	fr, err := wire.ParseHandshake(frame)
	return err == nil && (fr.Header.Op == wire.OpSessionInit || fr.Header.Op == wire.OpSessionResume)
}

// open registers a connection this side dials on (a federation room);
// close it with f.close.
func (f *frames) open(room id.RoomID, peer id.UserID) *matrixconn.Conn {
	c := f.newConn(room, peer)
	f.mu.Lock()
	if old := f.rooms[room]; old != nil {
		old.Close()
	}
	f.rooms[room] = c
	f.mu.Unlock()
	return c
}

// close closes c and forgets it.
func (f *frames) close(c *matrixconn.Conn) {
	c.Close()
	f.mu.Lock()
	if f.rooms[c.Room()] == c {
		delete(f.rooms, c.Room())
	}
	f.mu.Unlock()
}

func (f *frames) newConn(room id.RoomID, peer id.UserID) *matrixconn.Conn {
	bot := f.b.Matrix.Bot
	return matrixconn.NewConn(room, peer, func(ctx context.Context, content frameevent.Content) error {
		_, err := bot.SendMessageEvent(ctx, room, FrameEventType, content)
		if err != nil {
			f.count("out", "failed")
		} else {
			f.count("out", "sent")
		}
		return err
	})
}

// depth is the number of frames waiting in all rooms' queues.
func (f *frames) depth() float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.rooms {
		n += c.Queued()
	}
	return float64(n)
}
