package portals

import (
	"bytes"
	"context"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"

	"github.com/myclerk/myclerk-bridge/bridge/frameevent"
	"github.com/myclerk/myclerk-bridge/node/ops"
)

func TestGhostRoundTrip(t *testing.T) {
	for _, dev := range []string{"lamp", "sensor-1", "dev_x", "a:b", "émoji-🙂"} {
		if got := Key(dev).ID; got != networkid.PortalID(dev) {
			t.Errorf("Key(%q).ID = %q", dev, got)
		}
		if got := Key(dev).Receiver; got != "" {
			t.Errorf("Key(%q).Receiver = %q, want shared portals", dev, got)
		}
		g := Ghost(dev)
		if got := DeviceOfGhost(g); got != dev {
			t.Errorf("DeviceOfGhost(Ghost(%q)) = %q", dev, got)
		}
		if DeviceOfGhost(Member(dev)) != "" {
			t.Errorf("DeviceOfGhost(Member(%q)) = %q, want \"\"", dev, DeviceOfGhost(Member(dev)))
		}
	}
	for _, u := range []networkid.UserID{"", "lamp", "member_lamp", "DEV_lamp", "xdev_lamp"} {
		if got := DeviceOfGhost(u); got != "" {
			t.Errorf("DeviceOfGhost(%q) = %q, want \"\"", u, got)
		}
	}
}

