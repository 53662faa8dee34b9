// Package commands is the bridge's chat interface: the commands a family
// member sends the bot in the management room (or, with the command
// prefix, in a portal), answered with formatted notices. Each command
// acts through the member's own session to the hub, so the hub's ACL
// decides what a member may do; the bridge's permission levels decide
// who may be a member and who administers the family.
package commands

import (
	"context"
	"errors"
	"fmt"
	"html"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	bcommands "maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/id"

	"github.com/myclerk/myclerk-bridge/bridge"
	"github.com/myclerk/myclerk-bridge/node/client"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/node/optable"
	"github.com/myclerk/myclerk-bridge/node/runtime"
	"github.com/myclerk/myclerk-bridge/node/store"
	"github.com/myclerk/myclerk-bridge/wire"
)

// Family is the help section of the family's commands.
var Family = bcommands.HelpSection{Name: "Family", Order: 15}

// callTimeout bounds one command's requests to the hub.
const callTimeout = 30 * time.Second

// Register adds the family commands to the bridge's processor.
func Register(b *bridge.Bridge, proc *bcommands.Processor) {
	c := &cmds{b: b}
	member := func(name, args, desc string, run func(*bcommands.Event, *bridge.Member, *client.Client), aliases ...string) *bcommands.FullHandler {
		return &bcommands.FullHandler{
			Name: name, Aliases: aliases,
			Help:                    bcommands.HelpMeta{Section: Family, Description: desc, Args: args},
			RequiresLoginPermission: true,
			Func:                    func(ce *bcommands.Event) { c.asMember(ce, run) },
		}
	}
	admin := func(name, args, desc string, run func(*bcommands.Event)) *bcommands.FullHandler {
		return &bcommands.FullHandler{
			Name: name, RequiresAdmin: true,
			Help: bcommands.HelpMeta{Section: Family, Description: desc, Args: args},
			Func: run,
		}
	}
	// fromTable is a member command for one op: its arguments and help come
	// from the op table, with a note of the chat's own.
	fromTable := func(name string, op wire.Op, note string, run func(*bcommands.Event, *bridge.Member, *client.Client), aliases ...string) *bcommands.FullHandler {
		args, desc := TableHelp(op, note)
		return member(name, args, desc, run, aliases...)
	}
	proc.AddHandlers(
		member("join", "", "Join the family as yourself (commands below do it for you).", c.join),
		member("family", "", "Show the family, its hub and your membership.", c.family),
		fromTable("devices", wire.OpDeviceList, "Services too.", c.devices, "ls"),
		fromTable("info", wire.OpDeviceInfo, "", c.info),
		fromTable("caps", wire.OpDeviceCapabilities, "", c.info, "capabilities"),
		fromTable("lock", wire.OpDeviceLock, "", c.lock),
		fromTable("unlock", wire.OpDeviceUnlock, "", c.unlock),
		fromTable("subscribe", wire.OpDeviceSubscribe, "They appear as notices in its portal room.", c.subscribe),
		fromTable("unsubscribe", wire.OpDeviceUnsubscribe, "Until the bridge reconnects you.", c.unsubscribe),
		fromTable("configure", wire.OpDeviceConfigure, "Changes the device's settings.", c.configure, "set"),
		fromTable("routes", wire.OpRouteList, "Who gets a device's data.", c.routes),
		member("route", "add <device> <member> [priority] | del <id> | priority <id> <priority>", "Change routes (device owners and admins).", c.route),
		fromTable("acl", wire.OpACLGet, "", c.acl),
		fromTable("grant", wire.OpACLGrant, "", c.grant),
		fromTable("deny", wire.OpACLRevoke, "They fall back to the hub's default mode.", c.deny, "ungrant"),
		member("sessions", "", "Your session to the hub: tier, key epoch, counters.", c.sessions),
		admin("nodes", "", "List the family's nodes with their 30-day availability (Core above 95 %).", c.nodes),
		admin("pair", "[node|client] [name]", "Make a one-time pairing code for a new node or client; with a name, for that name only (an admin's name needs one).", c.pair),
		admin("remove-node", "<name or node ID>", "Revoke a node: it can no longer open sessions, and its live ones end.", c.removeNode),
		admin("federation", "invite <label> <@bot:server> | accept <label> <room> | verify <label> <code> | grant <label> <device> <mode> | deny <label> <device> | revoke <label> | list",
			"Federate with another family through Matrix: meet in a room, compare a code, grant devices.", c.federation),
		member("remote", "<label> devices | info <device> | lock <device> [seconds] | unlock <device> | configure <device> <key=value>... | subscribe <device>",
			"Use a federated family's devices (what it granted this family).", c.remote),
	)
}

