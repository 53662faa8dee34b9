package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/frag"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// handshakeTimeout bounds a dialer's whole handshake when the caller's
// context has no deadline (a responder's is bounded by HandshakeTimeout
// in any case): a peer that stalls mid-handshake holds nothing for long.
const handshakeTimeout = wire.HandshakeTimeout

// refuseTimeout bounds writing the ERROR that refuses a connection over
// the admission caps: a peer that does not read gets nothing more.
const refuseTimeout = time.Second

// Dial runs the initiator's side of a session over conn: SESSION_INIT,
// SESSION_ACK, then both identity proofs. On any failure the connection
// is closed.
func Dial(ctx context.Context, conn transport.Conn, cfg *Config) (*Session, error) {
	s, err := dial(ctx, conn, cfg, (*Session).proveAndVerify)
	if err != nil {
		conn.Close()
	}
	return s, err
}

func dial(ctx context.Context, conn transport.Conn, cfg *Config, after func(*Session, context.Context, [32]byte) error) (*Session, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()

	eph, err := newEphemeral(cfg.Rand)
	if err != nil {
		return nil, err
	}
	init := payload.SessionInit{Nonce: eph.nonce, Timestamp: uint64(cfg.now().Unix()), Capabilities: cfg.Capabilities,
		RequestedTier: uint8(cfg.Tier), HasRequestedTier: true}
	if cfg.Identity != nil {
		init.DeviceID, init.HasDeviceID = cfg.Identity.Cert.Node, true
	}
	initFrame, err := eph.hello(wire.OpSessionInit, 0, cfg.now(), &init)
	if err != nil {
		return nil, err
	}
	ackFrame, f, err := exchangeHello(ctx, conn, initFrame, wire.OpSessionInit, wire.OpSessionAck)
	if err != nil {
		return nil, err
	}
	var ack payload.SessionAck
	if err := ack.Unmarshal(f.Body); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if ack.SessionID != f.Header.SessionID {
		return nil, fmt.Errorf("%w: session ID %d in the header, %d in the payload", ErrHandshake, f.Header.SessionID, ack.SessionID)
	}
	tier := wire.Tier(ack.SelectedTier)
	if tier < max(cfg.Floor, wire.Tier3) {
		return nil, fmt.Errorf("%w: the responder selected tier %d, the floor is %d", ErrBelowFloor, tier, max(cfg.Floor, wire.Tier3))
	}
	if tier < cfg.Tier {
		cfg.Log.Warn().Int("requested_tier", int(cfg.Tier)).Int("selected_tier", int(tier)).Msg("The responder selected a lower tier than requested")
	}
	aead, err := selectedAEAD(cfg.Capabilities, ack.SelectedCapabilities)
	if err != nil {
		return nil, err
	}
	shared, err := eph.shared(f.Header.PublicKey)
	if err != nil {
		return nil, err
	}
	sec := wire.SessionSecrets{
		SessionKey:     wire.SessionKey(shared, eph.nonce, ack.Nonce),
		TranscriptHash: wire.TranscriptHash(initFrame, ackFrame),
		InitiatorKey:   eph.pub,
		ResponderKey:   f.Header.PublicKey,
		AEAD:           aead,
	}
	skew := time.Duration(int64(f.Header.Timestamp)-cfg.now().Unix()) * time.Second
	s := newSession(conn, cfg, wire.InitiatorToResponder, ack.SessionID, tier, cfg.Tier, ack.SelectedCapabilities, &sec, skew)
	if err := after(s, ctx, sec.TranscriptHash); err != nil {
		return nil, err
	}
	s.established()
	s.log(zerolog.InfoLevel).Int("tier", int(tier)).Stringer("aead", s.aead).Str("peer", peerName(s.peer)).Msg("Opened a session")
	return s, nil
}

