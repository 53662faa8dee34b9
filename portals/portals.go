// Package portals describes the family's devices and services to Matrix:
// a portal room per device (name, topic, avatar), a ghost user per device,
// device events as notices, and the portal's members and power levels
// following the hub's access control list. It only builds values for
// bridgev2; the bridge package queues them.
package portals

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"html"
	"image"
	"image/color"
	"image/png"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"

	"github.com/myclerk/myclerk-bridge/bridge/frameevent"
	"github.com/myclerk/myclerk-bridge/node/ops"
)

// Power levels in portal rooms. Sending MyClerk frames needs
// frameevent.PowerLevel (50): the device's ghost and members whose ACL
// mode lets them write have it; readers only watch.
const (
	LevelReader = 0
	LevelWriter = frameevent.PowerLevel
	LevelGhost  = 100
)

// Key is the portal of a device: one room per device, shared by every
// member who may see it.
func Key(device string) networkid.PortalKey {
	return networkid.PortalKey{ID: networkid.PortalID(device)}
}

// Ghost is the ghost user of a device.
func Ghost(device string) networkid.UserID { return networkid.UserID("dev_" + device) }

// DeviceOfGhost returns the device of a ghost user ID, or "".
func DeviceOfGhost(u networkid.UserID) string {
	d, ok := strings.CutPrefix(string(u), "dev_")
	if !ok {
		return ""
	}
	return d
}

// Member is a family member's user ID in bridgev2 terms.
func Member(name string) networkid.UserID { return networkid.UserID("member_" + name) }

// Name is a device's room and ghost name.
func Name(d ops.Device) string {
	if d.Name != "" {
		return d.Name
	}
	return d.ID
}

// Topic describes a device in one line.
func Topic(d ops.Device) string {
	state := "online"
	if !d.Available {
		state = "offline"
	}
	parts := []string{fmt.Sprintf("%s %s on %s (%s)", kindName(d.Kind), d.ID, d.Owner, state)}
	if keys := slices.Sorted(maps.Keys(d.Capabilities)); len(keys) > 0 {
		kv := make([]string, 0, len(keys))
		for _, k := range keys {
			kv = append(kv, k+"="+d.Capabilities[k])
		}
		parts = append(parts, strings.Join(kv, ", "))
	}
	return strings.Join(parts, " · ")
}

func kindName(k string) string {
	switch k {
	case "":
		return "Device"
	case "gpu":
		return "GPU service"
	}
	r, n := utf8.DecodeRuneInString(k)
	return string(unicode.ToUpper(r)) + k[n:]
}

// ModeLevel is the power level a member with mode gets in a portal.
func ModeLevel(m ops.Mode) int {
	if m.Allows(false, true) {
		return LevelWriter
	}
	return LevelReader
}

// ChatInfo is the portal of d as member login sees it: the device's
// ghost, and the member with the level its ACL mode gives (a member whose
// mode is none leaves: a revoke kicks).
func ChatInfo(d ops.Device, login networkid.UserLoginID, mode ops.Mode) *bridgev2.ChatInfo {
	name, topic := Name(d), Topic(d)
	ghostLevel := LevelGhost
	members := &bridgev2.ChatMemberList{
		MemberMap: bridgev2.ChatMemberMap{}.
			Set(bridgev2.ChatMember{EventSender: bridgev2.EventSender{Sender: Ghost(d.ID)}, Membership: event.MembershipJoin, PowerLevel: &ghostLevel, UserInfo: UserInfo(d)}).
			Set(memberOf(login, mode)),
		PowerLevels: PowerLevels(),
	}
	roomType := database.RoomTypeDefault
	return &bridgev2.ChatInfo{Name: &name, Topic: &topic, Avatar: Avatar(d.Kind), Members: members, Type: &roomType}
}

// PowerLevels make frame events need LevelWriter in portals.
func PowerLevels() *bridgev2.PowerLevelOverrides {
	return &bridgev2.PowerLevelOverrides{Events: map[event.Type]int{
		{Type: frameevent.EventType, Class: event.MessageEventType}: frameevent.PowerLevel,
	}}
}

