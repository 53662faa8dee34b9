package payload

import (
	"math"
	"strings"
	"unicode/utf8"

	"github.com/myclerk/myclerk-bridge/wire"
)

// Error is the payload of ERROR, op 0x00FF, a profile extension (review
// item 19; the draft has error codes but no message to carry them):
//
//	error = {
//	    code: uint .size 1,        ; draft §9 code
//	    ref-seq: uint .size 4,     ; sequence of the frame it answers
//	    ? required-tier: uint .le 5,
//	    ? message: tstr .size (0..256),
//	}
//
// Error is a payload, not a Go error; wire.CodeOf maps a Go error to Code.
type Error struct {
	Code   wire.Code
	RefSeq uint32

	RequiredTier    uint8 // at most wire.MaxTier; sent with FORBIDDEN (draft §8)
	HasRequiredTier bool  // whether required-tier is present; RequiredTier is ignored otherwise

	// Message is human-readable context, at most MaxMessageLen bytes of
	// UTF-8; empty means the member is absent. It must not carry secrets.
	Message string
}

const nameError = "error"

// Marshal returns the deterministic encoding of p.
func (p *Error) Marshal() ([]byte, error) { return p.AppendMsgpack(nil) }

// AppendMsgpack appends the deterministic encoding of p to dst.
func (p *Error) AppendMsgpack(dst []byte) ([]byte, error) {
	if p.HasRequiredTier && p.RequiredTier > uint8(wire.MaxTier) {
		return dst, encodeErr(nameError, "required-tier %d, limit %d", p.RequiredTier, wire.MaxTier)
	}
	if len(p.Message) > MaxMessageLen {
		return dst, encodeErr(nameError, "message of %d bytes, limit %d", len(p.Message), MaxMessageLen)
	}
	if !utf8.ValidString(p.Message) {
		return dst, encodeErr(nameError, "message is not UTF-8")
	}
	n := 2
	if p.HasRequiredTier {
		n++
	}
	if p.Message != "" {
		n++
	}
	b := appendMapLen(dst, n)
	b = appendStr(b, keyCode)
	b = appendUint(b, uint64(p.Code))
	b = appendStr(b, keyRefSeq)
	b = appendUint(b, uint64(p.RefSeq))
	if p.HasRequiredTier {
		b = appendStr(b, keyRequiredTier)
		b = appendUint(b, uint64(p.RequiredTier))
	}
	if p.Message != "" {
		b = appendStr(b, keyMessage)
		b = appendStr(b, p.Message)
	}
	return b, nil
}

// Unmarshal decodes b into p, strictly (see the package comment). A
// present but empty message decodes as an absent one.
func (p *Error) Unmarshal(b []byte) error {
	var v Error
	err := decodeMap(nameError, b,
		member{keyCode, true, uintInto(&v.Code, math.MaxUint8)},
		member{keyRefSeq, true, uintInto(&v.RefSeq, math.MaxUint32)},
		member{keyRequiredTier, false, func(d *decoder, key string) error {
			v.HasRequiredTier = true
			return uintInto(&v.RequiredTier, uint64(wire.MaxTier))(d, key)
		}},
		member{keyMessage, false, func(d *decoder, key string) (err error) {
			v.Message, err = d.str(key, MaxMessageLen)
			return err
		}},
	)
	if err == nil {
		*p = v
	}
	return err
}

// ShortMessage is s as an ERROR message may carry it: at most
// MaxMessageLen bytes of valid UTF-8, a cut marked with "...".
func ShortMessage(s string) string {
	if len(s) > MaxMessageLen {
		s = s[:MaxMessageLen-3] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