// TableHelp is the chat help of op from the op table (node/optable):
// its arguments in chat's form ("<device> [seconds]") and its help as a
// sentence with what it needs, then note.
func TableHelp(op wire.Op, note string) (args, desc string) {
	e, _ := optable.Lookup(op)
	var out []string
	for _, a := range strings.Fields(e.Args) {
		switch {
		case strings.HasPrefix(a, "["):
			out = append(out, strings.ToLower(a))
		case strings.HasSuffix(a, "..."):
			out = append(out, "<"+strings.ToLower(strings.TrimSuffix(a, "..."))+">...")
		default:
			out = append(out, "<"+strings.ToLower(a)+">")
		}
	}
	desc = e.Help
	if desc != "" {
		desc = strings.ToUpper(desc[:1]) + desc[1:] + "."
	}
	switch e.Need {
	case optable.NeedNothing:
	case optable.NeedAdmin:
		desc += " For the device's owner and the admins."
	default:
		desc += " Needs " + e.Need.String() + " access."
	}
	if note != "" {
		desc += " " + note
	}
	return strings.Join(out, " "), desc
}

type cmds struct {
	b *bridge.Bridge
}

// asMember runs a command as the sender's family membership, joining the
// family first if the sender may.
// Requests get callTimeout each; the reply uses the command's own context,
// so a request that timed out is still answered.
func (c *cmds) asMember(ce *bcommands.Event, run func(*bcommands.Event, *bridge.Member, *client.Client)) {
	ctx, cancel := context.WithTimeout(ce.Ctx, callTimeout)
	defer cancel()
	m, err := c.b.Network.Member(ctx, ce.User, true)
	if err != nil {
		replyErr(ce, err)
		return
	}
	cli, err := m.WaitClient(ctx)
	if err != nil {
		replyErr(ce, err)
		return
	}
	run(ce, m, cli)
}

func replyErr(ce *bcommands.Event, err error) {
	var we *wire.Error
	if errors.As(err, &we) {
		ce.Reply("**%s**: %s", we.Code, we.Reason)
		return
	}
	ce.Reply("Failed: %s", err)
}

func usage(ce *bcommands.Event) {
	h, ok := ce.Handler.(bcommands.HelpfulHandler)
	if !ok {
		ce.Reply("Bad arguments; `$cmdprefix help` lists the commands.")
		return
	}
	meta := h.GetHelp()
	ce.Reply("Usage: `$cmdprefix %s %s` — %s", meta.Command, meta.Args, meta.Description)
}

// call asks the hub, replying with the error when it fails.
func call(ce *bcommands.Event, cli *client.Client, op wire.Op, req ops.Request) (ops.Reply, bool) {
	ctx, cancel := context.WithTimeout(ce.Ctx, callTimeout)
	defer cancel()
	r, err := cli.Call(ctx, op, req)
	if err != nil {
		replyErr(ce, err)
		return r, false
	}
	return r, true
}

func (c *cmds) join(ce *bcommands.Event, m *bridge.Member, _ *client.Client) {
	ce.Reply("You are a member of family `%s` as `%s`.", c.b.Hub.Root.Family(), m.Name())
}

