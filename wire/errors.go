package wire

import (
	"errors"
	"fmt"
)

// Code is a protocol error code (draft §9, Table 17). It travels in the
// "code" member of an ERROR payload.
type Code uint8

// Error codes of draft §9.1 and the profile extensions (PROFILE.md §P19).
const (
	CodeOK                  Code = 0x00
	CodeBadRequest          Code = 0x10
	CodeUnauthorized        Code = 0x11
	CodeForbidden           Code = 0x12
	CodeNotFound            Code = 0x13
	CodeConflict            Code = 0x14 // profile extension: resource locked or in use
	CodeTooLarge            Code = 0x15 // profile extension: frame, message or payload over a limit
	CodeUnsupported         Code = 0x16 // profile extension: unknown op, version, tier or capability
	CodeInvalidSession      Code = 0x17
	CodeInternalError       Code = 0x20
	CodeServiceUnavailable  Code = 0x21
	CodeTimeout             Code = 0x22
	CodeFederationUntrusted Code = 0x30 // profile extension: peer family's root key is not pinned
	CodeFederationDenied    Code = 0x31 // profile extension: the peer family did not grant this
)

// codeNames is constant data: an array, so no map is built at init.
var codeNames = [256]string{
	CodeOK:                  "OK",
	CodeBadRequest:          "BAD_REQUEST",
	CodeUnauthorized:        "UNAUTHORIZED",
	CodeForbidden:           "FORBIDDEN",
	CodeNotFound:            "NOT_FOUND",
	CodeConflict:            "CONFLICT",
	CodeTooLarge:            "TOO_LARGE",
	CodeUnsupported:         "UNSUPPORTED",
	CodeInvalidSession:      "INVALID_SESSION",
	CodeInternalError:       "INTERNAL_ERROR",
	CodeServiceUnavailable:  "SERVICE_UNAVAILABLE",
	CodeTimeout:             "TIMEOUT",
	CodeFederationUntrusted: "FEDERATION_UNTRUSTED",
	CodeFederationDenied:    "FEDERATION_DENIED",
}

// String returns the code's name from §9.1, or its range category
// (Table 17) for codes without a name.
func (c Code) String() string {
	if n := codeNames[c]; n != "" {
		return n
	}
	switch {
	case c <= 0x0F:
		return fmt.Sprintf("SUCCESS_0x%02X", uint8(c))
	case c <= 0x1F:
		return fmt.Sprintf("CLIENT_ERROR_0x%02X", uint8(c))
	case c <= 0x2F:
		return fmt.Sprintf("SERVER_ERROR_0x%02X", uint8(c))
	case c <= 0x3F:
		return fmt.Sprintf("FEDERATION_ERROR_0x%02X", uint8(c))
	case c >= 0xF0:
		return fmt.Sprintf("RESERVED_0x%02X", uint8(c))
	}
	return fmt.Sprintf("UNASSIGNED_0x%02X", uint8(c))
}

// Codes lists every named code in ascending order.
func Codes() []Code {
	return []Code{CodeOK, CodeBadRequest, CodeUnauthorized, CodeForbidden, CodeNotFound,
		CodeConflict, CodeTooLarge, CodeUnsupported, CodeInvalidSession, CodeInternalError,
		CodeServiceUnavailable, CodeTimeout, CodeFederationUntrusted, CodeFederationDenied}
}

// Error is a wire error: a stable reason (used in logs and metrics) and
// the protocol code a peer is told. Callers compare with errors.Is against
// the sentinels below; context is added by wrapping.
type Error struct {
	Code   Code
	Reason string
}

func (e *Error) Error() string { return "myclerk: " + e.Reason }

// The sentinels every wire reject path returns (possibly wrapped).
// Authentication failures are deliberately one value: a peer is never told
// which check failed.
var (
	ErrTruncated       = &Error{CodeBadRequest, "truncated frame"}
	ErrTooLarge        = &Error{CodeTooLarge, "frame too large"}
	ErrVersion         = &Error{CodeUnsupported, "unknown protocol version"}
	ErrTier            = &Error{CodeUnsupported, "unknown security tier"}
	ErrEncryptedBelow3 = &Error{CodeBadRequest, "E flag set below tier 3"}
	ErrTier0Outside    = &Error{CodeBadRequest, "tier 0 frame outside a sealed frame"}
	ErrCRC             = &Error{CodeBadRequest, "CRC-16 or handshake digest mismatch"}
	ErrAuth            = &Error{CodeUnauthorized, "authentication failed"}
	ErrReplay          = &Error{CodeUnauthorized, "replayed or too old counter"}
	ErrStale           = &Error{CodeUnauthorized, "timestamp outside the allowed skew"}
	ErrWrongTier       = &Error{CodeBadRequest, "frame tier does not match the session"}
	ErrKeyExhausted    = &Error{CodeInvalidSession, "key epoch exhausted: rotate first"}
	ErrKeyExpired      = &Error{CodeInvalidSession, "key epoch expired: rotate first"}
	ErrUnknownEpoch    = &Error{CodeInvalidSession, "unknown key epoch"}
	ErrBadKey          = &Error{CodeBadRequest, "invalid public key"}
	ErrMalformed       = &Error{CodeBadRequest, "malformed payload"}
	ErrFragment        = &Error{CodeBadRequest, "invalid fragment"}
	ErrReassembly      = &Error{CodeTooLarge, "reassembly limit reached"}
	ErrReassemblyTime  = &Error{CodeTimeout, "reassembly timed out"}
	ErrDecompress      = &Error{CodeBadRequest, "decompression failed"}
	ErrDecompressLimit = &Error{CodeTooLarge, "decompressed size over the limit"}
	ErrTicket          = &Error{CodeInvalidSession, "invalid or expired ticket"}
	ErrBufferTooSmall  = &Error{CodeInternalError, "destination buffer too small"}
)

// CodeOf returns the protocol code for err: the code of the wire Error it
// wraps, CodeOK for nil, CodeInternalError otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternalError
}

// ReasonOf returns the stable reason of the wire Error that err wraps, for
// metrics labels; "internal" when there is none.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "internal"
}
