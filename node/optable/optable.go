// Package optable declares every MyClerk operation once: the lowest tier it
// travels at, what the caller must hold on the device it names, whether
// another member's lock refuses it, who may send it, who serves it and how
// it is answered. It is the only place this policy lives (PROFILE.md §P41):
// the session's minimum tiers, the hub's dispatcher (tier, role, ACL, lock,
// then handler or relay), the node's dispatcher for relayed requests, the
// client's reply matching and the help of the CLI and of chat are derived
// from it. Handlers are bound to entries by the package that serves them
// (node/hub, node/agent); their tests check that every served entry has
// exactly one.
//
// An op family (GPIO, CAN, GPU, …) is one file of entries here and one file
// of handlers where it is served.
package optable

import (
	"fmt"
	"slices"
	"strings"

	"github.com/myclerk/myclerk-bridge/wire"
)

// Need is what the caller must hold on the device a request names.
type Need uint8

const (
	// NeedNothing: the op names no device, or filters by access itself
	// (DEVICE_LIST, ROUTE_LIST show only what the caller may read).
	NeedNothing Need = iota
	NeedRead
	NeedWrite
	NeedReadWrite
	// NeedAdmin: the device's owner or one of the hub's admins (ACL and
	// route changes); never a peer of another family.
	NeedAdmin
)

var needNames = [...]string{"nothing", "read", "write", "read-write", "admin"}

func (n Need) String() string {
	if int(n) < len(needNames) {
		return needNames[n]
	}
	return fmt.Sprintf("need-%d", uint8(n))
}

// Reads and Writes say which halves of an access mode n needs.
func (n Need) Reads() bool  { return n == NeedRead || n == NeedReadWrite }
func (n Need) Writes() bool { return n == NeedWrite || n == NeedReadWrite }

// Server is who answers an op.
type Server uint8

const (
	// Session: the session layer itself (handshake, keepalive, rotation,
	// close, re-handshake); it never reaches a dispatcher.
	Session Server = iota
	// Hub: the hub answers from its registry.
	Hub
	// Owner: the hub relays it to the node that owns the device, with the
	// caller's identity and mode; the node answers.
	Owner
	// Push: sent unasked (a node's announcements and events to its hub,
	// the hub's events to subscribers); never answered.
	Push
	// Stream: forwarded by stream ID between the two ends of a stream.
	Stream
)

var serverNames = [...]string{"session", "hub", "owner", "push", "stream"}

func (s Server) String() string {
	if int(s) < len(serverNames) {
		return serverNames[s]
	}
	return fmt.Sprintf("server-%d", uint8(s))
}

// Senders is a set of the peers that may send an op to the one serving it.
type Senders uint8

const (
	FromClient  Senders = 1 << iota // a family member with the client role (a phone, a chat user)
	FromNode                        // a family member with the node role (a Pi with devices)
	FromHub                         // the family's hub (relayed requests reach nodes so)
	FromForeign                     // a hub of a federated family (PROFILE.md §P40)

	// FromMember is anyone of the family.
	FromMember = FromClient | FromNode | FromHub
	// FromAnyone is the family and its federated families.
	FromAnyone = FromMember | FromForeign
)

// Has reports whether every sender of o is in s.
func (s Senders) Has(o Senders) bool { return s&o == o }

func (s Senders) String() string {
	switch s {
	case 0:
		return "nobody"
	case FromAnyone:
		return "anyone"
	case FromMember:
		return "member"
	}
	var out []string
	for i, n := range []string{"client", "node", "hub", "foreign"} {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}

// Entry declares one operation.
type Entry struct {
	Op wire.Op
	// MinTier is the lowest tier the op is accepted at; configuration may
	// raise it, never lower it (PROFILE.md §P20).
	MinTier wire.Tier
	// Need is what the caller must hold on the request's device.
	Need Need
	// Lock: refused with CONFLICT while another member holds the device's
	// lock.
	Lock bool
	// Senders may send the op to its server.
	Senders Senders
	// Server answers it.
	Server Server
	// Served says the op is implemented; one that is not is answered
	// UNSUPPORTED by the dispatcher, from this table.
	Served bool
	// Reply: the answer is a frame of the same op carrying the request's
	// "req" (node/ops.Reply), or an ERROR whose ref-seq is that "req".
	Reply bool
	// Args and Help describe the op to people ("DEVICE [SECONDS]",
	// "exclusive use, a lease"); Command is its name in the CLI's client
	// ("lock"). Chat names its commands itself and takes Args and Help
	// from here. Empty for ops people do not send.
	Command, Args, Help string
}

// Name is the op's name as the draft writes it.
func (e *Entry) Name() string { return e.Op.String() }

// table is every entry in op code order (checked by the tests); the
// families append theirs in their files.
var table = sorted(
	sessionOps, deviceOps, streamOps, gpuOps, routeOps,
	usbOps, serialOps, gpioOps, i2cOps, spiOps, canOps, oneWireOps,
)

func sorted(families ...[]Entry) []Entry {
	var all []Entry
	for _, f := range families {
		all = append(all, f...)
	}
	slices.SortFunc(all, func(a, b Entry) int { return int(a.Op) - int(b.Op) })
	return all
}

// Lookup returns op's entry; ok is false for an op that no table defines.
// Such an op is served by nobody (UNSUPPORTED) and needs Tier 3, or Tier 4
// in the key management and federation ranges (PROFILE.md §P20, §P25).
func Lookup(op wire.Op) (e *Entry, ok bool) {
	i, found := slices.BinarySearchFunc(table, op, func(e Entry, op wire.Op) int { return int(e.Op) - int(op) })
	if found {
		return &table[i], true
	}
	return &Entry{Op: op, MinTier: undefinedTier(op), Senders: FromAnyone, Server: Hub, Reply: true}, false
}

// undefinedTier is the minimum tier of an op no table defines.
func undefinedTier(op wire.Op) wire.Tier {
	if op >= 0x0010 && op <= 0x001F || op.Range() == wire.RangeFederation {
		return wire.Tier4
	}
	return wire.Tier3
}

// minTiers is every code's minimum tier, for MinTier: the session asks
// for every frame it sends and receives, so it is an index, not a search
// (64 KiB).
var minTiers = func() *[1 << 16]wire.Tier {
	var t [1 << 16]wire.Tier
	for op := range t {
		t[op] = undefinedTier(wire.Op(op))
	}
	for _, e := range table {
		t[e.Op] = e.MinTier
	}
	return &t
}()

// MinTier is the lowest tier op is accepted at by default.
func MinTier(op wire.Op) wire.Tier { return minTiers[op] }

// Entries returns a copy of the table in op code order.
func Entries() []Entry { return slices.Clone(table) }

// Commands returns the entries people have a command for, in op order.
func Commands() []Entry {
	var out []Entry
	for _, e := range table {
		if e.Command != "" {
			out = append(out, e)
		}
	}
	return out
}

// Usage is one line of help for e's command: "lock DEVICE [SECONDS]",
// padded to width, then the help and what the command needs.
func (e *Entry) Usage(width int) string {
	cmd := e.Command
	if e.Args != "" {
		cmd += " " + e.Args
	}
	need := ""
	if e.Need != NeedNothing {
		need = ", needs " + e.Need.String()
	}
	return fmt.Sprintf("%-*s %s (%s, tier %d%s)", width, cmd, e.Help, e.Name(), e.MinTier, need)
}
