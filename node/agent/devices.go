package agent

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/myclerk/myclerk-bridge/node/ops"
)

// SimSensor is a simulated temperature sensor: a slow sine around a base
// value, read every Interval. It lets a node without hardware join and
// shows what a real sensor's events look like.
type SimSensor struct {
	ID, Name string
	Base     float64
	Clock    func() time.Time

	mu       sync.Mutex
	interval time.Duration
}

// NewSimSensor returns a sensor reporting every interval.
func NewSimSensor(id, name string, base float64, interval time.Duration) *SimSensor {
	return &SimSensor{ID: id, Name: name, Base: base, Clock: time.Now, interval: interval}
}

// Reading is the value at t.
func (s *SimSensor) Reading(t time.Time) float64 {
	return s.Base + 2*math.Sin(float64(t.Unix()%3600)/3600*2*math.Pi)
}

// Describe announces the sensor.
func (s *SimSensor) Describe() ops.Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ops.Device{ID: s.ID, Kind: "sensor", Name: s.Name, Capabilities: map[string]string{
		"unit": "celsius", "interval": s.interval.String(), "simulated": "true"}}
}

// Configure accepts "interval" (a Go duration, 1s to 1h).
func (s *SimSensor) Configure(settings map[string]string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range settings {
		switch k {
		case "interval":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > time.Hour {
				return nil, fmt.Errorf("interval %q: want a duration from 1s to 1h", v)
			}
			s.interval = d
		default:
			return nil, fmt.Errorf("unknown setting %q (the sensor has: interval)", k)
		}
	}
	return map[string]string{"unit": "celsius", "interval": s.interval.String(), "simulated": "true"}, nil
}

// Events reports a reading every interval.
func (s *SimSensor) Events(ctx context.Context) <-chan ops.Event {
	ch := make(chan ops.Event)
	go func() {
		defer close(ch)
		for {
			s.mu.Lock()
			iv := s.interval
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(iv):
			}
			now := s.Clock()
			e := ops.Event{Kind: "reading", Time: now.Unix(), Values: map[string]string{
				"temperature": strconv.FormatFloat(s.Reading(now), 'f', 2, 64)}}
			select {
			case ch <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// SerialPort announces a serial port of this machine (a path such as
// /dev/ttyUSB0) with its line settings. Data passthrough arrives with the
// hardware issue; today the port is listed, described and configured.
type SerialPort struct {
	ID, Path string

	mu   sync.Mutex
	baud int
}

// NewSerialPort describes the port at path; it must exist.
func NewSerialPort(id, path string, baud int) (*SerialPort, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("serial port %s: %w", path, err)
	}
	return &SerialPort{ID: id, Path: path, baud: baud}, nil
}

func (p *SerialPort) state() map[string]string {
	return map[string]string{"path": p.Path, "baud": strconv.Itoa(p.baud), "data-bits": "8", "parity": "none", "stop-bits": "1"}
}

// Describe announces the port.
func (p *SerialPort) Describe() ops.Device {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ops.Device{ID: p.ID, Kind: "serial", Name: p.Path, Capabilities: p.state()}
}

// Configure accepts "baud".
func (p *SerialPort) Configure(settings map[string]string) (map[string]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, v := range settings {
		if k != "baud" {
			return nil, fmt.Errorf("unknown setting %q (the port has: baud)", k)
		}
		b, err := strconv.Atoi(v)
		if err != nil || b < 50 || b > 4_000_000 {
			return nil, fmt.Errorf("baud %q: want 50 to 4000000", v)
		}
		p.baud = b
	}
	return p.state(), nil
}

// Events: a port has none yet.
func (p *SerialPort) Events(context.Context) <-chan ops.Event { return nil }
