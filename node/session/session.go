// Package session runs MyClerk sessions over any transport: the handshake
// (SESSION_INIT/ACK with tier and capability negotiation), mutual identity
// proofs over the transcript (SESSION_AUTH), sealed traffic with the
// minimum-tier policy, keepalives, rotation, close and revocation.
//
// A Session is driven by its owner: one goroutine calls Recv (which answers
// control operations itself); any goroutine may call Send. Keepalive starts
// the one goroutine the package runs per session.
package session

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/metrics"
	"github.com/myclerk/myclerk-bridge/node/optable"
	"github.com/myclerk/myclerk-bridge/node/ratelog"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/frag"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// Session errors, in addition to the wire's.
var (
	ErrBelowFloor = &wire.Error{Code: wire.CodeForbidden, Reason: "negotiated tier below the configured floor"}
	ErrHandshake  = &wire.Error{Code: wire.CodeBadRequest, Reason: "handshake failed"}
	ErrClosed     = &wire.Error{Code: wire.CodeInvalidSession, Reason: "session closed"}
	ErrRevoked    = &wire.Error{Code: wire.CodeUnauthorized, Reason: "session revoked"}
	ErrPeerError  = &wire.Error{Code: wire.CodeBadRequest, Reason: "peer answered with an error"}
	ErrDeadPeer   = &wire.Error{Code: wire.CodeTimeout, Reason: "peer stopped answering"}

	// Before the peer is authenticated (PROFILE.md §P41).
	ErrPreAuth      = &wire.Error{Code: wire.CodeUnauthorized, Reason: "not before authentication"}
	ErrPreAuthLimit = &wire.Error{Code: wire.CodeTooLarge, Reason: "over the pre-authentication limit"}
	ErrNotFromHub   = &wire.Error{Code: wire.CodeForbidden, Reason: "only a hub sends this"}
	ErrBusy         = &wire.Error{Code: wire.CodeServiceUnavailable, Reason: "too many handshakes"}
)

// Config is what both ends of a session need.
type Config struct {
	// Identity proves who this node is; Root is the family trust anchor
	// the peer's certificate must chain to.
	Identity *identity.Identity
	Root     ed25519.PublicKey
	// Foreign returns the root key of another family whose members this
	// node accepts as peers (federation, PROFILE.md §P40); nil accepts
	// only Root's family.
	Foreign func(identity.FamilyID) (ed25519.PublicKey, bool)

	// Tier is the tier this node asks for (initiator) or at most grants
	// (responder); Floor is the lowest it accepts (at least 3).
	Tier  wire.Tier
	Floor wire.Tier

	Capabilities []payload.Capability
	Policy       *Policy
	Revoked      func(identity.NodeID) bool
	// PeerRoles, when not empty, are the only roles the peer's certificate
	// may carry, checked as soon as its SESSION_AUTH verifies: whoever
	// dials its hub (a node, a client, a bridge member, a federating
	// hub) accepts only identity.RoleHub. Empty accepts any role.
	PeerRoles []identity.Role

	// MaxFrame bounds the frames this end sends; larger messages are
	// fragmented. 0 means wire.MaxFrameSize.
	MaxFrame int

	Clock   func() time.Time
	Rand    io.Reader
	Log     zerolog.Logger
	Metrics *metrics.Metrics // nil counts nothing
	// RejectLog rate-limits the log lines of dropped frames by reason
	// (the Rejected counters keep the true number); nil logs every one.
	RejectLog *ratelog.Limiter
}

func (c *Config) now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

func (c *Config) check() error {
	switch {
	case c.Rand == nil:
		return errors.New("session: config has no random source")
	case len(c.Root) != ed25519.PublicKeySize:
		return errors.New("session: config has no family root key")
	case c.Tier < wire.Tier3 || c.Tier > wire.MaxTier:
		return fmt.Errorf("session: tier %d: want 3 to 5", c.Tier)
	case c.Floor > c.Tier:
		return fmt.Errorf("session: floor %d above tier %d", c.Floor, c.Tier)
	}
	return nil
}

