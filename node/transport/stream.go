package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
)

// Stream is a Conn over a byte stream (TCP, TLS over TCP, a Unix socket):
// each frame is preceded by its length, a big-endian uint32, checked
// against wire.MaxFrameSize before anything is allocated.
type Stream struct {
	c    net.Conn
	r    *bufio.Reader
	wmu  sync.Mutex
	wbuf []byte // prefix and frame, written in one call; guarded by wmu
	hdr  [wire.LengthPrefixSize]byte
	// limit bounds the frames read (SetReadLimit); 0 is wire.MaxFrameSize.
	limit atomic.Int32
	// wdeadline is the write deadline set for writes without a context's
	// (guarded by wmu).
	wdeadline time.Time
}

// WriteTimeout bounds a write whose context has no deadline of its own: a
// peer that has not taken a frame for this long is gone, and its writers
// would otherwise wait for it for ever (holding the session's send lock,
// and with it the keepalive that would notice).
const WriteTimeout = 30 * time.Second

// writeTimeout is WriteTimeout; tests shorten it.
var writeTimeout = WriteTimeout

var _ ReadLimiter = (*Stream)(nil)

// SetReadLimit refuses frames over n bytes from the next one read, before
// reading them.
func (s *Stream) SetReadLimit(n int) { s.limit.Store(int32(min(n, wire.MaxFrameSize))) }

// NewStream wraps an established net.Conn.
func NewStream(c net.Conn) *Stream {
	return &Stream{c: c, r: bufio.NewReaderSize(c, 16<<10)}
}

var _ Conn = (*Stream)(nil)

// RemoteAddr names the peer.
func (s *Stream) RemoteAddr() string {
	return s.c.RemoteAddr().Network() + " " + s.c.RemoteAddr().String()
}

// watch makes ctx's deadline and cancellation reach a blocking call by
// moving the connection's deadline; the returned func undoes it.
func watch(ctx context.Context, set func(time.Time) error) func() {
	if ctx.Done() == nil {
		return func() {} // a context that never ends: nothing to watch
	}
	if d, ok := ctx.Deadline(); ok {
		set(d)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { set(time.Unix(1, 0)); close(fired) })
	return func() {
		if !stop() {
			<-fired // the deadline is being moved now: not both at once (a WebSocket's setters are not safe for that)
		}
		set(time.Time{})
	}
}

func (s *Stream) fail(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %v", ErrClosed, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: %v", context.DeadlineExceeded, err)
	}
	return err
}

// ReadFrame reads one frame.
func (s *Stream) ReadFrame(ctx context.Context) ([]byte, error) {
	return s.ReadFrameInto(ctx, nil)
}

var _ ReaderInto = (*Stream)(nil)

// ReadFrameInto reads one frame into buf when it fits buf's capacity.
func (s *Stream) ReadFrameInto(ctx context.Context, buf []byte) ([]byte, error) {
	if ctx.Done() != nil { // a method value allocates: only when there is something to watch
		defer watch(ctx, s.c.SetReadDeadline)()
	}
	if _, err := io.ReadFull(s.r, s.hdr[:]); err != nil {
		return nil, s.fail(ctx, err)
	}
	n, err := wire.ParseLengthPrefix(s.hdr[:])
	if err != nil {
		return nil, fmt.Errorf("length prefix %x: %w", s.hdr, err)
	}
	if lim := int(s.limit.Load()); lim > 0 && n > lim {
		return nil, fmt.Errorf("a frame of %d bytes, over the limit of %d: %w", n, lim, wire.ErrTooLarge)
	}
	// Grow the buffer as the bytes arrive: a peer that announces a large
	// frame and sends it slowly holds no more memory than it has sent.
	b := buf[:0]
	if cap(b) < n {
		b = make([]byte, 0, min(n, readChunk))
	}
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n-len(b), cap(b)))
		}
		k, err := io.ReadFull(s.r, b[len(b):min(n, cap(b))])
		b = b[:len(b)+k]
		if err != nil {
			return nil, s.fail(ctx, err)
		}
	}
	return b, nil
}

// readChunk is the first allocation for a frame being read.
const readChunk = 16 << 10

// WriteFrame writes one frame with its length prefix, in one write.
func (s *Stream) WriteFrame(ctx context.Context, frame []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b, err := wire.AppendLengthPrefix(s.wbuf[:0], len(frame))
	if err != nil {
		return err
	}
	b = append(b, frame...)
	if cap(b) <= 64<<10 {
		s.wbuf = b // keep buffers of ordinary frames; let big ones go
	}
	return s.write(ctx, b)
}

var _ HeadroomWriter = (*Stream)(nil)

// FrameHeadroom is the length prefix's room.
func (s *Stream) FrameHeadroom() int { return wire.LengthPrefixSize }

// WriteFrameHeadroom writes buf[LengthPrefixSize:] as one frame, putting
// its length prefix in buf's first bytes: one write, no copy.
func (s *Stream) WriteFrameHeadroom(ctx context.Context, buf []byte) error {
	if len(buf) < wire.LengthPrefixSize {
		return fmt.Errorf("stream: %d bytes, no room for the length prefix", len(buf))
	}
	if _, err := wire.AppendLengthPrefix(buf[:0], len(buf)-wire.LengthPrefixSize); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.write(ctx, buf)
}

// write writes b, prefix and frame, in one call; wmu is held.
func (s *Stream) write(ctx context.Context, b []byte) error {
	switch _, has := ctx.Deadline(); {
	case has:
		defer watch(ctx, s.c.SetWriteDeadline)() // resets the deadline when done
		s.wdeadline = time.Time{}
	case ctx.Done() != nil:
		defer watch(ctx, s.c.SetWriteDeadline)() // resets the deadline when done
		s.c.SetWriteDeadline(time.Now().Add(writeTimeout))
		s.wdeadline = time.Time{}
	default:
		// No context to bound the write: WriteTimeout does, moved on only
		// once half of it has passed (no call per frame).
		if now := time.Now(); now.Add(writeTimeout / 2).After(s.wdeadline) {
			s.wdeadline = now.Add(writeTimeout)
			s.c.SetWriteDeadline(s.wdeadline)
		}
	}
	if _, err := s.c.Write(b); err != nil {
		return s.fail(ctx, err)
	}
	return nil
}

// Close closes the connection.
func (s *Stream) Close() error {
	err := s.c.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
