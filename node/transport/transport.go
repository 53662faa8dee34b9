// Package transport carries whole MyClerk frames between two nodes. Each
// transport delimits frames its own way (PROFILE.md §P12): a length prefix
// on TCP, one message per frame on WebSocket and NATS. The session layer
// sees only Conn.
package transport

import (
	"context"
	"errors"
)

// Conn is one connection to a peer carrying whole frames.
//
// ReadFrame returns a frame the caller owns. It is called by one goroutine
// at a time; WriteFrame may be called from several. Both return when ctx
// is done. Close unblocks both and is safe to call more than once.
type Conn interface {
	ReadFrame(ctx context.Context) ([]byte, error)
	WriteFrame(ctx context.Context, frame []byte) error
	Close() error
	// RemoteAddr names the peer for logs ("tcp 127.0.0.1:5555").
	RemoteAddr() string
}

// ErrClosed is returned by a Conn after Close or after the peer went away.
var ErrClosed = errors.New("transport: connection closed")

// A MessageError from ReadFrame is a message that held no usable frame (a
// NATS message over MaxFrameSize, a malformed container): it was dropped,
// and the connection goes on. Err says why (a wire error).
type MessageError struct{ Err error }

func (e *MessageError) Error() string { return "transport: dropped a message: " + e.Err.Error() }
func (e *MessageError) Unwrap() error { return e.Err }

// HeadroomWriter is a Conn that writes a frame without copying it when the
// caller leaves FrameHeadroom() spare bytes in front of it (a stream's
// length prefix goes there). buf[:FrameHeadroom()] is the Conn's to
// overwrite; the frame is the rest.
type HeadroomWriter interface {
	FrameHeadroom() int
	WriteFrameHeadroom(ctx context.Context, buf []byte) error
}

// ReaderInto is a Conn that can read a frame into memory the caller
// provides (and gives up): ReadFrameInto returns the frame in buf when it
// fits buf's capacity, in new memory otherwise.
type ReaderInto interface {
	ReadFrameInto(ctx context.Context, buf []byte) ([]byte, error)
}

// ReadLimiter is a Conn whose reader refuses a frame over a limit before
// it holds the frame's bytes: a stream checks the length prefix, a
// WebSocket counts the message as it arrives. A responder holds a peer to
// a small limit until the peer has authenticated (PROFILE.md §P41); a
// refused frame ends the connection. 0 is wire.MaxFrameSize.
type ReadLimiter interface {
	SetReadLimit(n int)
}
