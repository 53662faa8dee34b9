package wire

import "time"

// The profile's limits in one place (PROFILE.md §P12-§P18). Each carries its
// reason; changing one changes the wire profile.
const (
	// MaxFrameSize bounds one frame on any transport, header and trailer
	// included. TCP readers check the length prefix against it before
	// reading the body; larger messages are fragmented.
	MaxFrameSize = 1 << 20

	// LengthPrefixSize is the big-endian uint32 length that precedes each
	// frame on stream transports (TCP). Message transports (NATS,
	// WebSocket, Matrix) carry one frame per message and no prefix.
	LengthPrefixSize = 4

	// FragmentHeaderSize is the fragment sub-header (message-id u32,
	// index u16, total u16) that follows the header when F=1.
	FragmentHeaderSize = 8

	// MaxFragments bounds the fragments of one message: 1024 fragments of a
	// full frame cover far more than MaxMessageSize.
	MaxFragments = 1024

	// MaxMessageSize bounds one reassembled (and one decompressed) message.
	// It is what a Raspberry Pi can hold per message without strain.
	MaxMessageSize = 8 << 20

	// MaxPendingMessages bounds the messages under reassembly per session.
	MaxPendingMessages = 8

	// MaxReassemblyBytes bounds the bytes buffered for reassembly per
	// session, all pending messages together.
	MaxReassemblyBytes = 16 << 20

	// ReassemblyTimeout drops a message whose fragments did not all arrive
	// in time; its buffered bytes are freed.
	ReassemblyTimeout = 30 * time.Second

	// MaxDecompressedSize caps what one compressed payload may expand to
	// (decompression-bomb guard).
	MaxDecompressedSize = MaxMessageSize

	// TimestampSkew is the ±5 minutes of draft §10.2, measured against the
	// clock offset seen at the handshake.
	TimestampSkew = 5 * time.Minute

	// RejectAfterMessages: a key epoch seals at most this many frames per
	// direction (counters 0 .. 2^32-2). Counter 2^32-1 is never used, so a
	// nonce never repeats under one key (review #15, #16).
	RejectAfterMessages = 1<<32 - 1

	// RekeyAfterMessages: the session layer rotates well before the hard
	// limit so that traffic never stalls on it.
	RekeyAfterMessages = 1<<32 - 1<<24

	// RekeyAfterBytesAESGCM and RejectAfterBytesAESGCM bound the plaintext
	// one AES-256-GCM epoch seals per direction (PROFILE.md §P23): the
	// sender rotates at 64 GiB and never seals past 128 GiB.
	RekeyAfterBytesAESGCM  = 1 << 36
	RejectAfterBytesAESGCM = 1 << 37

	// RekeyAfterTime is draft §5.2's 24 hours: rotate the key epoch.
	RekeyAfterTime = 24 * time.Hour

	// RejectAfterTime: a sender refuses to seal with an epoch older than
	// this; the receiver refuses frames of such an epoch. The extra time
	// lets a rotation in flight complete.
	RejectAfterTime = RekeyAfterTime + 10*time.Minute

	// PreviousEpochGrace keeps the previous epoch's receive key after a
	// rotation, for frames reordered across it.
	PreviousEpochGrace = 2 * time.Minute

	// ReplayWindow is the number of counters below the largest accepted one
	// that may still arrive out of order (WireGuard's value, RFC 6479).
	ReplayWindow = 8192 - 64

	// PreAuthMaxFrame bounds one frame read from a peer before its
	// SESSION_AUTH (or ENROL_REQUEST) is verified (PROFILE.md §P41). The
	// handshake's frames are small: SESSION_INIT/ACK under 1 KiB, a
	// SESSION_AUTH about 300 bytes, ENROL_* under 1 KiB; 8 KiB leaves room
	// for long names and capability lists and holds a stranger to it.
	PreAuthMaxFrame = 8 << 10

	// PreAuthBytes bounds all bytes read from a peer before it is
	// authenticated, frames dropped or not, fragments included: a whole
	// handshake needs about 2 KiB, and 64 stranger connections then hold
	// at most 4 MiB between them.
	PreAuthBytes = 64 << 10

	// HandshakeTimeout bounds a responder's whole handshake, whatever
	// deadline its caller's context has: a stranger that stalls holds its
	// connection and its admission slot (§P41) for no longer.
	HandshakeTimeout = 10 * time.Second

	// TicketLifetime bounds a resumption ticket (review #18).
	TicketLifetime = 7 * 24 * time.Hour

	// TicketSize is the profile's resumption ticket: key-id 4, nonce 12,
	// sealed plaintext 64, GCM tag 16.
	TicketSize = 4 + 12 + 64 + 16
)
