package commands

import (
	"testing"

	"github.com/myclerk/myclerk-bridge/wire"
)

// TestTableHelp: chat help comes from the op table, in chat's form.
func TestTableHelp(t *testing.T) {
	cases := []struct {
		op               wire.Op
		note             string
		wantArgs, wantDs string
	}{
		{wire.OpDeviceLock, "", "<device> [seconds]", "Exclusive use, a lease (default 300 s, at most 3600). Needs read-write access."},
		{wire.OpDeviceConfigure, "Changes it.", "<device> <key=value>...", "Relayed to the device's node. Needs write access. Changes it."},
		{wire.OpACLGrant, "", "<device> <member> <mode>", "Give a member access; MODE is none, read-only, write-only, read-write or exclusive. For the device's owner and the admins."},
		{wire.OpDeviceList, "", "", "The devices you may see."},
	}
	for _, tc := range cases {
		args, desc := TableHelp(tc.op, tc.note)
		if args != tc.wantArgs || desc != tc.wantDs {
			t.Errorf("%v: %q %q, want %q %q", tc.op, args, desc, tc.wantArgs, tc.wantDs)
		}
	}
}