// Message is one application message received in a session.
type Message struct {
	Op      wire.Op
	Tier    wire.Tier
	Payload []byte
	Counter uint32
}

// Status is what `client status` shows.
type Status struct {
	SessionID      uint16
	Tier           wire.Tier
	RequestedTier  wire.Tier
	AEAD           wire.AEAD
	Capabilities   []payload.Capability
	Peer           *identity.Certificate
	SendEpoch      uint32
	SendCounter    uint64
	RecvEpoch      uint32
	FramesSent     int64
	FramesReceived int64
	Rejected       int64
	Remote         string
}

// Session is one established session.
type Session struct {
	conn      transport.Conn
	cfg       *Config
	remote    string         // for logs; a per-session zerolog context would cost 0.5 KiB
	dir       wire.Direction // the direction this end sends in
	id        uint16
	tier      wire.Tier
	requested wire.Tier
	aead      wire.AEAD
	caps      []payload.Capability
	peer      *identity.Certificate

	sendMu   sync.Mutex
	sealer   *wire.Sealer
	buf      []byte
	headroom int                      // spare bytes in front of each frame in buf (hw's)
	hw       transport.HeadroomWriter // conn, when it writes from buf without a copy
	rd       transport.ReaderInto     // conn, when it reads into a given buffer (RecvBorrowed)
	msgID    uint32

	opener      *wire.Opener // Recv's goroutine only
	reasm       *frag.Reassembler
	lent        []byte // RecvBorrowed's last payload, the next frame's buffer (Recv's goroutine only)
	reassembled bool   // the message handle returned came from the reassembler

	sent, received, rejected atomic.Int64
	lastRecv                 atomic.Int64 // unix nanoseconds
	closed                   atomic.Bool
	closeErr                 error
	closeOnce                sync.Once
	release                  func() // frees the session ID (responder)

	handshaking bool // Recv returns NOP and SESSION_TICKET while set
	preAuthRead int  // bytes read while handshaking (PROFILE.md §P41)
	counted     bool // in the sessions gauge (set once established)
	resumption  [wire.KeySize]byte
	ticketMu    sync.Mutex
	ticket      *Ticket

	// The in-session re-handshake (rekey.go).
	th        [32]byte  // the current keys' transcript hash
	th0       [32]byte  // the handshake's transcript hash
	keyStart  time.Time // when the current keys were made
	rekeyMu   sync.Mutex
	rekey     *rekeyState
	rekeys    atomic.Int64
	oldOpener *wire.Opener // Recv's goroutine only: the replaced keys, until oldUntil
	oldUntil  time.Time
}

func newSession(conn transport.Conn, cfg *Config, dir wire.Direction, id uint16, tier, requested wire.Tier, caps []payload.Capability, sec *wire.SessionSecrets, skew time.Duration) *Session {
	now := cfg.now()
	s := &Session{
		conn: conn, cfg: cfg, dir: dir, id: id, tier: tier, requested: requested, aead: sec.AEAD, caps: caps,
		sealer: wire.NewSealer(sec, dir, now),
		opener: wire.NewOpener(sec, 1-dir, now),
		reasm:  frag.NewReassembler(preAuthReassembly()),
	}
	s.opener.Skew = skew
	s.resumption = wire.ResumptionSecret(sec.SessionKey, sec.TranscriptHash)
	s.th, s.th0, s.keyStart = sec.TranscriptHash, sec.TranscriptHash, now
	s.handshaking = true
	s.lastRecv.Store(now.UnixNano())
	s.remote = conn.RemoteAddr()
	if hw, ok := conn.(transport.HeadroomWriter); ok {
		s.hw, s.headroom = hw, hw.FrameHeadroom()
	}
	s.rd, _ = conn.(transport.ReaderInto)
	return s
}

