// Package client is a concurrent request/reply client over one
// authenticated session: many goroutines may Call at once while one
// goroutine (Run) reads the session and hands each answer to the Call that
// waits for it, matched by request ID (ops.Reply's Req, or an ERROR's
// ref-seq). Device events go to a buffered channel.
//
// The Matrix bridge issues calls from many goroutines on one session; the
// CLI's one-shot commands can use it too.
package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/optable"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// EventBuffer is the capacity of the Events channel.
const EventBuffer = 256

// DefaultTimeout bounds a Call whose context has no deadline: a hub that
// never answers one is an error (TIMEOUT), not a wait for ever.
const DefaultTimeout = 30 * time.Second

// errNoAnswer is the cause of a Call that ran out of its DefaultTimeout.
var errNoAnswer = &wire.Error{Code: wire.CodeTimeout, Reason: "no answer from the hub"}

// ErrRunning is returned by a second call of Run.
var ErrRunning = errors.New("client: Run called more than once")

// result is what Run hands to a waiting Call.
type result struct {
	reply  ops.Reply
	answer *payload.Error // an ERROR answer
	err    error          // why Run returned
}

// Client matches replies to concurrent requests on one session. Create it
// with New, start Run in its own goroutine, then Call from any goroutine.
type Client struct {
	s   *session.Session
	log zerolog.Logger

	next atomic.Uint32 // the last request ID handed out

	mu      sync.Mutex
	pending map[uint32]chan result // buffered 1; removed by whoever ends the call
	ended   bool                   // Run has returned
	err     error                  // why Run returned

	// Timeout bounds each Call whose context has no deadline; 0 is
	// DefaultTimeout. Set it before the first Call.
	Timeout time.Duration

	started atomic.Bool
	events  chan ops.Event
	dropped atomic.Uint64
	done    chan struct{}
}

// New returns a client for s, an established session. Nothing reads s
// until Run is called.
func New(s *session.Session, log zerolog.Logger) *Client {
	return &Client{
		s:       s,
		log:     log,
		pending: map[uint32]chan result{},
		events:  make(chan ops.Event, EventBuffer),
		done:    make(chan struct{}),
	}
}

// Session returns the session the client runs on.
func (c *Client) Session() *session.Session { return c.s }

// Events delivers the session's device events. The channel is closed when
// Run returns, never before. When it is full, events are dropped and
// counted (Dropped).
func (c *Client) Events() <-chan ops.Event { return c.events }

// Dropped returns how many events were dropped because Events was full.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Done is closed when Run has returned; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns the error Run returned, or nil while Run has not returned.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Run reads the session until it ends or ctx is done, dispatching each
// reply (ops.Reply by its Req, an ERROR by its ref-seq) to the Call that
// waits for it and each DEVICE_EVENT to Events. It returns the session's
// error (or ctx's); calls still pending then fail with it, later calls fail
// at once, and Events is closed. Run does not close the session: its owner
// does. Run may be called once.
func (c *Client) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	var err error
	for {
		m, rerr := c.s.Recv(ctx)
		if rerr != nil {
			err = rerr
			break
		}
		c.dispatch(m)
	}
	c.finish(err)
	return err
}

// finish fails every pending call with err and closes Events and Done.
func (c *Client) finish(err error) {
	c.mu.Lock()
	c.ended, c.err = true, err
	for id, ch := range c.pending {
		ch <- result{err: err} // buffered 1, and nothing else sends once removed
		delete(c.pending, id)
	}
	c.mu.Unlock()
	close(c.events)
	close(c.done)
	c.log.Debug().Err(err).Msg("The client stopped reading its session")
}

// isReply reports whether op is a request answered with an ops.Reply of
// the same op (the op table's Reply).
func isReply(op wire.Op) bool {
	e, ok := optable.Lookup(op)
	return ok && e.Reply
}

