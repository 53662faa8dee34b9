// Package payload encodes and decodes the MessagePack payloads of the
// MyClerk handshake and of the ERROR operation (draft §7, §9; review items
// 18, 19, 21 and 23).
//
// Every payload is one MessagePack map whose keys are the CDDL member names
// as str, with bstr members as bin (review item 21). Encoding is
// deterministic, so that a value always gives the same bytes:
//
//   - the map header is a fixmap; members appear in the order the CDDL
//     lists them; optional members that are absent are omitted;
//   - keys and strings use the shortest str form (fixstr, str8, str16);
//   - byte strings use bin8;
//   - unsigned integers use the shortest form (positive fixint, uint8,
//     uint16, uint32, uint64);
//   - arrays use fixarray, or array16 from 16 entries on.
//
// Decoding is strict and bounded. The input is at most MaxPayload bytes and
// must be exactly one map of at most MaxEntries members. Keys must be str of
// at most MaxKeyLen bytes of UTF-8 and must not repeat. Unknown keys are
// ignored; their values are skipped, with containers nested at most MaxDepth
// deep counting the top-level map. Every declared length is checked against
// the input that remains before anything is read or allocated. Required
// members must be present, members must have their CDDL type and size, and
// no byte may follow the map. An integer member may use any MessagePack
// integer format (MessagePack's type system does not tell uint8 from int8)
// but its value must be non-negative and in range. A member whose value is
// nil is a wrong type, not an absent member.
//
// Decoding errors wrap wire.ErrMalformed (an input over MaxPayload wraps
// wire.ErrTooLarge), so wire.CodeOf reports BAD_REQUEST (TOO_LARGE).
// Unmarshal leaves its receiver unchanged when it fails.
//
// The package does no I/O and keeps no state.
package payload

import (
	"strconv"

	"github.com/myclerk/myclerk-bridge/wire"
)

// Decoding limits. Each one bounds what an unauthenticated peer can make a
// decoder do; the encodings of this package stay far below all of them.
const (
	// MaxPayload bounds an encoded handshake or ERROR payload.
	MaxPayload = 4096

	// MaxEntries bounds the members of the top-level map.
	MaxEntries = 16

	// MaxKeyLen bounds a map key, in bytes.
	MaxKeyLen = 64

	// MaxDepth bounds the nesting of containers, the top-level map
	// counting as depth 1. It matters only for the values of unknown keys.
	MaxDepth = 8

	// MaxCapabilities bounds a capabilities or selected-capabilities array.
	MaxCapabilities = 32

	// MaxMessageLen bounds the message member of an ERROR payload, in
	// bytes of UTF-8.
	MaxMessageLen = 256
)

// Capability is a feature a peer offers in SESSION_INIT and the responder
// selects in SESSION_ACK (draft §7.1). Values not listed here are kept by
// the decoder, for forward compatibility, and are never selected by
// Negotiate unless the local side supports them.
type Capability uint8

// The capabilities of draft §7.1. Value 7 is not assigned.
const (
	CapLZ4           Capability = 0 // compression-lz4
	CapZstd          Capability = 1 // compression-zstd
	CapChaCha20      Capability = 2 // encryption-chacha20
	CapAES256GCM     Capability = 3 // encryption-aes256gcm
	CapFragmentation Capability = 4 // fragmentation
	CapStreaming     Capability = 5 // streaming
	CapFederation    Capability = 6 // federation
	CapVFS           Capability = 8 // vfs
)

var capNames = [...]string{
	CapLZ4:           "compression-lz4",
	CapZstd:          "compression-zstd",
	CapChaCha20:      "encryption-chacha20",
	CapAES256GCM:     "encryption-aes256gcm",
	CapFragmentation: "fragmentation",
	CapStreaming:     "streaming",
	CapFederation:    "federation",
	CapVFS:           "vfs",
}

// String returns the CDDL name of c, or "capability-N" for a value the
// draft does not assign.
func (c Capability) String() string {
	if int(c) < len(capNames) && capNames[c] != "" {
		return capNames[c]
	}
	return "capability-" + strconv.Itoa(int(c))
}

// Negotiate returns the capabilities that are both offered by the peer and
// supported locally, in the order of supported (so the local preference
// order wins), each at most once. It returns nil when there are none, which
// a SessionAck encodes by omitting selected-capabilities.
func Negotiate(offered, supported []Capability) []Capability {
	var inOffer, taken [256]bool
	for _, c := range offered {
		inOffer[c] = true
	}
	var sel []Capability
	for _, c := range supported {
		if inOffer[c] && !taken[c] {
			taken[c] = true
			sel = append(sel, c)
		}
	}
	return sel
}

// SelectAEAD returns the session's AEAD from the selected capabilities of
// a SESSION_ACK or SESSION_RESUMED (PROFILE.md §P23): the first of
// CapAES256GCM and CapChaCha20 that appears, so the responder's preference
// decides among what the initiator offered; ChaCha20-Poly1305, which every
// implementation has, when neither appears.
func SelectAEAD(caps []Capability) wire.AEAD {
	for _, c := range caps {
		switch c {
		case CapAES256GCM:
			return wire.AES256GCM
		case CapChaCha20:
			return wire.ChaCha20Poly1305
		}
	}
	return wire.ChaCha20Poly1305
}

// SelectCompression returns the session's compression algorithm: the first
// of CapLZ4 and CapZstd that appears in caps, the selected capabilities of
// a SESSION_ACK. Because Negotiate keeps the responder's order, the
// responder's preference decides. It returns false when neither appears;
// then the session does not compress (review item 14: C=1 always means the
// one algorithm selected here).
func SelectCompression(caps []Capability) (Capability, bool) {
	for _, c := range caps {
		if c == CapLZ4 || c == CapZstd {
			return c, true
		}
	}
	return 0, false
}
