package ops

import (
	"fmt"

	"github.com/myclerk/myclerk-bridge/wire"
)

// What one node may announce (PROFILE.md §P37). They keep every answer
// that lists devices within what a client decodes (MaxEntries), and what
// one node can make the hub store small.
const (
	// MaxDevicesPerNode: a Pi with a few sensors, buses and ports has tens.
	MaxDevicesPerNode = 256
	// MaxDevices: all nodes' devices together; DEVICE_LIST must fit one
	// answer a client decodes.
	MaxDevices = MaxEntries
	// MaxCapabilities per device, and the size of each key and value.
	MaxCapabilities  = 64
	MaxCapabilityKey = 64
	MaxCapabilityVal = 256
	// MaxDeviceID, MaxKind and MaxDeviceName bound a device's labels.
	MaxDeviceID   = 64
	MaxKind       = 32
	MaxDeviceName = 128
)

// ErrAnnounce is what an announcement over a limit is answered with.
var ErrAnnounce = &wire.Error{Code: wire.CodeTooLarge, Reason: "announcement over a limit"}

// CheckAnnounce checks a node's announcement against the limits, whole:
// one device over a limit refuses all of it. Device IDs are a node's own
// labels, `[A-Za-z0-9._-]`, unique within the announcement.
func CheckAnnounce(a *Announce) error {
	if len(a.Devices) > MaxDevicesPerNode {
		return fmt.Errorf("%d devices, at most %d per node: %w", len(a.Devices), MaxDevicesPerNode, ErrAnnounce)
	}
	seen := make(map[string]bool, len(a.Devices))
	for i := range a.Devices {
		d := &a.Devices[i]
		switch {
		case d.ID == "" || len(d.ID) > MaxDeviceID || !deviceID(d.ID):
			return fmt.Errorf("device %d: ID %q: want 1 to %d of A-Z a-z 0-9 . _ -: %w", i, printable(d.ID), MaxDeviceID, errBadAnnounce)
		case seen[d.ID]:
			return fmt.Errorf("device %q announced twice: %w", d.ID, errBadAnnounce)
		case len(d.Kind) > MaxKind || !printableASCII(d.Kind):
			return fmt.Errorf("device %q: kind over %d bytes or not printable: %w", d.ID, MaxKind, errBadAnnounce)
		case len(d.Name) > MaxDeviceName || !printableText(d.Name):
			return fmt.Errorf("device %q: name over %d bytes or with control characters: %w", d.ID, MaxDeviceName, errBadAnnounce)
		case len(d.Capabilities) > MaxCapabilities:
			return fmt.Errorf("device %q: %d capabilities, at most %d: %w", d.ID, len(d.Capabilities), MaxCapabilities, ErrAnnounce)
		}
		seen[d.ID] = true
		for k, v := range d.Capabilities {
			if len(k) == 0 || len(k) > MaxCapabilityKey || len(v) > MaxCapabilityVal || !printableASCII(k) || !printableText(v) {
				return fmt.Errorf("device %q: capability %q: keys 1 to %d printable bytes, values at most %d without control characters: %w",
					d.ID, printable(k), MaxCapabilityKey, MaxCapabilityVal, ErrAnnounce)
			}
		}
	}
	return nil
}

var errBadAnnounce = &wire.Error{Code: wire.CodeBadRequest, Reason: "malformed announcement"}

func deviceID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return s != "." && s != ".."
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// printableText is UTF-8 without control characters (escape sequences
// must not reach a terminal or a chat message).
func printableText(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffd {
			return false
		}
	}
	return true
}

func printable(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", s)
}
