package payload

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"github.com/myclerk/myclerk-bridge/wire"
)

// The map keys: the CDDL member names, verbatim.
const (
	keyNonce                = "nonce"
	keyTimestamp            = "timestamp"
	keyCapabilities         = "capabilities"
	keyDeviceID             = "device-id"
	keySessionID            = "session-id"
	keySelectedTier         = "selected-tier"
	keySelectedCapabilities = "selected-capabilities"
	keyOldSessionID         = "old-session-id"
	keyTicket               = "ticket"
	keyCode                 = "code"
	keyRefSeq               = "ref-seq"
	keyRequiredTier         = "required-tier"
	keyMessage              = "message"
	keyRequestedTier        = "requested-tier"
	keyCertificate          = "certificate"
	keySignature            = "signature"
	keyName                 = "name"
	keyPublicKey            = "public-key"
	keyRole                 = "role"
	keyProof                = "proof"
	keyRootKey              = "root-key"
	keyLifetime             = "lifetime"
)

// The appenders below write the deterministic encoding described in the
// package comment. They are the same bytes the msgpack library's Encoder
// writes for EncodeMapLen, EncodeString, EncodeBytes, EncodeUint and
// EncodeArrayLen (a test checks this), without its buffering.

// appendMapLen writes a fixmap header; every payload has at most 15 members.
func appendMapLen(b []byte, n int) []byte {
	return append(b, msgpcode.FixedMapLow|byte(n))
}

// appendArrayLen writes a fixarray or array16 header; n <= 65535.
func appendArrayLen(b []byte, n int) []byte {
	if n <= int(msgpcode.FixedArrayMask) {
		return append(b, msgpcode.FixedArrayLow|byte(n))
	}
	return append(b, msgpcode.Array16, byte(n>>8), byte(n))
}

// appendStr writes s as fixstr, str8 or str16; len(s) <= 65535.
func appendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n <= int(msgpcode.FixedStrMask):
		b = append(b, msgpcode.FixedStrLow|byte(n))
	case n <= 0xff:
		b = append(b, msgpcode.Str8, byte(n))
	default:
		b = append(b, msgpcode.Str16, byte(n>>8), byte(n))
	}
	return append(b, s...)
}

// appendBin writes p as bin8; len(p) <= 255.
func appendBin(b, p []byte) []byte {
	b = append(b, msgpcode.Bin8, byte(len(p)))
	return append(b, p...)
}

// appendUint writes v in its shortest unsigned form.
func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= uint64(msgpcode.PosFixedNumHigh):
		return append(b, byte(v))
	case v <= 0xff:
		return append(b, msgpcode.Uint8, byte(v))
	case v <= 0xffff:
		return append(b, msgpcode.Uint16, byte(v>>8), byte(v))
	case v <= 0xffffffff:
		return append(b, msgpcode.Uint32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, msgpcode.Uint64, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendCaps writes a capabilities array.
func appendCaps(b []byte, caps []Capability) []byte {
	b = appendArrayLen(b, len(caps))
	for _, c := range caps {
		b = appendUint(b, uint64(c))
	}
	return b
}

// encodeErr reports a value that has no valid encoding.
func encodeErr(what, format string, args ...any) error {
	return fmt.Errorf("%s: %w: cannot encode: "+format, append([]any{what, wire.ErrMalformed}, args...)...)
}