// log starts a log event at level carrying the session's ID and peer
// address. A session keeps no logger context of its own: zerolog's would
// hold half a kilobyte per idle session for lines that are rare.
func (s *Session) log(level zerolog.Level) *zerolog.Event {
	return s.cfg.Log.WithLevel(level).Uint16("session_id", s.id).Str("remote", s.remote)
}

// ID returns the session ID the responder allocated.
func (s *Session) ID() uint16 { return s.id }

// Tier returns the negotiated tier.
func (s *Session) Tier() wire.Tier { return s.tier }

// AEAD returns the negotiated cipher (PROFILE.md §P23).
func (s *Session) AEAD() wire.AEAD { return s.aead }

// HandshakeHash is the transcript hash of the handshake that opened the
// session (not of later re-handshakes): both ends hold the same value, and
// a man in the middle would hold two different ones, so a code derived
// from it can be compared by people (federation, §P40).
func (s *Session) HandshakeHash() [32]byte { return s.th0 }

// Peer returns the peer's verified certificate.
func (s *Session) Peer() *identity.Certificate { return s.peer }

// Status returns the session's negotiated parameters and counters.
func (s *Session) Status() Status {
	s.sendMu.Lock()
	ep, ctr := s.sealer.Epoch(), s.sealer.Counter()
	s.sendMu.Unlock()
	return Status{SessionID: s.id, Tier: s.tier, RequestedTier: s.requested, AEAD: s.aead, Capabilities: s.caps, Peer: s.peer,
		SendEpoch: ep, SendCounter: ctr, RecvEpoch: s.opener.Epoch(), FramesSent: s.sent.Load(),
		FramesReceived: s.received.Load(), Rejected: s.rejected.Load(), Remote: s.conn.RemoteAddr()}
}

// sendTier is the tier op travels at: the session's, or the op's minimum
// when that is higher.
func (s *Session) sendTier(op wire.Op) wire.Tier {
	return max(s.tier, s.cfg.Policy.MinTier(op))
}

// Send seals payload as op at the session's tier (or op's minimum, if
// higher), fragmenting it when it does not fit one frame.
func (s *Session) Send(ctx context.Context, op wire.Op, p []byte) error {
	return s.SendAt(ctx, op, s.sendTier(op), p)
}

// SendAt is Send at an explicit tier (3-5). Sending below the peer's
// policy gets ERROR FORBIDDEN back; it is how tests check the policy.
func (s *Session) SendAt(ctx context.Context, op wire.Op, tier wire.Tier, p []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	maxFrame := s.cfg.MaxFrame
	if maxFrame <= 0 || maxFrame > wire.MaxFrameSize {
		maxFrame = wire.MaxFrameSize
	}
	room := maxFrame - wire.FrameSize(tier, false, 0)
	if len(p) <= room {
		return s.sendFrame(ctx, &wire.Header{Tier: tier, Encrypted: true, Op: op, SessionID: s.id}, nil, p)
	}
	s.sendMu.Lock()
	s.msgID++
	id := s.msgID
	s.sendMu.Unlock()
	fs, err := frag.Split(id, p, maxFrame-wire.FrameSize(tier, true, 0))
	if err != nil {
		return err
	}
	for i := range fs {
		h := wire.Header{Tier: tier, Encrypted: true, Fragmented: true, Op: op, SessionID: s.id}
		if err := s.sendFrame(ctx, &h, &fs[i].Header, fs[i].Body); err != nil {
			return err
		}
	}
	return nil
}