// MemberChange is the membership change of one member in a portal (for
// ACL grants and revokes between syncs).
func MemberChange(login networkid.UserLoginID, mode ops.Mode) *bridgev2.ChatMemberList {
	return &bridgev2.ChatMemberList{MemberMap: bridgev2.ChatMemberMap{}.Set(memberOf(login, mode))}
}

// memberOf is the login's user in a portal: joined with the level its
// mode gives, or gone when the mode is none.
func memberOf(login networkid.UserLoginID, mode ops.Mode) bridgev2.ChatMember {
	level := ModeLevel(mode)
	membership := event.MembershipJoin
	if mode == ops.ModeNone {
		membership = event.MembershipLeave
	}
	return bridgev2.ChatMember{
		EventSender: bridgev2.EventSender{IsFromMe: true, SenderLogin: login},
		Membership:  membership, PowerLevel: &level,
	}
}

// UserInfo is the ghost user of d.
func UserInfo(d ops.Device) *bridgev2.UserInfo {
	name := Name(d)
	isBot := true
	return &bridgev2.UserInfo{Name: &name, IsBot: &isBot, Identifiers: []string{"myclerk:" + d.ID}, Avatar: Avatar(d.Kind)}
}

// Avatar is a generated picture for a kind of device: a colored disc, one
// color per kind, so rooms of one kind look alike in a room list.
func Avatar(kind string) *bridgev2.Avatar {
	return &bridgev2.Avatar{
		ID:  networkid.AvatarID("myclerk-kind-v1-" + kind),
		Get: func(context.Context) ([]byte, error) { return AvatarPNG(kind) },
	}
}

// AvatarPNG draws the avatar of kind: 64×64 pixels.
func AvatarPNG(kind string) ([]byte, error) {
	const size = 64
	h := fnv.New32a()
	h.Write([]byte(kind))
	v := h.Sum32()
	fg := color.RGBA{R: 64 + uint8(v)%160, G: 64 + uint8(v>>8)%160, B: 64 + uint8(v>>16)%160, A: 255}
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			dx, dy := x-size/2, y-size/2
			switch r2 := dx*dx + dy*dy; {
			case r2 <= 12*12:
				img.Set(x, y, color.White)
			case r2 <= 30*30:
				img.Set(x, y, fg)
			}
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Notice renders a device event as a notice: a line of text and the same
// as HTML, values in key order.
func Notice(e ops.Event) *event.MessageEventContent {
	keys := slices.Sorted(maps.Keys(e.Values))
	var text, htm strings.Builder
	fmt.Fprintf(&text, "%s: %s", e.Device, e.Kind)
	fmt.Fprintf(&htm, "<b>%s</b>: %s", html.EscapeString(e.Device), html.EscapeString(e.Kind))
	for i, k := range keys {
		sep := ", "
		if i == 0 {
			sep = " "
		}
		fmt.Fprintf(&text, "%s%s=%s", sep, k, e.Values[k])
		fmt.Fprintf(&htm, "%s<code>%s</code>=<code>%s</code>", sep, html.EscapeString(k), html.EscapeString(e.Values[k]))
	}
	if e.Time > 0 {
		ts := time.Unix(e.Time, 0).UTC().Format(time.RFC3339)
		fmt.Fprintf(&text, " (%s)", ts)
		fmt.Fprintf(&htm, " <i>(%s)</i>", ts)
	}
	return &event.MessageEventContent{MsgType: event.MsgNotice, Body: text.String(), Format: event.FormatHTML, FormattedBody: htm.String()}
}

// Availability renders a device coming or going.
func Availability(d ops.Device) *event.MessageEventContent {
	state := "is online again"
	if !d.Available {
		state = "went offline"
	}
	body := fmt.Sprintf("%s %s.", Name(d), state)
	return &event.MessageEventContent{MsgType: event.MsgNotice, Body: body}
}
