// Package agent is what a plain node (a Pi with a sensor, a mini-PC with a
// serial port) runs: it keeps a session to the hub, announces its devices,
// answers the requests the hub relays to it, and reports device events.
// Which devices exist is pluggable (Device).
package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/ops"
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
		if m.Op != wire.OpDeviceConfigure {
			continue // nothing else is relayed to a node yet
		}
		if err := a.configure(ctx, s, byID, m.Payload); err != nil {
			a.Log.Warn().Err(err).Msg("Failed to configure a device")
		}
	}
}

func (a *Agent) configure(ctx context.Context, s *session.Session, byID map[string]Device, p []byte) error {
	var req ops.Request
	if err := ops.Unmarshal(p, &req); err != nil {
		return err
	}
	local := req.Device
	if i := lastSlash(local); i >= 0 {
		local = local[i+1:] // the hub prefixes the node's name
	}
	d := byID[local]
	var state map[string]string
	err := errors.New("no such device")
	if d != nil {
		state, err = d.Configure(req.Settings)
	}
	if err != nil {
		e := payload.Error{Code: wire.CodeBadRequest, RefSeq: req.Req, Message: err.Error()}
		if d == nil {
			e.Code = wire.CodeNotFound
		}
		b, merr := e.Marshal()
		if merr != nil {
			return merr
		}
		return s.Send(ctx, wire.OpError, b)
	}
	desc := d.Describe()
	desc.Capabilities = state
	b, err := ops.Marshal(ops.Reply{Req: req.Req, Devices: []ops.Device{desc}, Result: "configured"})
	if err != nil {
		return err
	}
	return s.Send(ctx, wire.OpDeviceConfigure, b)
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