func (s *Session) sendFrame(ctx context.Context, h *wire.Header, fh *wire.FragmentHeader, p []byte) error {
	s.sendMu.Lock()
	now := s.cfg.now()
	if s.sealer.NeedsRotation(now) {
		// Announce in the old epoch, then move on: the peer follows the
		// next epoch by itself (PROFILE.md §P16).
		if err := s.sealAndWrite(ctx, &wire.Header{Tier: max(s.tier, wire.Tier4), Encrypted: true, Op: wire.OpSessionRotate, SessionID: s.id}, nil, nil, now); err != nil {
			s.sendMu.Unlock()
			return err
		}
		s.sealer.Rotate(now)
		s.log(zerolog.InfoLevel).Uint32("epoch", s.sealer.Epoch()).Msg("Rotated the send key")
	}
	err := s.sealAndWrite(ctx, h, fh, p, now)
	s.sendMu.Unlock()
	return err
}

// sealAndWrite seals under sendMu and writes the frame.
func (s *Session) sealAndWrite(ctx context.Context, h *wire.Header, fh *wire.FragmentHeader, p []byte, now time.Time) error {
	if cap(s.buf) < s.headroom {
		s.buf = make([]byte, s.headroom, s.headroom+wire.FrameSize(h.Tier, fh != nil, len(p)))
	}
	b, err := s.sealer.Seal(s.buf[:s.headroom], h, fh, p, now)
	if err != nil {
		return fmt.Errorf("failed to seal %v: %w", h.Op, err)
	}
	if cap(b) <= 64<<10 {
		s.buf = b // keep the buffer of ordinary frames; let big ones go
	}
	if s.hw != nil {
		err = s.hw.WriteFrameHeadroom(ctx, b)
	} else {
		err = s.conn.WriteFrame(ctx, b)
	}
	if err != nil {
		s.cfg.Metrics.Frame(true, h.Tier, h.Op, "error")
		return fmt.Errorf("failed to send %v: %w", h.Op, err)
	}
	s.sent.Add(1)
	s.cfg.Metrics.Frame(true, h.Tier, h.Op, "ok")
	return nil
}

// Rotate enters the next send epoch now, announcing it with SESSION_ROTATE
// (sealed in the old epoch).
func (s *Session) Rotate(ctx context.Context) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	now := s.cfg.now()
	if err := s.sealAndWrite(ctx, &wire.Header{Tier: max(s.tier, wire.Tier4), Encrypted: true, Op: wire.OpSessionRotate, SessionID: s.id}, nil, nil, now); err != nil {
		return err
	}
	s.sealer.Rotate(now)
	return nil
}

// sendError answers a frame with ERROR, sealed when it can be.
func (s *Session) sendError(ctx context.Context, code wire.Code, ref uint32, required wire.Tier, msg string) {
	e := payload.Error{Code: code, RefSeq: ref, Message: msg}
	if required != 0 {
		e.RequiredTier, e.HasRequiredTier = uint8(required), true
	}
	b, err := e.Marshal()
	if err == nil {
		err = s.sendFrame(ctx, &wire.Header{Tier: s.tier, Encrypted: true, Op: wire.OpError, SessionID: s.id}, nil, b)
	}
	if err != nil {
		s.log(zerolog.DebugLevel).Err(err).Msg("Failed to send an error reply")
	}
}

// reject counts and logs a frame that was not accepted.
// The line is rate-limited by reason (Config.RejectLog); the counters are
// not.
func (s *Session) reject(err error, msg string) {
	s.rejected.Add(1)
	reason := wire.ReasonOf(err)
	s.cfg.Metrics.Rejected(reason)
	ok, suppressed := s.cfg.RejectLog.Allow(reason)
	if !ok {
		return
	}
	ev := s.log(zerolog.WarnLevel).Str("reason", reason).Stringer("code", wire.CodeOf(err)).Err(err)
	if suppressed > 0 {
		ev = ev.Int("suppressed", suppressed)
	}
	ev.Msg(msg)
}

// Recv returns the next application message. It answers KEEPALIVE,
// SESSION_ROTATE and SESSION_CLOSE itself, drops frames that do not
// authenticate (counted and logged, never answered: PROFILE.md §P31),
// answers frames below their operation's minimum tier with ERROR
// FORBIDDEN, and reassembles fragments. It returns ErrClosed when the peer
// closed the session, ErrRevoked when the hub revoked it.
func (s *Session) Recv(ctx context.Context) (Message, error) {
	return s.recv(ctx, false)
}

