package payload

import (
	"math"

	"github.com/myclerk/myclerk-bridge/wire"
)

// SessionInit is the payload of SESSION_INIT (draft §7.1):
//
//	session-init = {
//	    nonce: bstr .size 8,
//	    timestamp: uint,
//	    ? capabilities: [* capability],
//	    ? device-id: bstr .size 16,
//	    ? requested-tier: uint .le 5,   ; profile extension (PROFILE.md §P32)
//	}
type SessionInit struct {
	Nonce     [8]byte
	Timestamp uint64 // Unix seconds

	// Capabilities offered; nil means the member is absent, an empty
	// slice encodes an empty array. At most MaxCapabilities.
	Capabilities []Capability

	DeviceID    [16]byte
	HasDeviceID bool // whether device-id is present; DeviceID is ignored otherwise

	// RequestedTier is the tier the initiator asks for (§P32); absent when
	// HasRequestedTier is false, which a responder reads as its maximum.
	RequestedTier    uint8
	HasRequestedTier bool
}

const nameSessionInit = "session-init"

// Marshal returns the deterministic encoding of p.
func (p *SessionInit) Marshal() ([]byte, error) { return p.AppendMsgpack(nil) }

// AppendMsgpack appends the deterministic encoding of p to dst.
func (p *SessionInit) AppendMsgpack(dst []byte) ([]byte, error) {
	if len(p.Capabilities) > MaxCapabilities {
		return dst, encodeErr(nameSessionInit, "%d capabilities, limit %d", len(p.Capabilities), MaxCapabilities)
	}
	n := 2
	if p.Capabilities != nil {
		n++
	}
	if p.HasDeviceID {
		n++
	}
	if p.HasRequestedTier {
		if p.RequestedTier > uint8(wire.MaxTier) {
			return dst, encodeErr(nameSessionInit, "requested-tier %d, limit %d", p.RequestedTier, wire.MaxTier)
		}
		n++
	}
	b := appendMapLen(dst, n)
	b = appendStr(b, keyNonce)
	b = appendBin(b, p.Nonce[:])
	b = appendStr(b, keyTimestamp)
	b = appendUint(b, p.Timestamp)
	if p.Capabilities != nil {
		b = appendStr(b, keyCapabilities)
		b = appendCaps(b, p.Capabilities)
	}
	if p.HasDeviceID {
		b = appendStr(b, keyDeviceID)
		b = appendBin(b, p.DeviceID[:])
	}
	if p.HasRequestedTier {
		b = appendStr(b, keyRequestedTier)
		b = appendUint(b, uint64(p.RequestedTier))
	}
	return b, nil
}

// Unmarshal decodes b into p, strictly (see the package comment).
func (p *SessionInit) Unmarshal(b []byte) error {
	var v SessionInit
	err := decodeMap(nameSessionInit, b,
		member{keyNonce, true, binInto(v.Nonce[:], nil)},
		member{keyTimestamp, true, uintInto(&v.Timestamp, math.MaxUint64)},
		member{keyCapabilities, false, capsInto(&v.Capabilities)},
		member{keyDeviceID, false, binInto(v.DeviceID[:], &v.HasDeviceID)},
		member{keyRequestedTier, false, func(d *decoder, key string) error {
			v.HasRequestedTier = true
			return uintInto(&v.RequestedTier, uint64(wire.MaxTier))(d, key)
		}},
	)
	if err == nil {
		*p = v
	}
	return err
}

// SessionAck is the payload of SESSION_ACK (draft §7.2):
//
//	session-ack = {
//	    session-id: uint .size 2,
//	    nonce: bstr .size 8,
//	    selected-tier: uint .le 5,
//	    ? selected-capabilities: [* capability],
//	}
type SessionAck struct {
	SessionID    uint16
	Nonce        [8]byte
	SelectedTier uint8 // at most wire.MaxTier

	// SelectedCapabilities; nil means the member is absent, an empty
	// slice encodes an empty array. At most MaxCapabilities.
	SelectedCapabilities []Capability
}

const nameSessionAck = "session-ack"

// Marshal returns the deterministic encoding of p.
func (p *SessionAck) Marshal() ([]byte, error) { return p.AppendMsgpack(nil) }

// AppendMsgpack appends the deterministic encoding of p to dst.
func (p *SessionAck) AppendMsgpack(dst []byte) ([]byte, error) {
	if p.SelectedTier > uint8(wire.MaxTier) {
		return dst, encodeErr(nameSessionAck, "selected-tier %d, limit %d", p.SelectedTier, wire.MaxTier)
	}
	if len(p.SelectedCapabilities) > MaxCapabilities {
		return dst, encodeErr(nameSessionAck, "%d selected capabilities, limit %d", len(p.SelectedCapabilities), MaxCapabilities)
	}
	n := 3
	if p.SelectedCapabilities != nil {
		n++
	}
	b := appendMapLen(dst, n)
	b = appendStr(b, keySessionID)
	b = appendUint(b, uint64(p.SessionID))
	b = appendStr(b, keyNonce)
	b = appendBin(b, p.Nonce[:])
	b = appendStr(b, keySelectedTier)
	b = appendUint(b, uint64(p.SelectedTier))
	if p.SelectedCapabilities != nil {
		b = appendStr(b, keySelectedCapabilities)
		b = appendCaps(b, p.SelectedCapabilities)
	}
	return b, nil
}

