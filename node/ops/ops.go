// Package ops defines the payloads of the device, routing and ACL
// operations (draft §6.2.1, §6.2.4; PROFILE.md §P37) and the profile's two
// additions, DEVICE_ANNOUNCE and DEVICE_EVENT. They are MessagePack maps
// with the field names below as keys; unknown keys are ignored. Every
// request carries a request ID ("req") that its reply (the same op) or an
// ERROR (its ref-seq) repeats, so a client can match answers to requests.
package ops

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// Mode is an access mode of draft §6.2.4.
type Mode uint8

const (
	ModeNone      Mode = 0x00
	ModeRead      Mode = 0x01
	ModeWrite     Mode = 0x02
	ModeReadWrite Mode = 0x03
	ModeExclusive Mode = 0x04
)

var modeNames = [...]string{"none", "read-only", "write-only", "read-write", "exclusive"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode-%d", uint8(m))
}

// ParseMode reads a mode name (as String prints it) or "ro"/"wo"/"rw".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "ro":
		return ModeRead, nil
	case "wo":
		return ModeWrite, nil
	case "rw":
		return ModeReadWrite, nil
	}
	for i, n := range modeNames {
		if n == s {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("access mode %q: want none, read-only, write-only, read-write or exclusive", s)
}

// Allows reports whether holding mode m permits an access that needs
// reading (r) and/or writing (w).
func (m Mode) Allows(r, w bool) bool {
	switch m {
	case ModeExclusive, ModeReadWrite:
		return true
	case ModeRead:
		return !w
	case ModeWrite:
		return !r
	}
	return false
}

// Device describes one device a node offers.
type Device struct {
	ID           string            `msgpack:"id"`
	Kind         string            `msgpack:"kind"` // "sensor", "serial", "gpio", "gpu", ...
	Name         string            `msgpack:"name"`
	Owner        string            `msgpack:"owner,omitempty"` // node name, filled in by the hub
	Available    bool              `msgpack:"available"`
	Capabilities map[string]string `msgpack:"capabilities,omitempty"`
	LockedBy     string            `msgpack:"locked-by,omitempty"`
	LockExpires  int64             `msgpack:"lock-expires,omitempty"`
}

// Announce is DEVICE_ANNOUNCE: the full list of a node's devices.
type Announce struct {
	Devices []Device `msgpack:"devices"`
}

// Request is the common shape of a request about one device.
type Request struct {
	Req      uint32            `msgpack:"req"`
	Device   string            `msgpack:"device,omitempty"`
	Lease    uint32            `msgpack:"lease,omitempty"`    // DEVICE_LOCK: seconds
	Settings map[string]string `msgpack:"settings,omitempty"` // DEVICE_CONFIGURE
	Node     string            `msgpack:"node,omitempty"`     // ACL_*, ROUTE_*: the client node's name
	Mode     Mode              `msgpack:"mode,omitempty"`     // ACL_GRANT, ACL_SET
	Route    uint64            `msgpack:"route,omitempty"`    // ROUTE_DELETE, ROUTE_MODIFY, ROUTE_PRIORITY
	Priority int32             `msgpack:"priority,omitempty"` // ROUTE_CREATE, ROUTE_PRIORITY

	// Relay and Caller are set by the hub on a request it relays to the
	// device's node (PROFILE.md §P42): the relay's ID in the hub's own
	// request-ID space, and who asks with their mode on the device. A node
	// takes them only from its hub; the hub replaces whatever a caller put
	// there.
	Relay  uint32  `msgpack:"relay,omitempty"`
	Caller *Caller `msgpack:"caller,omitempty"`
}

// Caller is who a relayed request comes from, as the hub authenticated
// them: node ID (hex), display name and mode on the device.
type Caller struct {
	Node string `msgpack:"node"`
	Name string `msgpack:"name"`
	Mode Mode   `msgpack:"mode"`
}

// Header is what every request and answer of these ops starts with: the
// caller's request ID, and the relay's ID on what a hub relays and its
// node answers.
type Header struct {
	Req   uint32 `msgpack:"req"`
	Relay uint32 `msgpack:"relay,omitempty"`
}

// ACLEntry is one grant.
type ACLEntry struct {
	Device string `msgpack:"device"`
	Node   string `msgpack:"node"`
	Mode   Mode   `msgpack:"mode"`
}

// Route sends a device's data to a client.
type Route struct {
	ID       uint64 `msgpack:"id"`
	Device   string `msgpack:"device"`
	Node     string `msgpack:"node"`
	Priority int32  `msgpack:"priority"`
}

// Reply answers a Request.
type Reply struct {
	Req     uint32     `msgpack:"req"`
	Devices []Device   `msgpack:"devices,omitempty"`
	ACL     []ACLEntry `msgpack:"acl,omitempty"`
	Routes  []Route    `msgpack:"routes,omitempty"`
	Mode    Mode       `msgpack:"mode,omitempty"`
	Lease   uint32     `msgpack:"lease,omitempty"`
	Route   uint64     `msgpack:"route,omitempty"`
	Result  string     `msgpack:"result,omitempty"`
	Relay   uint32     `msgpack:"relay,omitempty"` // a node's answer to a relayed request: the relay's ID
}

// Event is DEVICE_EVENT.
type Event struct {
	Device string            `msgpack:"device"`
	Kind   string            `msgpack:"kind"` // "reading", "state", "availability", "lock"
	Time   int64             `msgpack:"time"`
	Values map[string]string `msgpack:"values,omitempty"`
}

// Marshal encodes any payload of this package.
func Marshal(v any) ([]byte, error) { return msgpack.Marshal(v) }

// MaxEntries bounds every array and map of these payloads (devices of a
// node, settings of a device, entries of an ACL).
const MaxEntries = 4096

// Unmarshal decodes a payload, wrapping failures as wire.ErrMalformed. The
// input is checked first (payload.Check): declared lengths beyond the input
// or over MaxEntries are refused before the library allocates for them.
func Unmarshal(b []byte, v any) error {
	if err := payload.Check(b, MaxEntries); err != nil {
		return err
	}
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %v", wire.ErrMalformed, err)
	}
	return nil
}
