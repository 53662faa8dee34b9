package hub

import (
	"context"
	"sync"
	"time"

	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
)

// DefaultSendQueue is how many messages the hub queues for one session
// when Config.SendQueue is 0 (PROFILE.md §P42).
const DefaultSendQueue = 256

// sendTimeout bounds one queued message's write: a session whose peer
// takes longer to read it is ended (PROFILE.md §P42).
const sendTimeout = 10 * time.Second

// OverflowKind is the DEVICE_EVENT kind that tells a session it lost a
// subscription because its send queue was full.
const OverflowKind = "overflow"

// outbox is one session's ordered, bounded queue of what the hub pushes to
// it: events, lock changes, access and overflow notices, relayed requests
// and the answers to them. The hub queues under h.mu and never waits; one
// goroutine, owned by the session's ServeGated, writes the queue to the
// session in order. When the queue is full the message is dropped and
// the session overflows: the hub ends its subscriptions and queues one
// OverflowKind notice per device, beyond the bound (there is at most one
// per device the session was subscribed to); until those are written
// everything else pushed to it is dropped (route deliveries included).
type outbox struct {
	s   *session.Session
	max int

	mu    sync.Mutex
	items []outMsg
	over  bool          // dropping until the queue drained
	wake  chan struct{} // 1-buffered: the writer has work
}

type outMsg struct {
	op wire.Op
	b  []byte
}

func newOutbox(s *session.Session, max int) *outbox {
	if max <= 0 {
		max = DefaultSendQueue
	}
	return &outbox{s: s, max: max, wake: make(chan struct{}, 1)}
}

// push queues a message without blocking. It reports false when the
// message was dropped, and overflowed when this push is the one that
// found the queue full (the caller then ends the session's subscriptions).
func (q *outbox) push(op wire.Op, b []byte) (ok, overflowed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.over:
		return false, false
	case len(q.items) >= q.max:
		q.over = true
		return false, true
	}
	q.add(op, b)
	return true, false
}

// notice queues an overflow notice past the bound.
func (q *outbox) notice(b []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.add(wire.OpDeviceEvent, b)
}

func (q *outbox) add(op wire.Op, b []byte) {
	q.items = append(q.items, outMsg{op: op, b: b})
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run writes the queue to the session in order until ctx ends; what is
// still queued then is dropped (the session has ended).
func (q *outbox) run(ctx context.Context, h *Hub) {
	for {
		q.mu.Lock()
		for len(q.items) == 0 {
			q.over = false // drained: the overflow notices are out
			q.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
			}
			q.mu.Lock()
		}
		m := q.items[0]
		q.items[0] = outMsg{}
		q.items = q.items[1:]
		q.mu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, sendTimeout)
		err := q.s.Send(sctx, m.op, m.b)
		timedOut := sctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		case timedOut:
			// A peer that has not read for sendTimeout is gone, and a
			// stream cut in the middle of a frame cannot go on.
			h.cfg.Log.Warn().Stringer("op", m.op).Dur("after", sendTimeout).Msg("Ended a session whose peer stopped reading")
			q.s.Abort()
			return
		default:
			h.cfg.Log.Debug().Err(err).Stringer("op", m.op).Msg("Failed to deliver a queued message")
		}
	}
}

// push queues a message for s; h.mu is held. A session the hub does not
// serve (it ended) gets nothing. When s's queue overflows, s loses every
// subscription, each with an OverflowKind notice.
func (h *Hub) push(s *session.Session, op wire.Op, b []byte) bool {
	q := h.queues[s]
	if q == nil {
		return false
	}
	ok, overflowed := q.push(op, b)
	if !overflowed {
		return ok
	}
	now := h.now()
	n := 0
	for id, d := range h.devices {
		if !d.subscribers[s] {
			continue
		}
		delete(d.subscribers, s)
		n++
		e := ops.Event{Device: id, Kind: OverflowKind, Time: now.Unix(), Values: map[string]string{"subscription": "ended"}}
		if nb, err := ops.Marshal(e); err == nil {
			q.notice(nb)
		}
	}
	name := ""
	if p := s.Peer(); p != nil {
		name = p.Name
	}
	h.cfg.Log.Warn().Str("peer", name).Int("queue", q.max).Int("subscriptions", n).
		Msg("A session did not keep up with its events; ended its subscriptions")
	return false
}