// Unmarshal decodes b into p, strictly (see the package comment).
func (p *SessionAck) Unmarshal(b []byte) error {
	var v SessionAck
	err := decodeMap(nameSessionAck, b,
		member{keySessionID, true, uintInto(&v.SessionID, math.MaxUint16)},
		member{keyNonce, true, binInto(v.Nonce[:], nil)},
		member{keySelectedTier, true, uintInto(&v.SelectedTier, uint64(wire.MaxTier))},
		member{keySelectedCapabilities, false, capsInto(&v.SelectedCapabilities)},
	)
	if err == nil {
		*p = v
	}
	return err
}

// SessionResume is the payload of SESSION_RESUME (draft §7.3, review item
// 18):
//
//	session-resume = {
//	    old-session-id: uint .size 2,
//	    ticket: bstr .size 96,   ; profile: 64 in the draft
//	    nonce: bstr .size 8,     ; profile extension
//	    ? capabilities: [* capability],   ; profile extension (§P23)
//	}
//
// Nonce is the initiator's fresh nonce for the resumed session; the
// profile requires it so that resumed keys never repeat. Capabilities are
// offered again, as in SESSION_INIT: a resumed session negotiates afresh.
type SessionResume struct {
	OldSessionID uint16
	Ticket       [wire.TicketSize]byte // opaque here; see package ticket
	Nonce        [8]byte

	// Capabilities offered; nil means the member is absent. At most
	// MaxCapabilities.
	Capabilities []Capability
}

const nameSessionResume = "session-resume"

// Marshal returns the deterministic encoding of p.
func (p *SessionResume) Marshal() ([]byte, error) { return p.AppendMsgpack(nil) }

// AppendMsgpack appends the deterministic encoding of p to dst.
func (p *SessionResume) AppendMsgpack(dst []byte) ([]byte, error) {
	if len(p.Capabilities) > MaxCapabilities {
		return dst, encodeErr(nameSessionResume, "%d capabilities, limit %d", len(p.Capabilities), MaxCapabilities)
	}
	n := 3
	if p.Capabilities != nil {
		n++
	}
	b := appendMapLen(dst, n)
	b = appendStr(b, keyOldSessionID)
	b = appendUint(b, uint64(p.OldSessionID))
	b = appendStr(b, keyTicket)
	b = appendBin(b, p.Ticket[:])
	b = appendStr(b, keyNonce)
	b = appendBin(b, p.Nonce[:])
	if p.Capabilities != nil {
		b = appendStr(b, keyCapabilities)
		b = appendCaps(b, p.Capabilities)
	}
	return b, nil
}

// Unmarshal decodes b into p, strictly (see the package comment).
func (p *SessionResume) Unmarshal(b []byte) error {
	var v SessionResume
	err := decodeMap(nameSessionResume, b,
		member{keyOldSessionID, true, uintInto(&v.OldSessionID, math.MaxUint16)},
		member{keyTicket, true, binInto(v.Ticket[:], nil)},
		member{keyNonce, true, binInto(v.Nonce[:], nil)},
		member{keyCapabilities, false, capsInto(&v.Capabilities)},
	)
	if err == nil {
		*p = v
	}
	return err
}

// SessionResumed is the payload of SESSION_RESUMED, a profile extension
// (the draft defines the op but no payload). It mirrors SessionAck:
//
//	session-resumed = {
//	    session-id: uint .size 2,
//	    nonce: bstr .size 8,
//	    selected-tier: uint .le 5,
//	    ? selected-capabilities: [* capability],   ; §P23
//	}
type SessionResumed struct {
	SessionID    uint16
	Nonce        [8]byte // the responder's fresh nonce
	SelectedTier uint8   // at most wire.MaxTier

	// SelectedCapabilities; nil means the member is absent. At most
	// MaxCapabilities.
	SelectedCapabilities []Capability
}

const nameSessionResumed = "session-resumed"

// Marshal returns the deterministic encoding of p.
func (p *SessionResumed) Marshal() ([]byte, error) { return p.AppendMsgpack(nil) }

// AppendMsgpack appends the deterministic encoding of p to dst.
func (p *SessionResumed) AppendMsgpack(dst []byte) ([]byte, error) {
	if p.SelectedTier > uint8(wire.MaxTier) {
		return dst, encodeErr(nameSessionResumed, "selected-tier %d, limit %d", p.SelectedTier, wire.MaxTier)
	}
	if len(p.SelectedCapabilities) > MaxCapabilities {
		return dst, encodeErr(nameSessionResumed, "%d selected capabilities, limit %d", len(p.SelectedCapabilities), MaxCapabilities)
	}
	n := 3
	if p.SelectedCapabilities != nil {
		n++
	}
	b := appendMapLen(dst, n)
	b = appendStr(b, keySessionID)
	b = appendUint(b, uint64(p.SessionID))
	b = appendStr(b, keyNonce)
	b = appendBin(b, p.Nonce[:])
	b = appendStr(b, keySelectedTier)
	b = appendUint(b, uint64(p.SelectedTier))
	if p.SelectedCapabilities != nil {
		b = appendStr(b, keySelectedCapabilities)
		b = appendCaps(b, p.SelectedCapabilities)
	}
	return b, nil
}

// Unmarshal decodes b into p, strictly (see the package comment).
func (p *SessionResumed) Unmarshal(b []byte) error {
	var v SessionResumed
	err := decodeMap(nameSessionResumed, b,
		member{keySessionID, true, uintInto(&v.SessionID, math.MaxUint16)},
		member{keyNonce, true, binInto(v.Nonce[:], nil)},
		member{keySelectedTier, true, uintInto(&v.SelectedTier, uint64(wire.MaxTier))},
		member{keySelectedCapabilities, false, capsInto(&v.SelectedCapabilities)},
	)
	if err == nil {
		*p = v
	}
	return err
}
