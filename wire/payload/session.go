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
//	}
type SessionInit struct {
	Nonce     [8]byte
	Timestamp uint64 // Unix seconds

	// Capabilities offered; nil means the member is absent, an empty
	// slice encodes an empty array. At most MaxCapabilities.
	Capabilities []Capability

	DeviceID    [16]byte
	HasDeviceID bool // whether device-id is present; DeviceID is ignored otherwise
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
	return b, nil
}

// Unmarshal decodes b into p, strictly (see the package comment).
func (p *SessionInit) Unmarshal(b []byte) error {
	var d decoder
	if err := d.open(nameSessionInit, b); err != nil {
		return err
	}
	var v SessionInit
	var hasNonce, hasTimestamp bool
	for d.more() {
		k, err := d.key()
		if err != nil {
			return err
		}
		switch string(k) {
		case keyNonce:
			hasNonce = true
			err = d.bin(v.Nonce[:], keyNonce)
		case keyTimestamp:
			hasTimestamp = true
			v.Timestamp, err = d.uint(keyTimestamp, math.MaxUint64)
		case keyCapabilities:
			v.Capabilities, err = d.caps(keyCapabilities)
		case keyDeviceID:
			v.HasDeviceID = true
			err = d.bin(v.DeviceID[:], keyDeviceID)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	switch {
	case !hasNonce:
		return d.missing(keyNonce)
	case !hasTimestamp:
		return d.missing(keyTimestamp)
	}
	*p = v
	return nil
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
	var d decoder
	if err := d.open(nameSessionAck, b); err != nil {
		return err
	}
	var v SessionAck
	var hasSessionID, hasNonce, hasTier bool
	for d.more() {
		k, err := d.key()
		if err != nil {
			return err
		}
		var u uint64
		switch string(k) {
		case keySessionID:
			hasSessionID = true
			u, err = d.uint(keySessionID, math.MaxUint16)
			v.SessionID = uint16(u)
		case keyNonce:
			hasNonce = true
			err = d.bin(v.Nonce[:], keyNonce)
		case keySelectedTier:
			hasTier = true
			u, err = d.uint(keySelectedTier, uint64(wire.MaxTier))
			v.SelectedTier = uint8(u)
		case keySelectedCapabilities:
			v.SelectedCapabilities, err = d.caps(keySelectedCapabilities)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	switch {
	case !hasSessionID:
		return d.missing(keySessionID)
	case !hasNonce:
		return d.missing(keyNonce)
	case !hasTier:
		return d.missing(keySelectedTier)
	}
	*p = v
	return nil
}

// SessionResume is the payload of SESSION_RESUME (draft §7.3, review item
// 18):
//
//	session-resume = {
//	    old-session-id: uint .size 2,
//	    ticket: bstr .size 96,   ; profile: 64 in the draft
//	    nonce: bstr .size 8,     ; profile extension
//	}
//
// Nonce is the initiator's fresh nonce for the resumed session; the
// profile requires it so that resumed keys never repeat.
type SessionResume struct {
	OldSessionID uint16
	Ticket       [wire.TicketSize]byte // opaque here; see package ticket
	Nonce        [8]byte
}

const nameSessionResume = "session-resume"

// Marshal returns the deterministic encoding of p.
func (p *SessionResume) Marshal() ([]byte, error) { return p.AppendMsgpack(nil) }

// AppendMsgpack appends the deterministic encoding of p to dst.
func (p *SessionResume) AppendMsgpack(dst []byte) ([]byte, error) {
	b := appendMapLen(dst, 3)
	b = appendStr(b, keyOldSessionID)
	b = appendUint(b, uint64(p.OldSessionID))
	b = appendStr(b, keyTicket)
	b = appendBin(b, p.Ticket[:])
	b = appendStr(b, keyNonce)
	b = appendBin(b, p.Nonce[:])
	return b, nil
}

// Unmarshal decodes b into p, strictly (see the package comment).
func (p *SessionResume) Unmarshal(b []byte) error {
	var d decoder
	if err := d.open(nameSessionResume, b); err != nil {
		return err
	}
	var v SessionResume
	var hasOldID, hasTicket, hasNonce bool
	for d.more() {
		k, err := d.key()
		if err != nil {
			return err
		}
		switch string(k) {
		case keyOldSessionID:
			hasOldID = true
			var u uint64
			u, err = d.uint(keyOldSessionID, math.MaxUint16)
			v.OldSessionID = uint16(u)
		case keyTicket:
			hasTicket = true
			err = d.bin(v.Ticket[:], keyTicket)
		case keyNonce:
			hasNonce = true
			err = d.bin(v.Nonce[:], keyNonce)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	switch {
	case !hasOldID:
		return d.missing(keyOldSessionID)
	case !hasTicket:
		return d.missing(keyTicket)
	case !hasNonce:
		return d.missing(keyNonce)
	}
	*p = v
	return nil
}

// SessionResumed is the payload of SESSION_RESUMED, a profile extension
// (the draft defines the op but no payload). It mirrors SessionAck:
//
//	session-resumed = {
//	    session-id: uint .size 2,
//	    nonce: bstr .size 8,
//	    selected-tier: uint .le 5,
//	}
type SessionResumed struct {
	SessionID    uint16
	Nonce        [8]byte // the responder's fresh nonce
	SelectedTier uint8   // at most wire.MaxTier
}

const nameSessionResumed = "session-resumed"

// Marshal returns the deterministic encoding of p.
func (p *SessionResumed) Marshal() ([]byte, error) { return p.AppendMsgpack(nil) }

// AppendMsgpack appends the deterministic encoding of p to dst.
func (p *SessionResumed) AppendMsgpack(dst []byte) ([]byte, error) {
	if p.SelectedTier > uint8(wire.MaxTier) {
		return dst, encodeErr(nameSessionResumed, "selected-tier %d, limit %d", p.SelectedTier, wire.MaxTier)
	}
	b := appendMapLen(dst, 3)
	b = appendStr(b, keySessionID)
	b = appendUint(b, uint64(p.SessionID))
	b = appendStr(b, keyNonce)
	b = appendBin(b, p.Nonce[:])
	b = appendStr(b, keySelectedTier)
	b = appendUint(b, uint64(p.SelectedTier))
	return b, nil
}

// Unmarshal decodes b into p, strictly (see the package comment).
func (p *SessionResumed) Unmarshal(b []byte) error {
	var d decoder
	if err := d.open(nameSessionResumed, b); err != nil {
		return err
	}
	var v SessionResumed
	var hasSessionID, hasNonce, hasTier bool
	for d.more() {
		k, err := d.key()
		if err != nil {
			return err
		}
		var u uint64
		switch string(k) {
		case keySessionID:
			hasSessionID = true
			u, err = d.uint(keySessionID, math.MaxUint16)
			v.SessionID = uint16(u)
		case keyNonce:
			hasNonce = true
			err = d.bin(v.Nonce[:], keyNonce)
		case keySelectedTier:
			hasTier = true
			u, err = d.uint(keySelectedTier, uint64(wire.MaxTier))
			v.SelectedTier = uint8(u)
		default:
			err = d.skip()
		}
		if err != nil {
			return err
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	switch {
	case !hasSessionID:
		return d.missing(keySessionID)
	case !hasNonce:
		return d.missing(keyNonce)
	case !hasTier:
		return d.missing(keySelectedTier)
	}
	*p = v
	return nil
}
