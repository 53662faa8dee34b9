// Package frag splits a message into fragments and reassembles them, within
// bounds (PROFILE.md §P13, review item 13).
//
// A message larger than one frame's body travels as Total >= 2 fragments,
// each sealed on its own with the sub-header wire.FragmentHeader in its
// associated data. The receiver buffers the fragments of at most a few
// messages per session, bounded in count, bytes and time, and joins the
// bodies by index once all of them have arrived.
//
// The package is pure: it does no I/O, starts no goroutines and reads no
// clock; the caller passes the time.
package frag

import (
	"fmt"

	"github.com/myclerk/myclerk-bridge/wire"
)

// Fragment is one piece of a split message: its sub-header and its body.
type Fragment struct {
	Header wire.FragmentHeader
	Body   []byte
}

// Count returns how many fragments Split makes of a payloadLen-byte message
// with bodies of at most maxBody bytes, or 0 when Split would refuse it:
// maxBody <= 0, a payload that fits in one body (it is sent unfragmented),
// more than wire.MaxFragments fragments, or a payload over
// wire.MaxMessageSize. With At it splits without allocating:
//
//	for i := range frag.Count(len(payload), maxBody) {
//		f := frag.At(msgID, payload, maxBody, i)
//		...
//	}
func Count(payloadLen, maxBody int) int {
	if maxBody <= 0 || payloadLen <= maxBody || payloadLen > wire.MaxMessageSize {
		return 0
	}
	n := (payloadLen-1)/maxBody + 1
	if n > wire.MaxFragments {
		return 0
	}
	return n
}

// At returns fragment i of Split(msgID, payload, maxBody), its body aliasing
// payload. It panics when i is not below Count(len(payload), maxBody).
func At(msgID uint32, payload []byte, maxBody, i int) Fragment {
	n := Count(len(payload), maxBody)
	if i < 0 || i >= n {
		panic("frag: fragment index out of range")
	}
	lo, hi := i*maxBody, min((i+1)*maxBody, len(payload))
	return Fragment{
		Header: wire.FragmentHeader{MessageID: msgID, Index: uint16(i), Total: uint16(n)},
		// The capacity is cut at hi so that appending to one body cannot
		// overwrite the next.
		Body: payload[lo:hi:hi],
	}
}

// Split cuts payload into fragments whose bodies hold at most maxBody bytes
// (the last one may be shorter), with Index 0 .. Total-1. The bodies alias
// payload: nothing is copied.
//
// A payload over wire.MaxMessageSize, or one that needs more than
// wire.MaxFragments fragments, is refused with wire.ErrTooLarge. A payload
// that fits in one body is refused with wire.ErrFragment, since its
// sub-header would have Total = 1: a message that fits is not fragmented.
func Split(msgID uint32, payload []byte, maxBody int) ([]Fragment, error) {
	n := Count(len(payload), maxBody)
	if n == 0 {
		return nil, splitError(len(payload), maxBody)
	}
	frags := make([]Fragment, n)
	for i := range frags {
		frags[i] = At(msgID, payload, maxBody, i)
	}
	return frags, nil
}

// splitError says why Count refused a payload.
func splitError(payloadLen, maxBody int) error {
	switch {
	case maxBody <= 0:
		return fmt.Errorf("frag: fragment body size %d: %w", maxBody, wire.ErrFragment)
	case payloadLen > wire.MaxMessageSize:
		return fmt.Errorf("frag: %d-byte message over %d: %w", payloadLen, wire.MaxMessageSize, wire.ErrTooLarge)
	case payloadLen <= maxBody:
		return fmt.Errorf("frag: %d-byte message fits in one %d-byte body: %w", payloadLen, maxBody, wire.ErrFragment)
	}
	return fmt.Errorf("frag: %d-byte message needs more than %d fragments of %d bytes: %w",
		payloadLen, wire.MaxFragments, maxBody, wire.ErrTooLarge)
}
