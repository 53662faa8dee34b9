package optable

import "github.com/myclerk/myclerk-bridge/wire"

// The session layer's ops (draft Tables 3 and 4, PROFILE.md §P11, §P19,
// §P34, §P35): answered by the session itself, never dispatched. NOP,
// KEEPALIVE and ERROR carry nothing a forger could use and are allowed
// from Tier 1 (they are still dropped inside a session unless sealed,
// §P41); the handshake frames carry the ephemeral key in a Tier 4 header
// (§P24); key management needs Tier 4.
var sessionOps = []Entry{
	{Op: wire.OpNOP, MinTier: wire.Tier1, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpKeepalive, MinTier: wire.Tier1, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpKeepaliveAck, MinTier: wire.Tier1, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpSessionInit, MinTier: wire.Tier4, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpSessionAck, MinTier: wire.Tier4, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpSessionClose, MinTier: wire.Tier3, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpSessionCloseAck, MinTier: wire.Tier3, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpSessionResume, MinTier: wire.Tier4, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpSessionResumed, MinTier: wire.Tier4, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpSessionTicket, MinTier: wire.Tier3, Senders: FromHub, Server: Session, Served: true},
	{Op: wire.OpKeyExchangeInit, MinTier: wire.Tier4, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpKeyExchangeResponse, MinTier: wire.Tier4, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpKeyExchangeComplete, MinTier: wire.Tier4, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpSessionAuth, MinTier: wire.Tier4, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpEnrolRequest, MinTier: wire.Tier4, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpEnrolResponse, MinTier: wire.Tier4, Senders: FromHub, Server: Session, Served: true},
	{Op: wire.OpSessionRotate, MinTier: wire.Tier4, Senders: FromAnyone, Server: Session, Served: true},
	{Op: wire.OpSessionRevoke, MinTier: wire.Tier4, Senders: FromHub, Server: Session, Served: true},
	// TUNNEL's Tier 0 frames have a wire format (§P11) but no use yet.
	{Op: wire.OpTunnel, MinTier: wire.Tier3, Senders: FromAnyone, Server: Session},
	// ERROR answers a request (its ref-seq is the request's "req"); the
	// dispatchers match it to what they relayed.
	{Op: wire.OpError, MinTier: wire.Tier1, Senders: FromAnyone, Server: Session, Served: true},
}
