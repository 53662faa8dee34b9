package frag

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
)

// Limits bound a Reassembler. A field that is zero or negative takes its
// value from DefaultLimits.
type Limits struct {
	MaxFragments   int           // fragments of one message (its Total)
	MaxMessageSize int           // body bytes of one message
	MaxPending     int           // messages under reassembly at once
	MaxBytes       int           // bytes buffered, all messages and bookkeeping together
	Timeout        time.Duration // from a message's first fragment to its last
}

// DefaultLimits returns the wire profile's limits (wire/limits.go).
func DefaultLimits() Limits {
	return Limits{
		MaxFragments:   wire.MaxFragments,
		MaxMessageSize: wire.MaxMessageSize,
		MaxPending:     wire.MaxPendingMessages,
		MaxBytes:       wire.MaxReassemblyBytes,
		Timeout:        wire.ReassemblyTimeout,
	}
}

// The bookkeeping a Reassembler counts against MaxBytes besides the bodies,
// roughly what it allocates: a message is its struct and map entry, a
// fragment its slot in the message's piece list (which append may have
// doubled) and the rounding of its body's allocation.
const (
	messageOverhead = 256
	pieceOverhead   = 64
)

// A Reassembler holds the messages of one session under reassembly. Create
// one with NewReassembler. It is not safe for concurrent use.
//
// Its policy, for a peer whose frames are authenticated and replay-checked
// before they get here, so that a bad fragment means a broken or hostile
// peer rather than a forged or replayed frame:
//
//   - A fragment that would start a message beyond MaxPending (after
//     expiring timed-out messages) or push the buffered bytes beyond
//     MaxBytes is refused, and the messages already pending are kept. A
//     flood of new message-ids therefore cannot evict messages in progress;
//     a peer that opens messages and never completes them blocks only its
//     own new messages, and only until Timeout.
//   - A fragment refused for a limit of its own message (MaxMessageSize,
//     MaxBytes, Timeout) drops the message: it cannot complete without that
//     fragment, and holding its bytes would only starve the others.
//   - A fragment whose Total or Kind disagrees with the message's drops the
//     message: the peer no longer agrees with itself on what it is sending.
//   - A duplicate index, or an empty body, is refused and the message kept
//     as it was.
type Reassembler struct {
	l     Limits
	msgs  map[uint32]*message
	bytes int // bodies and bookkeeping of all pending messages
}

// Kind is what every fragment of one message must carry alike besides
// its Total: the op, the tier and the flags that change how the joined
// body is read (PROFILE.md §P13). A message whose fragments disagree is a
// message no single frame could have carried: a Tier-5 op cannot travel
// mostly at Tier 3, nor half of a body compressed.
type Kind struct {
	Op         wire.Op
	Tier       wire.Tier
	Compressed bool
	Encrypted  bool
}

// KindOf is the Kind of a fragment with header h.
func KindOf(h *wire.Header) Kind {
	return Kind{Op: h.Op, Tier: h.Tier, Compressed: h.Compressed, Encrypted: h.Encrypted}
}

// message is one message under reassembly.
type message struct {
	first  time.Time // arrival of its first fragment
	kind   Kind      // its first fragment's; every other one must agree
	total  uint16
	size   int                            // body bytes buffered
	seen   [wire.MaxFragments / 64]uint64 // indices received, one bit each
	pieces []piece                        // in arrival order
}

// piece is one fragment's body, copied.
type piece struct {
	index uint16
	body  []byte
}