// RecvBorrowed is Recv for a caller that is done with each message before
// it asks for the next, as a relay or a decoder is: Message.Payload is
// valid only until the next RecvBorrowed or Recv, after which the session
// reads the next frame into the payload's memory. Over a transport that
// reads into a given buffer (TCP) a steady stream of messages then
// allocates nothing; Recv allocates each frame, since its payload is the
// caller's to keep.
func (s *Session) RecvBorrowed(ctx context.Context) (Message, error) {
	return s.recv(ctx, true)
}

// maxLent bounds the buffer RecvBorrowed keeps between messages: an idle
// session should not hold a large frame's memory.
const maxLent = 4 << 10

func (s *Session) recv(ctx context.Context, borrow bool) (Message, error) {
	for {
		if s.closed.Load() {
			return Message{}, s.closeReason()
		}
		var b []byte
		var err error
		into := borrow && s.rd != nil
		if into {
			lent := s.lent
			s.lent = nil
			b, err = s.rd.ReadFrameInto(ctx, lent)
		} else {
			b, err = s.conn.ReadFrame(ctx)
		}
		if err != nil {
			if s.closed.Load() {
				return Message{}, s.closeReason()
			}
			if me := (*transport.MessageError)(nil); errors.As(err, &me) {
				s.reject(err, "Dropped a message")
				if s.handshaking {
					return Message{}, fmt.Errorf("%w: %w", ErrPreAuthLimit, err)
				}
				continue
			}
			return Message{}, err
		}
		s.reassembled = false
		m, ok, err := s.handle(ctx, b)
		if err != nil {
			return Message{}, err
		}
		if ok {
			if into && !s.reassembled && cap(m.Payload) <= maxLent {
				// The payload is the frame's memory or the opener's old
				// scratch; nothing else holds it (a reassembled message
				// is the reassembler's and is left alone).
				s.lent = m.Payload[:0]
			}
			return m, nil
		}
	}
}

func (s *Session) closeReason() error {
	if s.closeErr != nil {
		return s.closeErr
	}
	return ErrClosed
}

