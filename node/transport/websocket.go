package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/myclerk/myclerk-bridge/wire"
)

// WebSocket is a Conn over one WebSocket connection: one binary message
// per frame (PROFILE.md §P12). Text messages and messages over
// wire.MaxFrameSize end the connection.
//
// gorilla/websocket leaves a connection unusable after a read times out,
// so one goroutine per connection reads and ReadFrame waits on it: a
// context that ends a ReadFrame leaves the connection intact.
type WebSocket struct {
	c    *websocket.Conn
	wmu  sync.Mutex
	addr string
	in   chan wsResult
	done chan struct{}
	once sync.Once
	// limit bounds each message read (SetReadLimit); 0 is wire.MaxFrameSize.
	limit atomic.Int64
}

var _ ReadLimiter = (*WebSocket)(nil)

// SetReadLimit refuses messages over n bytes, counted as they arrive,
// from the next one on.
func (w *WebSocket) SetReadLimit(n int) { w.limit.Store(int64(min(n, wire.MaxFrameSize))) }

type wsResult struct {
	b   []byte
	err error
}

var _ Conn = (*WebSocket)(nil)

// NewWebSocket wraps an established connection.
func NewWebSocket(c *websocket.Conn) *WebSocket {
	c.SetReadLimit(wire.MaxFrameSize)
	w := &WebSocket{c: c, addr: "ws " + c.RemoteAddr().String(), in: make(chan wsResult, 16), done: make(chan struct{})}
	go w.readLoop()
	return w
}

func (w *WebSocket) readLoop() {
	for {
		b, err := w.read()
		select {
		case w.in <- wsResult{b, err}:
		case <-w.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// DialWebSocket connects to a node's WebSocket endpoint (ws:// or wss://).
func DialWebSocket(ctx context.Context, url string) (*WebSocket, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("failed to dial %s: %w", url, err)
	}
	return NewWebSocket(c), nil
}

// WebSocketHandler upgrades requests and hands each connection to accept,
// in the request's goroutine.
func WebSocketHandler(accept func(Conn)) http.Handler {
	up := websocket.Upgrader{ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered the client
		}
		accept(NewWebSocket(c))
	})
}

// RemoteAddr names the peer.
func (w *WebSocket) RemoteAddr() string { return w.addr }

// ReadFrame returns the next binary message.
func (w *WebSocket) ReadFrame(ctx context.Context) ([]byte, error) {
	select {
	case r, ok := <-w.in:
		if !ok {
			return nil, ErrClosed
		}
		return r.b, r.err
	case <-w.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (w *WebSocket) read() ([]byte, error) {
	t, r, err := w.c.NextReader()
	var b []byte
	if err == nil {
		lim := w.limit.Load()
		if lim <= 0 {
			lim = wire.MaxFrameSize
		}
		// Grows as the message arrives, and stops one byte past the limit.
		if b, err = io.ReadAll(io.LimitReader(r, lim+1)); err == nil && int64(len(b)) > lim {
			return nil, fmt.Errorf("a websocket message over %d bytes: %w", lim, wire.ErrTooLarge)
		}
	}
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) || errors.Is(err, websocket.ErrCloseSent) {
			return nil, fmt.Errorf("%w: %v", ErrClosed, err)
		}
		if errors.Is(err, websocket.ErrReadLimit) {
			return nil, fmt.Errorf("websocket message: %w", wire.ErrTooLarge)
		}
		return nil, fmt.Errorf("%w: %v", ErrClosed, err)
	}
	if t != websocket.BinaryMessage {
		return nil, fmt.Errorf("websocket: a text message where a binary frame belongs: %w", wire.ErrMalformed)
	}
	return b, nil
}

// WriteFrame sends one binary message.
func (w *WebSocket) WriteFrame(ctx context.Context, frame []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	defer watch(ctx, w.c.SetWriteDeadline)()
	if _, has := ctx.Deadline(); !has {
		w.c.SetWriteDeadline(time.Now().Add(writeTimeout)) // watch resets it
	}
	if err := w.c.WriteMessage(websocket.BinaryMessage, frame); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return nil
}

// Close sends a close message (best effort) and closes the connection.
func (w *WebSocket) Close() error {
	w.once.Do(func() { close(w.done) })
	w.wmu.Lock()
	w.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	w.wmu.Unlock()
	return w.c.Close()
}