func (c *cmds) family(ce *bcommands.Event, m *bridge.Member, _ *client.Client) {
	h := c.b.Hub
	nodes, err := h.Store.Nodes.List(ce.Ctx)
	if err != nil {
		replyErr(ce, err)
		return
	}
	active := 0
	for _, n := range nodes {
		if !n.Revoked() {
			active++
		}
	}
	ce.Reply("Family `%s`, hub **%s**: %d members and nodes, %d devices.\nYou are `%s` (node `%s`).",
		h.Root.Family(), h.Config().Name, active, len(h.Registry.Devices()), m.Name(), m.NodeID())
}

func (c *cmds) devices(ce *bcommands.Event, _ *bridge.Member, cli *client.Client) {
	r, ok := call(ce, cli, wire.OpDeviceList, ops.Request{})
	if !ok {
		return
	}
	if len(r.Devices) == 0 {
		ce.Reply("You may not use any device yet. Nodes announce theirs when they connect; an admin can `grant` you access.")
		return
	}
	rows := make([][]string, 0, len(r.Devices))
	for _, d := range r.Devices {
		rows = append(rows, []string{d.ID, d.Name, d.Kind, d.Owner, onOff(d.Available), lockText(d)})
	}
	replyTable(ce, fmt.Sprintf("%d devices", len(r.Devices)), []string{"Device", "Name", "Kind", "Node", "State", "Lock"}, rows)
}

func onOff(b bool) string {
	if b {
		return "online"
	}
	return "offline"
}

func lockText(d ops.Device) string {
	if d.LockedBy == "" {
		return ""
	}
	return fmt.Sprintf("%s until %s", d.LockedBy, time.Unix(d.LockExpires, 0).UTC().Format("15:04:05Z"))
}

func (c *cmds) info(ce *bcommands.Event, _ *bridge.Member, cli *client.Client) {
	if len(ce.Args) != 1 {
		usage(ce)
		return
	}
	op := wire.OpDeviceInfo
	if ce.Command == "caps" || ce.Command == "capabilities" {
		op = wire.OpDeviceCapabilities
	}
	r, ok := call(ce, cli, op, ops.Request{Device: ce.Args[0]})
	if !ok || len(r.Devices) == 0 {
		return
	}
	d := r.Devices[0]
	rows := [][]string{{"Device", d.ID}, {"Name", d.Name}, {"Kind", d.Kind}, {"Node", d.Owner}, {"State", onOff(d.Available)}, {"Your access", r.Mode.String()}}
	if l := lockText(d); l != "" {
		rows = append(rows, []string{"Locked by", l})
	}
	for _, k := range slices.Sorted(maps.Keys(d.Capabilities)) {
		rows = append(rows, []string{k, d.Capabilities[k]})
	}
	replyTable(ce, d.ID, []string{"", ""}, rows)
}

func (c *cmds) lock(ce *bcommands.Event, _ *bridge.Member, cli *client.Client) {
	if len(ce.Args) < 1 || len(ce.Args) > 2 {
		usage(ce)
		return
	}
	req := ops.Request{Device: ce.Args[0]}
	if len(ce.Args) == 2 {
		n, err := strconv.ParseUint(ce.Args[1], 10, 32)
		if err != nil || n == 0 {
			ce.Reply("`%s` is not a number of seconds.", ce.Args[1])
			return
		}
		req.Lease = uint32(n)
	}
	r, ok := call(ce, cli, wire.OpDeviceLock, req)
	if ok {
		ce.Reply("Locked `%s` for %d s. Others may read it but not change it until you `unlock` it or the lease ends.", req.Device, r.Lease)
	}
}

func (c *cmds) unlock(ce *bcommands.Event, _ *bridge.Member, cli *client.Client) {
	if len(ce.Args) != 1 {
		usage(ce)
		return
	}
	if _, ok := call(ce, cli, wire.OpDeviceUnlock, ops.Request{Device: ce.Args[0]}); ok {
		ce.Reply("Unlocked `%s`.", ce.Args[0])
	}
}

func (c *cmds) subscribe(ce *bcommands.Event, m *bridge.Member, cli *client.Client) {
	if len(ce.Args) != 1 {
		usage(ce)
		return
	}
	if _, ok := call(ce, cli, wire.OpDeviceSubscribe, ops.Request{Device: ce.Args[0]}); ok {
		m.Resync(ce.Ctx)
		ce.Reply("Subscribed to `%s`: its events appear in its portal room.", ce.Args[0])
	}
}

