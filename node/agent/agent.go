// Package agent is what a plain node (a Pi with a sensor, a mini-PC with a
// serial port) runs: it keeps a session to the hub, announces its devices,
// answers the requests the hub relays to it, and reports device events.
// Which devices exist is pluggable (Device).
package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/optable"
	"github.com/myclerk/myclerk-bridge/node/session"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// Device is one device this node offers. Implementations: SimSensor,
// SerialPort; the hardware issue adds the rest.
type Device interface {
	// Describe returns the device as announced (ID local to this node).
	Describe() ops.Device
	// Configure applies settings and returns the device's new state.
	Configure(settings map[string]string) (map[string]string, error)
	// Events delivers the device's events until ctx is done; nil when the
	// device has none.
	Events(ctx context.Context) <-chan ops.Event
}

// Agent runs a node's side of its session with the hub.
type Agent struct {
	Devices []Device
	Log     zerolog.Logger
}

// Serve announces the devices on s and serves it until it ends.
func (a *Agent) Serve(ctx context.Context, s *session.Session) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	byID := map[string]Device{}
	var ann ops.Announce
	for _, d := range a.Devices {
		desc := d.Describe()
		byID[desc.ID] = d
		ann.Devices = append(ann.Devices, desc)
	}
	b, err := ops.Marshal(ann)
	if err != nil {
		return err
	}
	if err := s.Send(ctx, wire.OpDeviceAnnounce, b); err != nil {
		return fmt.Errorf("failed to announce devices: %w", err)
	}
	a.Log.Info().Int("devices", len(ann.Devices)).Msg("Announced devices to the hub")

	var wg sync.WaitGroup
	defer wg.Wait()
	for id, d := range byID {
		ch := d.Events(ctx)
		if ch == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range ch {
				e.Device = id
				b, err := ops.Marshal(e)
				if err == nil {
					err = s.Send(ctx, wire.OpDeviceEvent, b)
				}
				if err != nil {
					a.Log.Debug().Err(err).Msg("Failed to send an event")
				}
			}
		}()
	}
	for {
		m, err := s.Recv(ctx)
		if err != nil {
			cancel()
			return err
		}
		if err := a.dispatch(ctx, s, byID, m); err != nil {
			a.Log.Warn().Err(err).Stringer("op", m.Op).Msg("Failed to serve a relayed request")
		}
	}
}

// handler serves one relayed op for a device of this node.
type handler func(a *Agent, d Device, req *ops.Request) (*ops.Reply, error)

// handlers binds the op table's owner-served entries that this node
// serves; the rest are answered UNSUPPORTED.
var handlers = map[wire.Op]handler{
	wire.OpDeviceConfigure: (*Agent).configure,
}

// dispatch serves what the hub relays, from the op table: only requests
// the table says a device's owner serves, only from the family's hub, only
// when the caller's attested mode allows the op.
func (a *Agent) dispatch(ctx context.Context, s *session.Session, byID map[string]Device, m session.Message) error {
	e, _ := optable.Lookup(m.Op)
	if m.Op == wire.OpError {
		// The hub refused something this node pushed (an announcement
		// over a limit): nothing to answer, but the person running the
		// node must see why.
		var pe payload.Error
		if err := pe.Unmarshal(m.Payload); err != nil {
			return err
		}
		a.Log.Warn().Stringer("code", pe.Code).Str("message", pe.Message).Msg("The hub refused what this node sent")
		return nil
	}
	if e.Server != optable.Owner {
		a.Log.Debug().Stringer("op", m.Op).Msg("Ignored an operation a node does not serve")
		return nil
	}
	if p := s.Peer(); p == nil || p.Role != identity.RoleHub {
		return fmt.Errorf("%v from a peer that is not the hub: %w", m.Op, errDenied)
	}
	var req ops.Request
	if err := ops.Unmarshal(m.Payload, &req); err != nil {
		return sendError(ctx, s, 0, err)
	}
	if req.Relay == 0 || req.Caller == nil {
		return sendError(ctx, s, req.Req, fmt.Errorf("%v without the hub's relay and caller: %w", m.Op, wire.ErrMalformed))
	}
	if !req.Caller.Mode.Allows(e.Need.Reads(), e.Need.Writes()) {
		return sendError(ctx, s, req.Relay, fmt.Errorf("%s with mode %v: %w", req.Caller.Name, req.Caller.Mode, errDenied))
	}
	f := handlers[m.Op]
	if f == nil || !e.Served {
		return sendError(ctx, s, req.Relay, fmt.Errorf("%v: %w", m.Op, errUnsupported))
	}
	local := req.Device
	if i := lastSlash(local); i >= 0 {
		local = local[i+1:] // the hub prefixes the node's name
	}
	d := byID[local]
	if d == nil {
		return sendError(ctx, s, req.Relay, fmt.Errorf("%q: %w", req.Device, errNoDevice))
	}
	r, err := f(a, d, &req)
	if err != nil {
		return sendError(ctx, s, req.Relay, err)
	}
	r.Req, r.Relay = req.Relay, req.Relay
	b, err := ops.Marshal(r)
	if err != nil {
		return err
	}
	return s.Send(ctx, m.Op, b)
}

var (
	errDenied      = &wire.Error{Code: wire.CodeForbidden, Reason: "access denied by the ACL"}
	errUnsupported = &wire.Error{Code: wire.CodeUnsupported, Reason: "operation not supported by this node"}
	errNoDevice    = &wire.Error{Code: wire.CodeNotFound, Reason: "no such device"}
)

// sendError answers a relayed request with ERROR; a device's own error
// (a bad setting) is BAD_REQUEST.
func sendError(ctx context.Context, s *session.Session, ref uint32, err error) error {
	code := wire.CodeOf(err)
	if code == wire.CodeInternalError {
		code = wire.CodeBadRequest
	}
	e := payload.Error{Code: code, RefSeq: ref, Message: payload.ShortMessage(err.Error())}
	b, merr := e.Marshal()
	if merr != nil {
		return merr
	}
	return s.Send(ctx, wire.OpError, b)
}

func (a *Agent) configure(d Device, req *ops.Request) (*ops.Reply, error) {
	state, err := d.Configure(req.Settings)
	if err != nil {
		return nil, err
	}
	desc := d.Describe()
	desc.Capabilities = state
	return &ops.Reply{Devices: []ops.Device{desc}, Result: "configured"}, nil
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// Reconnect keeps a session to the hub: it dials, resumes with the last
// ticket when it has one, serves, and starts again after a pause when the
// session ends, until ctx is done.
// open returns the session and a func that releases its connection.
func Reconnect(ctx context.Context, log zerolog.Logger, open func(ctx context.Context, t *session.Ticket) (*session.Session, func(), error), serve func(context.Context, *session.Session) error) {
	var t *session.Ticket
	backoff := time.Second
	for ctx.Err() == nil {
		s, done, err := open(ctx, t)
		if err != nil && t != nil {
			t = nil // tickets are single-use and may have expired: full handshake
			s, done, err = open(ctx, nil)
		}
		if err != nil {
			log.Warn().Err(err).Dur("retry_in", backoff).Msg("Failed to reach the hub")
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
			continue
		}
		backoff = time.Second
		err = serve(ctx, s)
		s.Close(context.Background())
		done()
		if tk, ok := s.Ticket(); ok {
			t = &tk
		}
		log.Info().Err(err).Msg("The session with the hub ended")
	}
}
