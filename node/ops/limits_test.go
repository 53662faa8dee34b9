package ops

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/myclerk/myclerk-bridge/wire"
)

func TestCheckAnnounce(t *testing.T) {
	many := func(n int) []Device {
		out := make([]Device, n)
		for i := range out {
			out[i] = Device{ID: fmt.Sprintf("d%d", i), Kind: "sensor"}
		}
		return out
	}
	caps := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}
	cases := []struct {
		name string
		a    Announce
		code wire.Code
	}{
		{"none", Announce{}, wire.CodeOK},
		{"the most a node may", Announce{Devices: many(MaxDevicesPerNode)}, wire.CodeOK},
		{"one too many", Announce{Devices: many(MaxDevicesPerNode + 1)}, wire.CodeTooLarge},
		{"ordinary", Announce{Devices: []Device{{ID: "temp-1.a_b", Kind: "sensor", Name: "Wohnzimmer °C", Capabilities: caps(MaxCapabilities)}}}, wire.CodeOK},
		{"too many capabilities", Announce{Devices: []Device{{ID: "t", Capabilities: caps(MaxCapabilities + 1)}}}, wire.CodeTooLarge},
		{"a long capability value", Announce{Devices: []Device{{ID: "t", Capabilities: map[string]string{"k": strings.Repeat("v", MaxCapabilityVal+1)}}}}, wire.CodeTooLarge},
		{"an escape in a value", Announce{Devices: []Device{{ID: "t", Capabilities: map[string]string{"k": "\x1b[2J"}}}}, wire.CodeTooLarge},
		{"no ID", Announce{Devices: []Device{{Kind: "x"}}}, wire.CodeBadRequest},
		{"a slash in the ID", Announce{Devices: []Device{{ID: "a/b"}}}, wire.CodeBadRequest},
		{"dot-dot", Announce{Devices: []Device{{ID: ".."}}}, wire.CodeBadRequest},
		{"a long ID", Announce{Devices: []Device{{ID: strings.Repeat("a", MaxDeviceID+1)}}}, wire.CodeBadRequest},
		{"twice", Announce{Devices: []Device{{ID: "a"}, {ID: "a"}}}, wire.CodeBadRequest},
		{"an escape in the name", Announce{Devices: []Device{{ID: "a", Name: "\x1b]0;pwned\x07"}}}, wire.CodeBadRequest},
		{"a long kind", Announce{Devices: []Device{{ID: "a", Kind: strings.Repeat("k", MaxKind+1)}}}, wire.CodeBadRequest},
	}
	for _, tc := range cases {
		err := CheckAnnounce(&tc.a)
		if got := wire.CodeOf(err); got != tc.code {
			t.Errorf("%s: %v (%v), want %v", tc.name, got, err, tc.code)
		}
		if err != nil && !errors.Is(err, ErrAnnounce) && !errors.Is(err, errBadAnnounce) {
			t.Errorf("%s: %v is neither error", tc.name, err)
		}
	}
}