func (c *cmds) unsubscribe(ce *bcommands.Event, _ *bridge.Member, cli *client.Client) {
	if len(ce.Args) != 1 {
		usage(ce)
		return
	}
	if _, ok := call(ce, cli, wire.OpDeviceUnsubscribe, ops.Request{Device: ce.Args[0]}); ok {
		ce.Reply("Unsubscribed from `%s` until the bridge reconnects you.", ce.Args[0])
	}
}

func (c *cmds) configure(ce *bcommands.Event, _ *bridge.Member, cli *client.Client) {
	if len(ce.Args) < 2 {
		usage(ce)
		return
	}
	settings, err := bridge.ParseSettings(ce.Args[1:])
	if err != nil {
		ce.Reply("%s", err)
		return
	}
	r, ok := call(ce, cli, wire.OpDeviceConfigure, ops.Request{Device: ce.Args[0], Settings: settings})
	if !ok {
		return
	}
	var rows [][]string
	for _, d := range r.Devices {
		for _, k := range slices.Sorted(maps.Keys(d.Capabilities)) {
			rows = append(rows, []string{k, d.Capabilities[k]})
		}
	}
	replyTable(ce, "Configured "+ce.Args[0], []string{"Setting", "Value"}, rows)
}

func (c *cmds) routes(ce *bcommands.Event, _ *bridge.Member, cli *client.Client) {
	req := ops.Request{}
	if len(ce.Args) == 1 {
		req.Device = ce.Args[0]
	} else if len(ce.Args) > 1 {
		usage(ce)
		return
	}
	r, ok := call(ce, cli, wire.OpRouteList, req)
	if !ok {
		return
	}
	if len(r.Routes) == 0 {
		ce.Reply("No routes.")
		return
	}
	rows := make([][]string, 0, len(r.Routes))
	for _, rt := range r.Routes {
		rows = append(rows, []string{strconv.FormatUint(rt.ID, 10), rt.Device, rt.Node, strconv.Itoa(int(rt.Priority))})
	}
	replyTable(ce, "Routes", []string{"ID", "Device", "To", "Priority"}, rows)
}

func (c *cmds) route(ce *bcommands.Event, _ *bridge.Member, cli *client.Client) {
	a := ce.Args
	switch {
	case len(a) >= 3 && len(a) <= 4 && a[0] == "add":
		req := ops.Request{Device: a[1], Node: a[2]}
		if len(a) == 4 {
			p, err := strconv.ParseInt(a[3], 10, 32)
			if err != nil {
				ce.Reply("`%s` is not a priority (an integer).", a[3])
				return
			}
			req.Priority = int32(p)
		}
		if r, ok := call(ce, cli, wire.OpRouteCreate, req); ok {
			ce.Reply("Route %d: `%s` → `%s`.", r.Route, a[1], a[2])
		}
	case len(a) == 2 && a[0] == "del":
		id, err := strconv.ParseUint(a[1], 10, 64)
		if err != nil {
			ce.Reply("`%s` is not a route ID.", a[1])
			return
		}
		if _, ok := call(ce, cli, wire.OpRouteDelete, ops.Request{Route: id}); ok {
			ce.Reply("Deleted route %d.", id)
		}
	case len(a) == 3 && a[0] == "priority":
		id, err1 := strconv.ParseUint(a[1], 10, 64)
		p, err2 := strconv.ParseInt(a[2], 10, 32)
		if err1 != nil || err2 != nil {
			usage(ce)
			return
		}
		if _, ok := call(ce, cli, wire.OpRoutePriority, ops.Request{Route: id, Priority: int32(p)}); ok {
			ce.Reply("Route %d now has priority %d.", id, p)
		}
	default:
		usage(ce)
	}
}

