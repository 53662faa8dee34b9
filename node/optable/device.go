package optable

import "github.com/myclerk/myclerk-bridge/wire"

// Device management (draft Table 5, PROFILE.md §P37). Reading ops need
// read, CONFIGURE write, LOCK and UNLOCK both; a lock refuses the ops that
// change a device to everyone but its holder.
var deviceOps = []Entry{
	{Op: wire.OpDeviceList, MinTier: wire.Tier3, Need: NeedNothing, Senders: FromAnyone, Server: Hub, Served: true, Reply: true,
		Command: "devices", Help: "the devices you may see"},
	{Op: wire.OpDeviceInfo, MinTier: wire.Tier3, Need: NeedRead, Senders: FromAnyone, Server: Hub, Served: true, Reply: true,
		Command: "info", Args: "DEVICE", Help: "one device"},
	{Op: wire.OpDeviceSubscribe, MinTier: wire.Tier3, Need: NeedRead, Senders: FromAnyone, Server: Hub, Served: true, Reply: true,
		Command: "subscribe", Args: "DEVICE [COUNT]", Help: "the device's events (COUNT of them; default 1)"},
	{Op: wire.OpDeviceUnsubscribe, MinTier: wire.Tier3, Need: NeedRead, Senders: FromAnyone, Server: Hub, Served: true, Reply: true,
		Args: "DEVICE", Help: "no more events from the device"},
	{Op: wire.OpDeviceLock, MinTier: wire.Tier3, Need: NeedReadWrite, Lock: true, Senders: FromAnyone, Server: Hub, Served: true, Reply: true,
		Command: "lock", Args: "DEVICE [SECONDS]", Help: "exclusive use, a lease (default 300 s, at most 3600)"},
	{Op: wire.OpDeviceUnlock, MinTier: wire.Tier3, Need: NeedReadWrite, Lock: true, Senders: FromAnyone, Server: Hub, Served: true, Reply: true,
		Command: "unlock", Args: "DEVICE", Help: "release your lock"},
	{Op: wire.OpDeviceConfigure, MinTier: wire.Tier3, Need: NeedWrite, Lock: true, Senders: FromAnyone, Server: Owner, Served: true, Reply: true,
		Command: "configure", Args: "DEVICE KEY=VALUE...", Help: "relayed to the device's node"},
	{Op: wire.OpDeviceCapabilities, MinTier: wire.Tier3, Need: NeedRead, Senders: FromAnyone, Server: Hub, Served: true, Reply: true,
		Command: "caps", Args: "DEVICE", Help: "the device's capabilities"},
	{Op: wire.OpDeviceAnnounce, MinTier: wire.Tier3, Senders: FromNode | FromHub, Server: Push, Served: true},
	{Op: wire.OpDeviceEvent, MinTier: wire.Tier3, Senders: FromNode | FromHub, Server: Push, Served: true},
}
