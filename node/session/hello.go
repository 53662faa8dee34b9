package session

import (
	"context"
	"crypto/ecdh"
	"fmt"
	"io"
	"time"

	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
)

// ephemeral is one side's fresh X25519 key and nonce for a handshake.
type ephemeral struct {
	priv  *ecdh.PrivateKey
	pub   [wire.PublicKeySize]byte
	nonce [8]byte
}

func newEphemeral(rand io.Reader) (*ephemeral, error) {
	priv, err := wire.GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	e := &ephemeral{priv: priv, pub: [32]byte(priv.PublicKey().Bytes())}
	if _, err := io.ReadFull(rand, e.nonce[:]); err != nil {
		return nil, err
	}
	return e, nil
}

// hello builds a handshake frame (SESSION_INIT, _ACK, _RESUME, _RESUMED)
// carrying e's public key and the payload.
func (e *ephemeral) hello(op wire.Op, sid uint16, now time.Time, p interface{ Marshal() ([]byte, error) }) ([]byte, error) {
	b, err := p.Marshal()
	if err != nil {
		return nil, err
	}
	h := wire.Header{Tier: wire.Tier4, Op: op, SessionID: sid, Timestamp: uint32(now.Unix()), PublicKey: e.pub}
	return wire.AppendHandshake(nil, &h, b)
}

// readHello reads the peer's handshake frame, which must be op; a Tier 1
// ERROR in its place becomes an error (ErrPeerError).
// exchangeHello sends a dialer's hello frame (of op sent) and reads the
// responder's answer, which must be op want.
func exchangeHello(ctx context.Context, conn transport.Conn, frame []byte, sent, want wire.Op) ([]byte, wire.Frame, error) {
	if err := conn.WriteFrame(ctx, frame); err != nil {
		return nil, wire.Frame{}, fmt.Errorf("failed to send %v: %w", sent, err)
	}
	return readHello(ctx, conn, want)
}

// maxStale is how many frames of an earlier session a dialer skips while
// it waits for the answer to its hello: over a Matrix room the previous
// session's last frames can still arrive (PROFILE.md §P39).
const maxStale = 64

func readHello(ctx context.Context, conn transport.Conn, op wire.Op) ([]byte, wire.Frame, error) {
	for skipped := 0; ; skipped++ {
		b, err := conn.ReadFrame(ctx)
		if err != nil {
			return nil, wire.Frame{}, fmt.Errorf("failed to read %v: %w", op, err)
		}
		if err := peerError(b); err != nil {
			return nil, wire.Frame{}, err
		}
		f, err := wire.ParseHandshake(b)
		if err == nil && f.Header.Op == op {
			return b, f, nil
		}
		if skipped < maxStale && sessionTraffic(b) {
			continue
		}
		return nil, wire.Frame{}, fmt.Errorf("%w: want %v (%v)", ErrHandshake, op, err)
	}
}

// sessionTraffic reports whether b is a sealed frame of an established
// session (not a handshake frame).
func sessionTraffic(b []byte) bool {
	f, err := wire.Parse(b)
	return err == nil && f.Header.Tier.Sealed() && (f.Header.Encrypted || !f.Header.Op.Handshake())
}

// shared is the X25519 secret with the peer's key from its hello.
func (e *ephemeral) shared(peer [wire.PublicKeySize]byte) ([wire.KeySize]byte, error) {
	s, err := wire.SharedSecret(e.priv, peer)
	if err != nil {
		return s, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return s, nil
}
