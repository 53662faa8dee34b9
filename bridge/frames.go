package bridge

import (
	"context"
	"sync"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myclerk/myclerk-bridge/bridge/frameevent"
	"github.com/myclerk/myclerk-bridge/bridge/matrixconn"
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

	mu    sync.Mutex
	rooms map[id.RoomID]*matrixconn.Conn
}

func newFrames(b *Bridge) *frames {
	return &frames{b: b, rooms: map[id.RoomID]*matrixconn.Conn{}}
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
		f.count("in", "malformed")
		log.Info().Err(err).Msg("Dropped a malformed frame event")
		return
	}
	user, err := b.Bridge.GetUserByMXID(ctx, evt.Sender)
	if err != nil || !user.Permissions.SendEvents {
		f.count("in", "forbidden")
		log.Info().Msg("Dropped a frame event from a user the bridge's permissions do not allow")
		return
	}
	first, err := b.Hub.Store.Matrix.MarkSeen(ctx, evt.ID.String(), time.Now())
	if err != nil {
		f.count("in", "failed")
		log.Warn().Err(err).Msg("Failed to record a frame event; dropped it")
		return
	}
	if !first {
		f.count("in", "duplicate")
		log.Debug().Msg("Dropped a frame event seen before")
		return
	}
	c := f.conn(evt.RoomID, evt.Sender)
	if c == nil {
		f.count("in", "dropped")
		log.Warn().Msg("Dropped a frame event: too many rooms with sessions")
		return
	}
	if c.Peer() != evt.Sender {
		f.count("in", "forbidden")
		log.Info().Stringer("peer", c.Peer()).Msg("Dropped a frame event from another member than the room's peer")
		return
	}
	if !c.Deliver(frame) {
		f.count("in", "dropped")
		return
	}
	f.count("in", "accepted")
}

// conn returns the room's connection, making one (and starting the hub's
// side of a session on it) for a room's first frame.
func (f *frames) conn(room id.RoomID, sender id.UserID) *matrixconn.Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.rooms[room]; c != nil {
		return c
	}
	if len(f.rooms) >= maxRoomSessions {
		return nil
	}
	bot := f.b.Matrix.Bot
	c := matrixconn.NewConn(room, sender, func(ctx context.Context, content frameevent.Content) error {
		_, err := bot.SendMessageEvent(ctx, room, FrameEventType, content)
		if err != nil {
			f.count("out", "failed")
		} else {
			f.count("out", "sent")
		}
		return err
	})
	f.rooms[room] = c
	go func() {
		f.b.Hub.Serve(c) // handshake, authentication, registry: as over TCP
		c.Close()
		f.mu.Lock()
		if f.rooms[room] == c {
			delete(f.rooms, room)
		}
		f.mu.Unlock()
	}()
	return c
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
