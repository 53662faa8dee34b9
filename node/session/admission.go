package session

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
)

// The admission caps of PROFILE.md §P41, each with its reason.
const (
	// MaxHandshakes bounds the handshakes a responder runs at once. A
	// handshake holds at most wire.PreAuthBytes and one goroutine for at
	// most wire.HandshakeTimeout; a family has tens of members, and after
	// a hub restart they reconnect with backoff, so 64 at once is ample
	// and bounds what strangers can hold to 4 MiB.
	MaxHandshakes = 64

	// MaxHandshakesPerSource bounds the handshakes from one source (an IP
	// address on TCP and WebSocket, the room on Matrix; NATS has no
	// provable source, see MaxNATSHandshakes):
	// one machine runs a few nodes, and one stranger cannot take every
	// slot from everyone else.
	MaxHandshakesPerSource = 16

	// MaxNATSHandshakes bounds the handshakes a hub runs at once on NATS,
	// apart from MaxHandshakes for the other transports. A NATS source is
	// the dialer's reply subject, which needs no permission to claim, so
	// an enrolled node could pose as any number of sources: NATS has a
	// cap of its own and none per source, and an insider filling it
	// shuts out NATS handshakes only, never TCP, WebSocket or Matrix
	// ones. Half of MaxHandshakes: a family's members on NATS reconnect
	// with backoff as they do elsewhere.
	MaxNATSHandshakes = 32
)

// Admission caps the handshakes in progress, all together and per source.
// A Responder with one refuses a connection over either cap at once. It is
// safe for concurrent use.
type Admission struct {
	max, perSource int

	mu      sync.Mutex
	total   int
	sources map[string]int

	refused atomic.Int64
}

// NewAdmission returns an Admission allowing max handshakes at once and
// perSource from any one source.
func NewAdmission(max, perSource int) *Admission {
	return &Admission{max: max, perSource: perSource, sources: map[string]int{}}
}

// Admit takes a slot for a handshake with the peer at remote (a
// transport.Conn's RemoteAddr) and returns the func that gives it back,
// or ErrBusy when a cap is reached.
func (a *Admission) Admit(remote string) (release func(), err error) {
	src := Source(remote)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.total >= a.max || a.sources[src] >= a.perSource {
		a.refused.Add(1)
		return nil, fmt.Errorf("%w: %d in progress, %d from %s", ErrBusy, a.total, a.sources[src], src)
	}
	a.total++
	a.sources[src]++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.total--
			if a.sources[src]--; a.sources[src] <= 0 {
				delete(a.sources, src)
			}
		})
	}, nil
}

// InFlight returns the handshakes in progress.
func (a *Admission) InFlight() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}

// Refused returns how many connections Admit refused.
func (a *Admission) Refused() int64 { return a.refused.Load() }

// Source is the part of a RemoteAddr that names where a peer comes from:
// the IP address on TCP and WebSocket ("tcp 192.0.2.1:5555" and
// "ws 192.0.2.1:5556" are both 192.0.2.1), the subject without the
// connection ID on NATS ("nats myclerk.<family>.<node>"), the whole
// address otherwise.
func Source(remote string) string {
	network, addr, ok := strings.Cut(remote, " ")
	if !ok {
		return remote
	}
	switch network {
	case "tcp", "ws":
		if host, _, err := net.SplitHostPort(addr); err == nil {
			return host
		}
	case "nats":
		if i := strings.LastIndex(addr, ".c."); i > 0 {
			return network + " " + addr[:i]
		}
	}
	return remote
}