func (c *cmds) acl(ce *bcommands.Event, _ *bridge.Member, cli *client.Client) {
	if len(ce.Args) != 1 {
		usage(ce)
		return
	}
	r, ok := call(ce, cli, wire.OpACLGet, ops.Request{Device: ce.Args[0]})
	if !ok {
		return
	}
	if len(r.ACL) == 0 {
		ce.Reply("No grants on `%s`: members have the hub's default mode.", ce.Args[0])
		return
	}
	rows := make([][]string, 0, len(r.ACL))
	for _, e := range r.ACL {
		rows = append(rows, []string{e.Node, e.Mode.String()})
	}
	replyTable(ce, "Access to "+ce.Args[0], []string{"Member or node", "Mode"}, rows)
}

func (c *cmds) grant(ce *bcommands.Event, _ *bridge.Member, cli *client.Client) {
	if len(ce.Args) != 3 {
		usage(ce)
		return
	}
	mode, err := ops.ParseMode(ce.Args[2])
	if err != nil {
		ce.Reply("`%s` is not a mode: none, read-only, write-only, read-write or exclusive.", ce.Args[2])
		return
	}
	if _, ok := call(ce, cli, wire.OpACLGrant, ops.Request{Device: ce.Args[0], Node: ce.Args[1], Mode: mode}); ok {
		c.resyncAll(ce.Ctx)
		ce.Reply("`%s` now has %s access to `%s`.", ce.Args[1], mode, ce.Args[0])
	}
}

func (c *cmds) deny(ce *bcommands.Event, _ *bridge.Member, cli *client.Client) {
	if len(ce.Args) != 2 {
		usage(ce)
		return
	}
	if _, ok := call(ce, cli, wire.OpACLRevoke, ops.Request{Device: ce.Args[0], Node: ce.Args[1]}); ok {
		c.resyncAll(ce.Ctx)
		ce.Reply("Took `%s`'s grant on `%s` away.", ce.Args[1], ce.Args[0])
	}
}

// resyncAll brings every member's portals up to date after an ACL change,
// so a grant invites and a revoke kicks at once, not at the next sync.
func (c *cmds) resyncAll(ctx context.Context) {
	for _, m := range c.b.Network.Members() {
		go m.Resync(context.WithoutCancel(ctx))
	}
}

func (c *cmds) sessions(ce *bcommands.Event, m *bridge.Member, cli *client.Client) {
	st := cli.Session().Status()
	rows := [][]string{
		{"Member", m.Name()},
		{"Session ID", fmt.Sprint(st.SessionID)},
		{"Tier", fmt.Sprint(st.Tier)},
		{"Requested tier", fmt.Sprint(st.RequestedTier)},
		{"Capabilities", fmt.Sprint(st.Capabilities)},
		{"Key epoch (send / receive)", fmt.Sprintf("%d / %d", st.SendEpoch, st.RecvEpoch)},
		{"Send counter", fmt.Sprint(st.SendCounter)},
		{"Frames sent", fmt.Sprint(st.FramesSent)},
		{"Frames received", fmt.Sprint(st.FramesReceived)},
		{"Frames rejected", fmt.Sprint(st.Rejected)},
	}
	replyTable(ce, "Your session to the hub", []string{"", ""}, rows)
}

func (c *cmds) nodes(ce *bcommands.Event) {
	st := c.b.Hub.Store
	nodes, err := st.Nodes.List(ce.Ctx)
	if err != nil {
		replyErr(ce, err)
		return
	}
	now := time.Now()
	rows := make([][]string, 0, len(nodes))
	for _, n := range nodes {
		frac, err := st.Sessions.Availability(ce.Ctx, n.ID, now.Add(-store.CoreWindow), now)
		if err != nil {
			replyErr(ce, err)
			return
		}
		seen, state := "never", "enrolled"
		if !n.LastSeen.IsZero() {
			seen = n.LastSeen.UTC().Format(time.RFC3339)
		}
		if c.b.Hub.Registry.Connected(n.ID) {
			state = "connected"
		}
		if n.Revoked() {
			state = "revoked"
		}
		rows = append(rows, []string{identity.Printable(n.Name), n.Role.String(), n.ID.String(), seen, fmt.Sprintf("%.1f %%", 100*frac), fmt.Sprint(store.Classify(frac)), state})
	}
	replyTable(ce, fmt.Sprintf("%d nodes", len(nodes)), []string{"Name", "Role", "Node ID", "Last seen", "Up (30 days)", "Class", "State"}, rows)
}