// handle processes one received frame. The gate of PROFILE.md §P41 is its
// first lines: a stranger is held to small frames and few bytes, and once
// there are keys only a frame sealed at the session's tier or above goes
// further (a Tier 1-2 frame, or one sealed lower, is dropped unanswered).
func (s *Session) handle(ctx context.Context, b []byte) (Message, bool, error) {
	if s.handshaking {
		if err := s.preAuth(len(b)); err != nil {
			return Message{}, false, err
		}
	}
	if len(b) == 0 || wire.Tier(b[0]>>3&7) < s.tier {
		s.reject(s.belowTier(b), "Dropped a frame below the session's tier")
		return Message{}, false, nil
	}
	now := s.cfg.now()
	var o wire.Opened
	var err error
	if s.oldOpener == nil {
		o, err = s.opener.OpenInPlace(b, now) // b is ours: no copy
	} else {
		o, err = s.opener.Open(nil, b, now) // keep b for the old keys
	}
	if err != nil && s.oldOpener != nil {
		if now.Before(s.oldUntil) {
			if old, oerr := s.oldOpener.Open(nil, b, now); oerr == nil {
				o, err = old, nil // in flight while the keys were replaced
			}
		} else {
			s.oldOpener = nil
		}
	}
	if err != nil {
		s.reject(err, "Dropped a frame")
		return Message{}, false, nil
	}
	s.received.Add(1)
	s.lastRecv.Store(now.UnixNano())
	h := &o.Header
	s.cfg.Metrics.Frame(false, h.Tier, h.Op, "ok")
	if need := s.cfg.Policy.MinTier(h.Op); h.Tier < need {
		s.reject(fmt.Errorf("%v at tier %d needs %d: %w", h.Op, h.Tier, need, wire.ErrWrongTier), "Refused a frame below its minimum tier")
		s.sendError(ctx, wire.CodeForbidden, o.Counter, need, fmt.Sprintf("%v needs tier %d", h.Op, need))
		return Message{}, false, nil
	}
	switch h.Op {
	case wire.OpKeepalive:
		if s.handshaking {
			s.reject(fmt.Errorf("%v: %w", h.Op, ErrPreAuth), "Dropped a frame before authentication")
			return Message{}, false, nil
		}
		return Message{}, false, s.Send(ctx, wire.OpKeepaliveAck, nil)
	case wire.OpNOP:
		return Message{Op: h.Op, Tier: h.Tier, Counter: o.Counter}, s.handshaking, nil
	case wire.OpSessionTicket:
		if !s.mayHaveSent(h.Op) {
			return Message{}, false, nil
		}
		m := Message{Op: h.Op, Tier: h.Tier, Payload: o.Payload, Counter: o.Counter}
		if s.handshaking {
			return m, true, nil
		}
		s.storeTicket(m)
		return Message{}, false, nil
	case wire.OpKeepaliveAck, wire.OpSessionRotate:
		return Message{}, false, nil // the opener follows a rotation by itself
	case wire.OpSessionClose:
		s.Send(ctx, wire.OpSessionCloseAck, nil)
		s.shutdown(ErrClosed)
		return Message{}, false, ErrClosed
	case wire.OpSessionCloseAck:
		s.shutdown(ErrClosed)
		return Message{}, false, ErrClosed
	case wire.OpSessionRevoke:
		if !s.mayHaveSent(h.Op) {
			return Message{}, false, nil
		}
		s.log(zerolog.WarnLevel).Msg("The hub revoked this session")
		s.shutdown(ErrRevoked)
		return Message{}, false, ErrRevoked
	case wire.OpKeyExchangeInit, wire.OpKeyExchangeResponse, wire.OpKeyExchangeComplete:
		if s.handshaking {
			s.reject(fmt.Errorf("%v: %w", h.Op, ErrPreAuth), "Dropped a frame before authentication")
			return Message{}, false, nil
		}
		return Message{}, false, s.handleRekey(ctx, Message{Op: h.Op, Tier: h.Tier, Payload: o.Payload, Counter: o.Counter})
	}
	p := o.Payload
	if h.Fragmented {
		msg, done, err := s.reasm.Add(frag.KindOf(h), o.Fragment, p, now)
		if err != nil {
			s.reject(err, "Refused a fragment")
			return Message{}, false, nil
		}
		if !done {
			return Message{}, false, nil
		}
		p, s.reassembled = msg, true
	}
	if h.Compressed {
		// No codec is negotiated yet for application data: a compressed
		// message cannot be read (PROFILE.md §P14).
		s.reject(wire.ErrDecompress, "Refused a compressed message")
		s.sendError(ctx, wire.CodeUnsupported, o.Counter, 0, "compression was not negotiated")
		return Message{}, false, nil
	}
	return Message{Op: h.Op, Tier: h.Tier, Payload: p, Counter: o.Counter}, true, nil
}

// mayHaveSent applies the op table's senders to the session layer's own
// ops that only a hub sends (SESSION_TICKET, SESSION_REVOKE): from a peer
// whose certificate is not a hub's they are dropped and counted. A peer
// not known yet (enrolment) is the handshake's business.
func (s *Session) mayHaveSent(op wire.Op) bool {
	e, _ := optable.Lookup(op)
	if s.peer == nil || e.Senders != optable.FromHub || s.peer.Role == identity.RoleHub {
		return true
	}
	s.reject(fmt.Errorf("%v from a %v: %w", op, s.peer.Role, ErrNotFromHub), "Dropped a hub's op from another peer")
	return false
}