// Responder is the responder's side: it allocates session IDs within its
// scope (one peer connection, PROFILE.md §P22) and answers handshakes.
type Responder struct {
	Config *Config
	IDs    *IDs
	// Enrol, when set, handles a handshake whose first sealed frame is
	// ENROL_REQUEST instead of SESSION_AUTH (a node joining the family).
	Enrol func(ctx context.Context, s *Session, req *payload.EnrolRequest, th [32]byte) error
	// Tickets, when set, hands each authenticated initiator a resumption
	// ticket and accepts SESSION_RESUME.
	Tickets *Tickets
	// HandshakeTimeout bounds each handshake, even under a caller's
	// longer deadline; 0 means wire.HandshakeTimeout.
	HandshakeTimeout time.Duration
	// Admission, when set, caps the handshakes in progress (PROFILE.md
	// §P41): a connection over a cap is refused at once.
	Admission *Admission
}

// Accept answers one handshake on conn. On failure the connection is
// closed; the initiator was told why when that is safe (PROFILE.md §P19).
func (r *Responder) Accept(ctx context.Context, conn transport.Conn) (*Session, error) {
	if r.Admission != nil {
		release, err := r.Admission.Admit(conn.RemoteAddr())
		if err != nil {
			r.Config.Metrics.Rejected(wire.ReasonOf(err))
			wctx, cancel := context.WithTimeout(ctx, refuseTimeout)
			plainError(wctx, conn, wire.CodeServiceUnavailable, 0, "too many handshakes: try again later")
			cancel()
			conn.Close()
			return nil, err
		}
		defer release()
	}
	s, err := r.accept(ctx, conn)
	if err != nil {
		conn.Close()
	}
	return s, err
}

func (r *Responder) accept(ctx context.Context, conn transport.Conn) (*Session, error) {
	cfg := r.Config
	if err := cfg.check(); err != nil {
		return nil, err
	}
	timeout := r.HandshakeTimeout
	if timeout <= 0 {
		timeout = wire.HandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout) // the earlier of the two deadlines
	defer cancel()
	// A stranger's frames are refused over PreAuthMaxFrame before the
	// transport holds them, where it can (§P41); trusted lifts it.
	if l, ok := conn.(transport.ReadLimiter); ok {
		l.SetReadLimit(wire.PreAuthMaxFrame)
	}

	initFrame, err := conn.ReadFrame(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to read SESSION_INIT: %w", err)
	}
	now := cfg.now()
	f, err := wire.ParseHandshake(initFrame)
	if err != nil || (f.Header.Op != wire.OpSessionInit && f.Header.Op != wire.OpSessionResume) {
		plainError(ctx, conn, wire.CodeBadRequest, 0, "want SESSION_INIT or SESSION_RESUME")
		return nil, fmt.Errorf("%w: want SESSION_INIT (%v)", ErrHandshake, err)
	}
	skew := time.Duration(int64(f.Header.Timestamp)-now.Unix()) * time.Second
	if skew > wire.TimestampSkew || skew < -wire.TimestampSkew {
		plainError(ctx, conn, wire.CodeUnauthorized, 0, "clock off by more than 5 minutes")
		return nil, fmt.Errorf("%w: %w: peer clock off by %v", ErrHandshake, wire.ErrStale, skew)
	}
	ids := r.IDs
	if ids == nil {
		ids = &IDs{} // this connection is its own scope
	}
	if f.Header.Op == wire.OpSessionResume {
		return r.acceptResume(ctx, conn, ids, initFrame, &f, skew)
	}
	var init payload.SessionInit
	if err := init.Unmarshal(f.Body); err != nil {
		plainError(ctx, conn, wire.CodeBadRequest, 0, "malformed SESSION_INIT")
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	requested := cfg.Tier
	if init.HasRequestedTier {
		requested = wire.Tier(init.RequestedTier)
	}
	floor := max(cfg.Floor, wire.Tier3)
	if requested < floor {
		plainError(ctx, conn, wire.CodeForbidden, floor, fmt.Sprintf("this node needs tier %d", floor))
		return nil, fmt.Errorf("%w: the initiator asked for tier %d, the floor is %d", ErrBelowFloor, requested, floor)
	}
	tier := min(cfg.Tier, requested)

	id, err := ids.Alloc()
	if err != nil {
		plainError(ctx, conn, wire.CodeServiceUnavailable, 0, "no session ID free")
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			ids.Free(id)
		}
	}()
	eph, err := newEphemeral(cfg.Rand)
	if err != nil {
		return nil, err
	}
	ack := payload.SessionAck{SessionID: id, Nonce: eph.nonce, SelectedTier: uint8(tier),
		SelectedCapabilities: payload.Negotiate(init.Capabilities, cfg.Capabilities)}
	ackFrame, err := eph.hello(wire.OpSessionAck, id, now, &ack)
	if err != nil {
		return nil, err
	}
	shared, err := eph.shared(f.Header.PublicKey)
	if err != nil {
		plainError(ctx, conn, wire.CodeBadRequest, 0, "invalid public key")
		return nil, err
	}
	if err := conn.WriteFrame(ctx, ackFrame); err != nil {
		return nil, fmt.Errorf("failed to send SESSION_ACK: %w", err)
	}
	sec := wire.SessionSecrets{
		SessionKey:     wire.SessionKey(shared, init.Nonce, eph.nonce),
		TranscriptHash: wire.TranscriptHash(initFrame, ackFrame),
		InitiatorKey:   f.Header.PublicKey,
		ResponderKey:   eph.pub,
		AEAD:           payload.SelectAEAD(ack.SelectedCapabilities),
	}
	s := newSession(conn, cfg, wire.ResponderToInitiator, id, tier, requested, ack.SelectedCapabilities, &sec, skew)
	s.release = func() { ids.Free(id) }

	first, err := s.readHandshakeMessage(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case first.Op == wire.OpSessionAuth:
		if err := s.verifyAuth(ctx, first, sec.TranscriptHash); err != nil {
			return nil, err
		}
		s.trusted() // before our SESSION_AUTH: the peer may send anything after it
		if err := s.sendAuth(ctx, sec.TranscriptHash); err != nil {
			return nil, err
		}
		if r.Tickets != nil {
			if err := r.Tickets.issue(ctx, s, s.peer.Node); err != nil {
				return nil, err
			}
		}
	case first.Op == wire.OpEnrolRequest && r.Enrol != nil:
		var req payload.EnrolRequest
		if err := req.Unmarshal(first.Payload); err != nil {
			s.sendError(ctx, wire.CodeBadRequest, first.Counter, 0, "malformed ENROL_REQUEST")
			return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
		}
		if err := r.Enrol(ctx, s, &req, sec.TranscriptHash); err != nil {
			return nil, err
		}
	default:
		s.sendError(ctx, wire.CodeUnauthorized, first.Counter, 0, "SESSION_AUTH required")
		return nil, fmt.Errorf("%w: first sealed frame is %v, want SESSION_AUTH", ErrHandshake, first.Op)
	}
	ok = true
	s.established()
	s.log(zerolog.InfoLevel).Int("tier", int(tier)).Stringer("aead", s.aead).Str("peer", peerName(s.peer)).Msg("Accepted a session")
	return s, nil
}