// pair makes a pairing code: `pair [node|client] [name]`. With a name the
// code enrols that name alone, the only way an admin's name enrols
// (PROFILE.md §P35).
func (c *cmds) pair(ce *bcommands.Event) {
	role, name := identity.RoleNode, ""
	if len(ce.Args) > 2 {
		usage(ce)
		return
	}
	if len(ce.Args) >= 1 {
		r, err := identity.ParseRole(ce.Args[0])
		if err != nil || r == identity.RoleHub {
			usage(ce)
			return
		}
		role = r
	}
	if len(ce.Args) == 2 {
		name = ce.Args[1]
	}
	code, err := runtime.Invite(ce.Ctx, c.b.Hub.Store, role, name)
	if err != nil {
		replyErr(ce, err)
		return
	}
	who, as := fmt.Sprintf("a new %v", role), "NAME"
	if name != "" {
		who, as = fmt.Sprintf("the %v `%s` (that name only)", role, name), name
	}
	ce.Reply("Pairing code for %s (valid %v, once): `%s`\n\nOn the new machine: `myclerk-bridge pair -hub tcp://HUB:7410 -code %s -name %s -role %v`", who, identity.PairingLifetime, code, code, as, role)
}

func (c *cmds) removeNode(ce *bcommands.Event) {
	if len(ce.Args) != 1 {
		usage(ce)
		return
	}
	st := c.b.Hub.Store
	n, err := st.Nodes.Find(ce.Ctx, ce.Args[0])
	switch {
	case errors.Is(err, store.ErrNotFound):
		ce.Reply("No enrolled, unrevoked node is named `%s` or has that ID. `$cmdprefix nodes` lists them.", identity.Printable(ce.Args[0]))
		return
	case errors.Is(err, store.ErrAmbiguous):
		ce.Reply("More than one node is named `%s`: give its node ID (`$cmdprefix nodes` lists them).", identity.Printable(ce.Args[0]))
		return
	case err != nil:
		replyErr(ce, err)
		return
	}
	if err := st.Nodes.Revoke(ce.Ctx, n.ID, time.Now()); err != nil {
		replyErr(ce, err)
		return
	}
	ended := c.b.Hub.Registry.RevokeNode(ce.Ctx, n.ID)
	ce.Reply("Revoked `%s` (`%s`): it can no longer open sessions (%d live sessions ended).", identity.Printable(n.Name), n.ID, ended)
}

// replyTable answers with an HTML table (and its text form for clients
// without HTML).
func replyTable(ce *bcommands.Event, title string, head []string, rows [][]string) {
	var b strings.Builder
	fmt.Fprintf(&b, "<p><b>%s</b></p><table>", html.EscapeString(title))
	if slices.ContainsFunc(head, func(s string) bool { return s != "" }) {
		b.WriteString("<thead><tr>")
		for _, h := range head {
			fmt.Fprintf(&b, "<th>%s</th>", html.EscapeString(h))
		}
		b.WriteString("</tr></thead>")
	}
	b.WriteString("<tbody>")
	for _, r := range rows {
		b.WriteString("<tr>")
		for _, cell := range r {
			fmt.Fprintf(&b, "<td>%s</td>", html.EscapeString(cell))
		}
		b.WriteString("</tr>")
	}
	b.WriteString("</tbody></table>")
	ce.ReplyAdvanced(b.String(), false, true)
}