func TestTopic(t *testing.T) {
	tests := []struct {
		name string
		d    ops.Device
		want string
	}{
		{"online sensor, capabilities sorted",
			ops.Device{ID: "t1", Kind: "sensor", Owner: "pi", Available: true, Capabilities: map[string]string{"unit": "C", "max": "50", "min": "-10"}},
			"Sensor t1 on pi (online) · max=50, min=-10, unit=C"},
		{"offline serial",
			ops.Device{ID: "tty0", Kind: "serial", Owner: "pi", Capabilities: map[string]string{"baud": "9600"}},
			"Serial tty0 on pi (offline) · baud=9600"},
		{"no capabilities", ops.Device{ID: "g", Kind: "gpio", Owner: "pi", Available: true}, "Gpio g on pi (online)"},
		{"empty capabilities", ops.Device{ID: "g", Kind: "gpio", Owner: "pi", Available: true, Capabilities: map[string]string{}}, "Gpio g on pi (online)"},
		{"no kind", ops.Device{ID: "x", Owner: "pc"}, "Device x on pc (offline)"},
		{"gpu", ops.Device{ID: "cuda0", Kind: "gpu", Owner: "box", Available: true}, "GPU service cuda0 on box (online)"},
		{"non-ASCII kind", ops.Device{ID: "e", Kind: "éclairage", Owner: "pi", Available: true}, "Éclairage e on pi (online)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Topic(tt.d); got != tt.want {
				t.Errorf("Topic = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestModeLevel(t *testing.T) {
	tests := []struct {
		mode ops.Mode
		want int
	}{
		{ops.ModeNone, LevelReader},
		{ops.ModeRead, LevelReader},
		{ops.ModeWrite, frameevent.PowerLevel},
		{ops.ModeReadWrite, frameevent.PowerLevel},
		{ops.ModeExclusive, frameevent.PowerLevel},
	}
	for _, tt := range tests {
		if got := ModeLevel(tt.mode); got != tt.want {
			t.Errorf("ModeLevel(%v) = %d, want %d", tt.mode, got, tt.want)
		}
	}
	if LevelReader != 0 || LevelWriter != 50 || LevelGhost != 100 {
		t.Errorf("levels = %d/%d/%d, want 0/50/100", LevelReader, LevelWriter, LevelGhost)
	}
}

func TestChatInfo(t *testing.T) {
	d := ops.Device{ID: "lamp", Kind: "gpio", Name: "Hall lamp", Owner: "pi", Available: true}
	const login = networkid.UserLoginID("alice")
	tests := []struct {
		mode           ops.Mode
		wantMembership event.Membership
		wantLevel      int
	}{
		{ops.ModeNone, event.MembershipLeave, 0},
		{ops.ModeRead, event.MembershipJoin, 0},
		{ops.ModeWrite, event.MembershipJoin, 50},
		{ops.ModeReadWrite, event.MembershipJoin, 50},
		{ops.ModeExclusive, event.MembershipJoin, 50},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			ci := ChatInfo(d, login, tt.mode)
			if ci.Name == nil || *ci.Name != "Hall lamp" {
				t.Errorf("name = %v", ci.Name)
			}
			if ci.Topic == nil || *ci.Topic != Topic(d) {
				t.Errorf("topic = %v, want %q", ci.Topic, Topic(d))
			}
			if ci.Avatar == nil || ci.Avatar.ID != Avatar("gpio").ID {
				t.Errorf("avatar = %+v", ci.Avatar)
			}
			if ci.Members == nil || len(ci.Members.MemberMap) != 2 {
				t.Fatalf("members = %+v, want the ghost and the member", ci.Members)
			}
			ghost, ok := ci.Members.MemberMap[Ghost("lamp")]
			if !ok || ghost.Membership != event.MembershipJoin || ghost.PowerLevel == nil || *ghost.PowerLevel != LevelGhost {
				t.Errorf("ghost = %+v", ghost)
			}
			if ghost.UserInfo == nil || ghost.UserInfo.Name == nil || *ghost.UserInfo.Name != "Hall lamp" ||
				ghost.UserInfo.IsBot == nil || !*ghost.UserInfo.IsBot {
				t.Errorf("ghost user info = %+v", ghost.UserInfo)
			}
			var me *bridgev2.ChatMember
			for _, m := range ci.Members.MemberMap {
				if m.IsFromMe {
					me = &m
				}
			}
			if me == nil {
				t.Fatal("no member from the login")
			}
			if me.SenderLogin != login || me.Membership != tt.wantMembership || me.PowerLevel == nil || *me.PowerLevel != tt.wantLevel {
				t.Errorf("member = login %q, %s, level %v; want %q, %s, %d", me.SenderLogin, me.Membership, deref(me.PowerLevel), login, tt.wantMembership, tt.wantLevel)
			}
			pl := ci.Members.PowerLevels
			frame := event.Type{Type: frameevent.EventType, Class: event.MessageEventType}
			if pl == nil || pl.Events[frame] != 50 {
				t.Errorf("power levels = %+v, want %s at 50", pl, frameevent.EventType)
			}

			// MemberChange agrees with ChatInfo on the member.
			mc := MemberChange(login, tt.mode)
			if len(mc.MemberMap) != 1 {
				t.Fatalf("MemberChange = %+v", mc.MemberMap)
			}
			for _, m := range mc.MemberMap {
				if !m.IsFromMe || m.SenderLogin != login || m.Membership != tt.wantMembership || deref(m.PowerLevel) != tt.wantLevel {
					t.Errorf("MemberChange member = %+v", m)
				}
			}
		})
	}
}

func deref(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

func TestNotice(t *testing.T) {
	tests := []struct {
		name       string
		e          ops.Event
		wantBody   string
		wantHTMLIn []string
		notHTML    []string
	}{
		{
			name:     "values in key order with time",
			e:        ops.Event{Device: "t1", Kind: "reading", Time: 1700000000, Values: map[string]string{"z": "3", "a": "1", "m": "2"}},
			wantBody: "t1: reading a=1, m=2, z=3 (2023-11-14T22:13:20Z)",
			wantHTMLIn: []string{"<b>t1</b>: reading <code>a</code>=<code>1</code>, <code>m</code>=<code>2</code>, <code>z</code>=<code>3</code>",
				"<i>(2023-11-14T22:13:20Z)</i>"},
		},
		{
			name:       "HTML escaped",
			e:          ops.Event{Device: "<b>dev</b>", Kind: "state&", Time: 1, Values: map[string]string{"v": "<script>", "<k>": "x"}},
			wantBody:   "<b>dev</b>: state& <k>=x, v=<script> (1970-01-01T00:00:01Z)",
			wantHTMLIn: []string{"<b>&lt;b&gt;dev&lt;/b&gt;</b>: state&amp;", "<code>&lt;k&gt;</code>=<code>x</code>", "<code>v</code>=<code>&lt;script&gt;</code>"},
			notHTML:    []string{"<script>", "<k>", "<b>dev"},
		},
		{
			name:     "no values, no time",
			e:        ops.Event{Device: "d", Kind: "lock"},
			wantBody: "d: lock",
			notHTML:  []string{"(", "<code>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Notice(tt.e)
			if c.MsgType != event.MsgNotice || c.Format != event.FormatHTML {
				t.Errorf("msgtype/format = %s/%s", c.MsgType, c.Format)
			}
			if c.Body != tt.wantBody {
				t.Errorf("body = %q, want %q", c.Body, tt.wantBody)
			}
			for _, w := range tt.wantHTMLIn {
				if !strings.Contains(c.FormattedBody, w) {
					t.Errorf("formatted body %q lacks %q", c.FormattedBody, w)
				}
			}
			for _, w := range tt.notHTML {
				if strings.Contains(c.FormattedBody, w) {
					t.Errorf("formatted body %q contains %q", c.FormattedBody, w)
				}
			}
		})
	}
}

func TestAvailability(t *testing.T) {
	for _, tt := range []struct {
		d    ops.Device
		want string
	}{
		{ops.Device{ID: "t1", Available: true}, "t1 is online again."},
		{ops.Device{ID: "t1", Name: "Thermo"}, "Thermo went offline."},
	} {
		if got := Availability(tt.d); got.Body != tt.want || got.MsgType != event.MsgNotice {
			t.Errorf("Availability(%+v) = %q (%s), want %q", tt.d, got.Body, got.MsgType, tt.want)
		}
	}
}

func TestAvatarPNG(t *testing.T) {
	kinds := []string{"", "sensor", "serial", "gpio", "gpu", "camera"}
	seen := map[string]string{}
	for _, k := range kinds {
		b, err := AvatarPNG(k)
		if err != nil {
			t.Fatalf("AvatarPNG(%q): %v", k, err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("AvatarPNG(%q) is no PNG: %v", k, err)
		}
		if r := img.Bounds(); r.Dx() != 64 || r.Dy() != 64 {
			t.Errorf("AvatarPNG(%q) is %v, want 64x64", k, r)
		}
		if c := color.RGBAModel.Convert(img.At(32, 32)).(color.RGBA); c != (color.RGBA{255, 255, 255, 255}) {
			t.Errorf("AvatarPNG(%q) center = %v, want white", k, c)
		}
		if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
			t.Errorf("AvatarPNG(%q) corner is not transparent", k)
		}
		again, _ := AvatarPNG(k)
		if !bytes.Equal(b, again) {
			t.Errorf("AvatarPNG(%q) differs between calls", k)
		}
		if other, ok := seen[string(b)]; ok {
			t.Errorf("AvatarPNG(%q) = AvatarPNG(%q)", k, other)
		}
		seen[string(b)] = k

		// Avatar serves the same picture under a per-kind ID.
		a := Avatar(k)
		got, err := a.Get(context.Background())
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("Avatar(%q).Get = %d bytes, %v", k, len(got), err)
		}
		if a.ID != networkid.AvatarID("myclerk-kind-v1-"+k) {
			t.Errorf("Avatar(%q).ID = %q", k, a.ID)
		}
	}
}