// established ends the handshake phase and counts the session. The peer
// is authenticated now: it gets the full reassembly limits.
func (s *Session) established() {
	s.trusted()
	s.handshaking = false
	s.reasm = frag.NewReassembler(frag.DefaultLimits())
	if s.closed.Load() {
		return // an enrolment session ends with its handshake
	}
	s.counted = true
	s.cfg.Metrics.SessionOpened()
}

// trusted lifts the transport's limit on frames once the peer is
// authenticated.
func (s *Session) trusted() {
	if l, ok := s.conn.(transport.ReadLimiter); ok {
		l.SetReadLimit(wire.MaxFrameSize)
	}
}

// readHandshakeMessage reads the next application message during the
// handshake, turning an ERROR into an error.
func (s *Session) readHandshakeMessage(ctx context.Context) (Message, error) {
	m, err := s.Recv(ctx)
	if err != nil {
		return m, err
	}
	if m.Op == wire.OpError {
		var e payload.Error
		if e.Unmarshal(m.Payload) == nil {
			return m, fmt.Errorf("%w: %v: %s", ErrPeerError, e.Code, e.Message)
		}
		return m, ErrPeerError
	}
	return m, nil
}

// proveAndVerify is the initiator's identity exchange.
func (s *Session) proveAndVerify(ctx context.Context, th [32]byte) error {
	if err := s.sendAuth(ctx, th); err != nil {
		return err
	}
	m, err := s.readHandshakeMessage(ctx)
	if err != nil {
		return err
	}
	if m.Op != wire.OpSessionAuth {
		return fmt.Errorf("%w: got %v, want SESSION_AUTH", ErrHandshake, m.Op)
	}
	return s.verifyAuth(ctx, m, th)
}

