package transport

import (
	"context"
	"sync"
)

// Pipe returns two connected in-memory Conns: what one writes, the other
// reads. It is the transport's test double (as net.Pipe is net's), and
// also joins two sessions inside one process.
func Pipe() (Conn, Conn) {
	ab, ba := make(chan []byte, 64), make(chan []byte, 64)
	done := make(chan struct{})
	var once sync.Once
	closeFn := func() { once.Do(func() { close(done) }) }
	return &pipeEnd{in: ba, out: ab, done: done, close: closeFn, name: "pipe a"},
		&pipeEnd{in: ab, out: ba, done: done, close: closeFn, name: "pipe b"}
}

type pipeEnd struct {
	in, out chan []byte
	done    chan struct{}
	close   func()
	name    string
}

func (p *pipeEnd) ReadFrame(ctx context.Context) ([]byte, error) {
	// Frames written before a close are still delivered, as on TCP.
	select {
	case b := <-p.in:
		return b, nil
	default:
	}
	select {
	case b := <-p.in:
		return b, nil
	case <-p.done:
		// A frame and the close can arrive together, and select picks
		// either: the frame written first still wins.
		select {
		case b := <-p.in:
			return b, nil
		default:
			return nil, ErrClosed
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pipeEnd) WriteFrame(ctx context.Context, frame []byte) error {
	b := append([]byte(nil), frame...)
	select {
	case <-p.done:
		return ErrClosed
	default:
	}
	select {
	case p.out <- b:
		return nil
	case <-p.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pipeEnd) Close() error       { p.close(); return nil }
func (p *pipeEnd) RemoteAddr() string { return p.name }