func (c *cmds) federation(ce *bcommands.Event) {
	a := ce.Args
	fed := c.b.Network.Federations
	ctx, cancel := context.WithTimeout(ce.Ctx, callTimeout)
	defer cancel()
	switch {
	case len(a) == 3 && a[0] == "invite":
		room, err := fed.Invite(ctx, ce.User.MXID, a[1], id.UserID(a[2]))
		if err != nil {
			replyErr(ce, err)
			return
		}
		ce.Reply("Made the federation room `%s`. Ask the other family's admin to send their bot:\n\n`federation accept LABEL %s`\n\n(LABEL: their name for this family). The code to compare appears here once the bridges connect.", room, room)
	case len(a) == 3 && a[0] == "accept":
		if err := fed.Accept(ctx, ce.User.MXID, a[1], id.RoomID(a[2])); err != nil {
			replyErr(ce, err)
			return
		}
		ce.Reply("Joined the federation room; connecting to family `%s`. The code to compare appears here once the bridges connect.", a[1])
	case len(a) >= 3 && a[0] == "verify":
		if err := fed.Verify(ctx, a[1], strings.Join(a[2:], "")); err != nil {
			replyErr(ce, err)
			return
		}
		ce.Reply("Confirmed: family `%s`'s key is pinned. Its hub gets what you grant it (`federation grant %s DEVICE MODE`).", a[1], a[1])
	case len(a) == 4 && a[0] == "grant", len(a) == 3 && a[0] == "deny":
		name, err := fed.PeerName(a[1])
		if err != nil {
			replyErr(ce, err)
			return
		}
		ce.Args = append([]string{a[2], name}, a[3:]...)
		if a[0] == "grant" {
			c.asMember(ce, c.grant)
		} else {
			c.asMember(ce, c.deny)
		}
	case len(a) == 2 && a[0] == "revoke":
		if err := fed.Revoke(ctx, a[1]); err != nil {
			replyErr(ce, err)
			return
		}
		ce.Reply("Revoked the federation with `%s`: its session ended and its key opens nothing here any more.", a[1])
	case len(a) == 1 && a[0] == "list":
		list := fed.List()
		if len(list) == 0 {
			ce.Reply("No federations. `$cmdprefix federation invite LABEL @bot:their.server` starts one.")
			return
		}
		slices.SortFunc(list, func(x, y *store.Federation) int { return strings.Compare(x.Label, y.Label) })
		rows := make([][]string, 0, len(list))
		for _, f := range list {
			state := "waiting for the code"
			switch {
			case !f.RevokedAt.IsZero():
				state = "revoked"
			case f.Trusted():
				state = "confirmed"
			}
			role := "serves them"
			if f.Dialer {
				role = "uses theirs"
			}
			fam := f.Family().String()
			if len(f.RootKey) == 0 {
				fam = "unknown"
			}
			rows = append(rows, []string{f.Label, fam, f.PeerBot, role, state})
		}
		replyTable(ce, "Federations", []string{"Label", "Family", "Their bot", "Devices", "State"}, rows)
	default:
		usage(ce)
	}
}

func (c *cmds) remote(ce *bcommands.Event, _ *bridge.Member, _ *client.Client) {
	if len(ce.Args) < 2 {
		usage(ce)
		return
	}
	cli, err := c.b.Network.Federations.Client(ce.Args[0])
	if err != nil {
		replyErr(ce, err)
		return
	}
	label, verb := ce.Args[0], ce.Args[1]
	ce.Args = ce.Args[2:]
	switch verb {
	case "devices", "ls":
		c.devices(ce, nil, cli)
	case "info", "caps":
		ce.Command = verb
		c.info(ce, nil, cli)
	case "lock":
		c.lock(ce, nil, cli)
	case "unlock":
		c.unlock(ce, nil, cli)
	case "configure", "set":
		c.configure(ce, nil, cli)
	case "subscribe":
		if len(ce.Args) != 1 {
			usage(ce)
			return
		}
		ctx, cancel := context.WithTimeout(ce.Ctx, callTimeout)
		defer cancel()
		if err := c.b.Network.Federations.Subscribe(ctx, label, ce.Args[0], ce.RoomID); err != nil {
			replyErr(ce, err)
			return
		}
		ce.Reply("Subscribed: `%s:%s`'s events appear in this room (until the bridge restarts).", label, ce.Args[0])
	default:
		ce.Reply("`%s` is not something to do with family `%s`'s devices: devices, info, caps, lock, unlock, configure or subscribe.", verb, label)
	}
}