func (s *Session) sendAuth(ctx context.Context, th [32]byte) error {
	if s.cfg.Identity == nil {
		return errors.New("session: no identity to prove")
	}
	cert, err := s.cfg.Identity.Cert.Marshal()
	if err != nil {
		return err
	}
	a := payload.Auth{Certificate: cert, Signature: [64]byte(s.cfg.Identity.Prove(s.dir, th))}
	b, err := a.Marshal()
	if err != nil {
		return err
	}
	return s.Send(ctx, wire.OpSessionAuth, b)
}

func (s *Session) verifyAuth(ctx context.Context, m Message, th [32]byte) error {
	var a payload.Auth
	if err := a.Unmarshal(m.Payload); err != nil {
		s.sendError(ctx, wire.CodeBadRequest, m.Counter, 0, "malformed SESSION_AUTH")
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	root := s.cfg.Root
	if s.cfg.Foreign != nil {
		if pc, err := identity.ParseCertificate(a.Certificate); err == nil && pc.Family != identity.FamilyOf(root) {
			if k, ok := s.cfg.Foreign(pc.Family); ok {
				root = k
			}
		}
	}
	c, err := identity.VerifyPeer(root, a.Certificate, a.Signature[:], 1-s.dir, th, s.cfg.now(), s.cfg.Revoked)
	if err != nil {
		s.reject(err, "Refused a peer identity")
		s.sendError(ctx, wire.CodeOf(err), m.Counter, 0, wire.ReasonOf(err))
		return err
	}
	if len(s.cfg.PeerRoles) > 0 && !slices.Contains(s.cfg.PeerRoles, c.Role) {
		err := fmt.Errorf("%w: %s is a %v, want %v", ErrPeerRole, peerName(c), c.Role, s.cfg.PeerRoles)
		s.reject(err, "Refused a peer identity")
		s.sendError(ctx, wire.CodeOf(err), m.Counter, 0, wire.ReasonOf(err))
		return err
	}
	s.peer = c
	return nil
}

// ErrPeerRole refuses a peer whose certificate has another role than the
// session wants (Config.PeerRoles).
var ErrPeerRole = &wire.Error{Code: wire.CodeUnauthorized, Reason: "the peer has the wrong role"}

// peerError turns a Tier 1-2 ERROR frame received during the handshake
// into an error; it returns nil for anything else.
func peerError(b []byte) error {
	if len(b) == 0 || wire.Tier(b[0]>>3&7).Sealed() {
		return nil
	}
	f, err := wire.Parse(b)
	if err != nil || f.Header.Op != wire.OpError {
		return nil
	}
	var e payload.Error
	if err := e.Unmarshal(f.Body); err != nil {
		return fmt.Errorf("%w: %w", ErrPeerError, err)
	}
	err = fmt.Errorf("%w: %v: %s", ErrPeerError, e.Code, e.Message)
	if e.Code == wire.CodeForbidden && e.HasRequiredTier {
		err = fmt.Errorf("%w (required tier %d)", err, e.RequiredTier)
	}
	return err
}

// plainError answers a handshake that failed before any key exists with a
// Tier 1 ERROR. It changes no state (PROFILE.md §P19).
func plainError(ctx context.Context, conn transport.Conn, code wire.Code, required wire.Tier, msg string) {
	e := payload.Error{Code: code, Message: msg}
	if required != 0 {
		e.RequiredTier, e.HasRequiredTier = uint8(required), true
	}
	p, err := e.Marshal()
	if err != nil {
		return
	}
	b, err := wire.AppendPlain(nil, &wire.Header{Tier: wire.Tier1, Op: wire.OpError}, nil, p)
	if err == nil {
		conn.WriteFrame(ctx, b)
	}
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, handshakeTimeout)
}

func peerName(c *identity.Certificate) string {
	if c == nil {
		return "(not authenticated)"
	}
	return c.Name + " " + c.Node.String()
}
