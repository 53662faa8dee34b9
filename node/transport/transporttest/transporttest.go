// Package transporttest has helpers for tests and benchmarks of
// transports: a loopback TCP connection, and the profile's TCP framing
// written by hand on a bare net.Conn (the baseline transport.Stream and
// TLS are measured against).
package transporttest

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/myclerk/myclerk-bridge/wire"
)

// LoopbackTCP returns both ends of a TCP connection on 127.0.0.1, closed
// when the test ends.
func LoopbackTCP(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	s := <-acc
	if s == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// Framed is the 4-byte big-endian length prefix of transport.Stream,
// written with one Write from a reused buffer and read through a 16 KiB
// bufio.Reader into a reused buffer: no allocation per frame. Read's
// result is valid until the next Read.
type Framed struct {
	c          net.Conn
	r          *bufio.Reader
	hdr        [4]byte
	wbuf, rbuf []byte
}

// NewFramed frames c.
func NewFramed(c net.Conn) *Framed {
	return &Framed{c: c, r: bufio.NewReaderSize(c, 16<<10)}
}

// Write sends one frame.
func (f *Framed) Write(p []byte) error {
	f.wbuf = binary.BigEndian.AppendUint32(f.wbuf[:0], uint32(len(p)))
	f.wbuf = append(f.wbuf, p...)
	_, err := f.c.Write(f.wbuf)
	return err
}

// Read returns the next frame.
func (f *Framed) Read() ([]byte, error) {
	if _, err := io.ReadFull(f.r, f.hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(f.hdr[:]))
	if n > wire.MaxFrameSize {
		return nil, wire.ErrTooLarge
	}
	if cap(f.rbuf) < n {
		f.rbuf = make([]byte, n)
	}
	if _, err := io.ReadFull(f.r, f.rbuf[:n]); err != nil {
		return nil, err
	}
	return f.rbuf[:n], nil
}

// Echo writes every frame it reads back, until the connection ends.
func (f *Framed) Echo() {
	for {
		p, err := f.Read()
		if err != nil || f.Write(p) != nil {
			return
		}
	}
}