// NewReassembler returns an empty Reassembler bounded by l.
func NewReassembler(l Limits) *Reassembler {
	d := DefaultLimits()
	if l.MaxFragments <= 0 {
		l.MaxFragments = d.MaxFragments
	}
	if l.MaxMessageSize <= 0 {
		l.MaxMessageSize = d.MaxMessageSize
	}
	if l.MaxPending <= 0 {
		l.MaxPending = d.MaxPending
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	return &Reassembler{l: l, msgs: make(map[uint32]*message)}
}

// Add stores a copy of one fragment's body, of kind k, received at now.
// When that
// completes its message, Add returns the message (a new slice the caller
// owns) with done = true and forgets it; a later fragment with the same
// message-id starts a new message.
//
// Malformed fragments are refused with an error wrapping wire.ErrFragment,
// fragments over a limit with one wrapping wire.ErrReassembly; the
// Reassembler's doc says what happens to the message then.
func (r *Reassembler) Add(k Kind, h wire.FragmentHeader, body []byte, now time.Time) (msg []byte, done bool, err error) {
	if err := h.Validate(); err != nil {
		return nil, false, fragError(h, err, "invalid sub-header")
	}
	if int(h.Total) > r.l.MaxFragments {
		return nil, false, fragError(h, wire.ErrReassembly, "more than %d fragments", r.l.MaxFragments)
	}
	if len(body) == 0 {
		return nil, false, fragError(h, wire.ErrFragment, "empty body")
	}

	m := r.msgs[h.MessageID]
	switch {
	case m == nil:
	case r.expired(m, now):
		r.drop(h.MessageID, m)
		return nil, false, fragError(h, wire.ErrReassemblyTime, "message timed out")
	case h.Total != m.total:
		r.drop(h.MessageID, m)
		return nil, false, fragError(h, wire.ErrFragment, "message has %d fragments", m.total)
	case k != m.kind:
		r.drop(h.MessageID, m)
		return nil, false, fragError(h, wire.ErrFragment, "%v at tier %d in a message of %v at tier %d", k.Op, k.Tier, m.kind.Op, m.kind.Tier)
	case m.seen[h.Index/64]&(1<<(h.Index%64)) != 0:
		return nil, false, fragError(h, wire.ErrFragment, "duplicate index")
	}

	size, cost := len(body), pieceOverhead+len(body)
	if m == nil {
		cost += messageOverhead
	} else {
		size += m.size
	}
	if size > r.l.MaxMessageSize {
		r.drop(h.MessageID, m)
		return nil, false, fragError(h, wire.ErrReassembly, "message over %d bytes", r.l.MaxMessageSize)
	}
	if (m == nil && len(r.msgs) >= r.l.MaxPending) || r.bytes+cost > r.l.MaxBytes {
		r.Expire(now) // m, if any, has not timed out: it stays
	}
	if m == nil && len(r.msgs) >= r.l.MaxPending {
		return nil, false, fragError(h, wire.ErrReassembly, "%d messages pending", len(r.msgs))
	}
	if r.bytes+cost > r.l.MaxBytes {
		r.drop(h.MessageID, m)
		return nil, false, fragError(h, wire.ErrReassembly, "over %d bytes pending", r.l.MaxBytes)
	}

	if m == nil {
		m = &message{first: now, kind: k, total: h.Total}
		r.msgs[h.MessageID] = m
	}
	m.seen[h.Index/64] |= 1 << (h.Index % 64)
	m.pieces = append(m.pieces, piece{h.Index, bytes.Clone(body)})
	m.size += len(body)
	r.bytes += cost
	if len(m.pieces) < int(m.total) {
		return nil, false, nil
	}
	r.drop(h.MessageID, m)
	return m.join(), true, nil
}

// Expire drops the messages whose first fragment arrived more than Timeout
// before now, and returns how many it dropped.
func (r *Reassembler) Expire(now time.Time) int {
	n := 0
	for id, m := range r.msgs {
		if r.expired(m, now) {
			r.drop(id, m)
			n++
		}
	}
	return n
}

// Pending returns the messages under reassembly and the bytes they hold,
// bookkeeping included: the figure MaxBytes bounds.
func (r *Reassembler) Pending() (messages, bytes int) {
	return len(r.msgs), r.bytes
}

func (r *Reassembler) expired(m *message, now time.Time) bool {
	return now.Sub(m.first) > r.l.Timeout
}

// drop forgets message id and frees its bytes; m may be nil.
func (r *Reassembler) drop(id uint32, m *message) {
	if m == nil {
		return
	}
	r.bytes -= messageOverhead + len(m.pieces)*pieceOverhead + m.size
	delete(r.msgs, id)
}

// join concatenates the bodies of a complete message by index.
func (m *message) join() []byte {
	slices.SortFunc(m.pieces, func(a, b piece) int { return cmp.Compare(a.index, b.index) })
	out := make([]byte, 0, m.size)
	for _, p := range m.pieces {
		out = append(out, p.body...)
	}
	return out
}

func fragError(h wire.FragmentHeader, err error, format string, args ...any) error {
	return fmt.Errorf("fragment %d/%d of message %d: %s: %w",
		h.Index, h.Total, h.MessageID, fmt.Sprintf(format, args...), err)
}