// dispatch handles one message from Run's goroutine. It never panics on a
// peer's input: what it cannot use is logged and ignored.
func (c *Client) dispatch(m session.Message) {
	switch {
	case m.Op == wire.OpDeviceEvent:
		var e ops.Event
		if err := ops.Unmarshal(m.Payload, &e); err != nil {
			c.log.Warn().Err(err).Msg("Ignored a malformed device event")
			return
		}
		select {
		case c.events <- e:
		default:
			n := c.dropped.Add(1)
			c.log.Debug().Str("device", e.Device).Uint64("dropped", n).Msg("Dropped a device event: nobody is reading events")
		}
	case m.Op == wire.OpError:
		var e payload.Error
		if err := e.Unmarshal(m.Payload); err != nil {
			c.log.Warn().Err(err).Msg("Ignored a malformed ERROR")
			return
		}
		c.deliver(m.Op, e.RefSeq, result{answer: &e})
	case isReply(m.Op):
		var r ops.Reply
		if err := ops.Unmarshal(m.Payload, &r); err != nil {
			c.log.Warn().Err(err).Stringer("op", m.Op).Msg("Ignored a malformed reply")
			return
		}
		c.deliver(m.Op, r.Req, result{reply: r})
	default:
		c.log.Debug().Stringer("op", m.Op).Msg("Ignored an operation the client does not handle")
	}
}

// deliver hands res to the call waiting for id, if any.
func (c *Client) deliver(op wire.Op, id uint32, res result) {
	c.mu.Lock()
	ch, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if !ok {
		c.log.Debug().Stringer("op", op).Uint32("req", id).Msg("Ignored an answer to no pending request")
		return
	}
	ch <- res // buffered 1: never blocks
}

// register allocates a fresh request ID (never 0, never one still pending)
// and its channel; it fails once Run has returned.
func (c *Client) register() (uint32, chan result, error) {
	ch := make(chan result, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return 0, nil, c.err
	}
	for {
		id := c.next.Add(1)
		if id == 0 {
			continue // the counter wrapped: 0 means "no request"
		}
		if _, busy := c.pending[id]; busy {
			continue
		}
		c.pending[id] = ch
		return id, ch, nil
	}
}

// forget removes id's entry if it is still there.
func (c *Client) forget(id uint32) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Call sends op with req (its Req replaced by a fresh request ID) and waits
// for the answer or ctx. An ERROR answer becomes an error wrapping a
// *wire.Error with the answer's code and message, so wire.CodeOf gives the
// code. When ctx ends first, Call returns ctx.Err(); when Run returns
// first, Call returns Run's error.
func (c *Client) Call(ctx context.Context, op wire.Op, req ops.Request) (ops.Reply, error) {
	if err := ctx.Err(); err != nil {
		return ops.Reply{}, err
	}
	if _, has := ctx.Deadline(); !has {
		timeout := c.Timeout
		if timeout <= 0 {
			timeout = DefaultTimeout
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%v: no answer within %v: %w", op, timeout, errNoAnswer))
		defer cancel()
	}
	id, ch, err := c.register()
	if err != nil {
		return ops.Reply{}, err
	}
	req.Req = id
	b, err := ops.Marshal(req)
	if err != nil {
		c.forget(id)
		return ops.Reply{}, fmt.Errorf("%v: %w", op, err)
	}
	if err := c.s.Send(ctx, op, b); err != nil {
		c.forget(id)
		if cerr := ctx.Err(); cerr != nil {
			return ops.Reply{}, cerr
		}
		return ops.Reply{}, err
	}
	select {
	case res := <-ch:
		if res.answer != nil {
			return ops.Reply{}, answerError(op, res.answer)
		}
		return res.reply, res.err
	case <-ctx.Done():
		c.forget(id)
		if cause := context.Cause(ctx); errors.Is(cause, errNoAnswer) {
			return ops.Reply{}, cause
		}
		return ops.Reply{}, ctx.Err()
	}
}

// answerError turns an ERROR answer to op into an error wrapping a
// *wire.Error with its code and message.
func answerError(op wire.Op, e *payload.Error) error {
	reason := e.Message
	if reason == "" {
		reason = e.Code.String()
	}
	if e.HasRequiredTier {
		reason = fmt.Sprintf("%s (needs tier %d)", reason, e.RequiredTier)
	}
	return fmt.Errorf("%v answered %v: %w", op, e.Code, &wire.Error{Code: e.Code, Reason: reason})
}
