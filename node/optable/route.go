package optable

import "github.com/myclerk/myclerk-bridge/wire"

// Dynamic routing and ACL (draft Table 8, PROFILE.md §P37): changes are
// for the device's owner and the hub's admins; ROUTE_LIST shows only the
// routes of devices the caller may read; ACL_GET tells anyone their own
// mode and the device's administrators the whole list.
var routeOps = []Entry{
	{Op: wire.OpRouteCreate, MinTier: wire.Tier3, Need: NeedAdmin, Senders: FromMember, Server: Hub, Served: true, Reply: true,
		Command: "route add", Args: "DEVICE MEMBER [PRIORITY]", Help: "send the device's events to a member"},
	{Op: wire.OpRouteDelete, MinTier: wire.Tier3, Need: NeedAdmin, Senders: FromMember, Server: Hub, Served: true, Reply: true,
		Command: "route del", Args: "ID", Help: "delete a route"},
	{Op: wire.OpRouteList, MinTier: wire.Tier3, Need: NeedNothing, Senders: FromAnyone, Server: Hub, Served: true, Reply: true,
		Command: "routes", Args: "[DEVICE]", Help: "the routes of devices you may read"},
	{Op: wire.OpRouteModify, MinTier: wire.Tier3, Need: NeedAdmin, Senders: FromMember, Server: Hub, Served: true, Reply: true},
	{Op: wire.OpACLSet, MinTier: wire.Tier3, Need: NeedAdmin, Senders: FromMember, Server: Hub, Served: true, Reply: true},
	{Op: wire.OpACLGet, MinTier: wire.Tier3, Need: NeedNothing, Senders: FromAnyone, Server: Hub, Served: true, Reply: true,
		Command: "acl get", Args: "DEVICE", Help: "your mode; the whole list for the device's administrators"},
	{Op: wire.OpACLGrant, MinTier: wire.Tier3, Need: NeedAdmin, Senders: FromMember, Server: Hub, Served: true, Reply: true,
		Command: "acl grant", Args: "DEVICE MEMBER MODE", Help: "give a member access; MODE is none, read-only, write-only, read-write or exclusive"},
	{Op: wire.OpACLRevoke, MinTier: wire.Tier3, Need: NeedAdmin, Senders: FromMember, Server: Hub, Served: true, Reply: true,
		Command: "acl revoke", Args: "DEVICE MEMBER", Help: "take a member's access away"},
	{Op: wire.OpRoutePriority, MinTier: wire.Tier3, Need: NeedAdmin, Senders: FromMember, Server: Hub, Served: true, Reply: true,
		Command: "route priority", Args: "ID PRIORITY", Help: "higher goes first"},
}