// preAuthReassembly bounds reassembly before the peer is authenticated:
// the handshake's messages fit one frame, so a stranger gets room for one
// small message (PROFILE.md §P41); established swaps in the full limits.
func preAuthReassembly() frag.Limits {
	return frag.Limits{MaxMessageSize: wire.PreAuthBytes, MaxPending: 1, MaxBytes: wire.PreAuthBytes}
}

// preAuth counts a frame of n bytes read before the peer is authenticated
// against the limits of PROFILE.md §P41; over them the handshake ends.
func (s *Session) preAuth(n int) error {
	s.preAuthRead += n
	if n <= wire.PreAuthMaxFrame && s.preAuthRead <= wire.PreAuthBytes {
		return nil
	}
	err := fmt.Errorf("%w: a %d-byte frame, %d bytes before authentication (at most %d and %d)",
		ErrPreAuthLimit, n, s.preAuthRead, wire.PreAuthMaxFrame, wire.PreAuthBytes)
	s.reject(err, "Ended a handshake over the pre-authentication limits")
	return err
}

// belowTier says why frame b did not reach the opener.
func (s *Session) belowTier(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("empty frame: %w", wire.ErrTruncated)
	}
	return fmt.Errorf("tier %d frame in a tier %d session: %w", b[0]>>3&7, s.tier, wire.ErrWrongTier)
}

// Keepalive sends KEEPALIVE every interval and closes the session when
// nothing has been received for dead. It runs until ctx is done or the
// session closes; start it in its own goroutine.
func (s *Session) Keepalive(ctx context.Context, interval, dead time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.closed.Load() {
			return
		}
		if s.cfg.now().Sub(time.Unix(0, s.lastRecv.Load())) > dead {
			s.log(zerolog.WarnLevel).Dur("silent_for", dead).Msg("Closing a session whose peer stopped answering")
			s.shutdown(ErrDeadPeer)
			return
		}
		if err := s.Send(ctx, wire.OpKeepalive, nil); err != nil {
			s.log(zerolog.DebugLevel).Err(err).Msg("Failed to send a keepalive")
		}
		// A fresh key exchange at least every RekeyAfterTime (PROFILE.md
		// §P16): the initiator starts it.
		s.rekeyMu.Lock()
		due := s.dir == wire.InitiatorToResponder && s.rekey == nil && s.cfg.now().Sub(s.keyStart) >= wire.RekeyAfterTime
		s.rekeyMu.Unlock()
		if due {
			if err := s.Rekey(ctx); err != nil {
				s.log(zerolog.WarnLevel).Err(err).Msg("Failed to start a key exchange")
			}
		}
	}
}

// Close ends the session politely: SESSION_CLOSE, then the connection.
// The peer's SESSION_CLOSE_ACK is not awaited beyond ctx.
func (s *Session) Close(ctx context.Context) error {
	if s.closed.Load() {
		return nil
	}
	err := s.Send(ctx, wire.OpSessionClose, nil)
	s.shutdown(ErrClosed)
	return err
}

// Revoke tells the peer its session is revoked (SESSION_REVOKE) and ends it.
func (s *Session) Revoke(ctx context.Context) error {
	if s.closed.Load() {
		return nil
	}
	err := s.Send(ctx, wire.OpSessionRevoke, nil)
	s.shutdown(ErrRevoked)
	return err
}

// Abort ends the session at once without a word to the peer: for a peer
// that stopped reading, whose writes would block (closing the connection
// unblocks them).
func (s *Session) Abort() { s.shutdown(ErrDeadPeer) }

func (s *Session) shutdown(reason error) {
	s.closeOnce.Do(func() {
		if s.counted {
			s.cfg.Metrics.SessionClosed()
		}
		s.closeErr = reason
		s.closed.Store(true)
		s.conn.Close()
		if s.release != nil {
			s.release()
		}
	})
}
