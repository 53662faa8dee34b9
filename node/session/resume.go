package session

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
	"github.com/myclerk/myclerk-bridge/wire/ticket"
)

// Ticket is what an initiator keeps to resume a session later without a
// full handshake (PROFILE.md §P18): the opaque ticket, the resumption
// secret it stands for, and the peer and tier of the session it came from.
type Ticket struct {
	Ticket    [wire.TicketSize]byte
	Secret    [wire.KeySize]byte
	SessionID uint16
	Tier      wire.Tier
	Peer      *identity.Certificate
	Expires   time.Time
}

// Ticket returns the newest resumption ticket the responder gave this
// session, if any (it arrives with the first Recv after the handshake).
func (s *Session) Ticket() (Ticket, bool) {
	s.ticketMu.Lock()
	defer s.ticketMu.Unlock()
	if s.ticket == nil {
		return Ticket{}, false
	}
	return *s.ticket, true
}

func (s *Session) storeTicket(m Message) {
	var nt payload.NewTicket
	if err := nt.Unmarshal(m.Payload); err != nil {
		s.reject(err, "Refused a malformed ticket")
		return
	}
	s.ticketMu.Lock()
	defer s.ticketMu.Unlock()
	s.ticket = &Ticket{Ticket: nt.Ticket, Secret: s.resumption, SessionID: s.id, Tier: s.tier, Peer: s.peer,
		Expires: s.cfg.now().Add(time.Duration(nt.Lifetime) * time.Second)}
}

// Tickets is the responder's ticket issuer: the ticket keys, the record of
// tickets already used, and the lifetime of new tickets.
type Tickets struct {
	Keys     *ticket.Keyring
	Lifetime time.Duration // at most wire.TicketLifetime; 0 means that
	// Used records a ticket nonce and reports whether this was its first
	// use; it must be atomic (the store's MarkUsed). Nil keeps an
	// in-memory record, which a restart forgets.
	Used func(ctx context.Context, nonce [8]byte, expires time.Time) (bool, error)
	// Lookup finds a resumed peer's certificate (the store's node table);
	// nil leaves Session.Peer nil after a resume.
	Lookup func(ctx context.Context, id identity.NodeID) (*identity.Certificate, error)

	mu   sync.Mutex
	used map[[8]byte]time.Time
}

func (t *Tickets) markUsed(ctx context.Context, nonce [8]byte, expires, now time.Time) (bool, error) {
	if t.Used != nil {
		return t.Used(ctx, nonce, expires)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.used == nil {
		t.used = map[[8]byte]time.Time{}
	}
	for n, e := range t.used {
		if !now.Before(e) {
			delete(t.used, n)
		}
	}
	if _, ok := t.used[nonce]; ok {
		return false, nil
	}
	t.used[nonce] = expires
	return true, nil
}

// issue seals a new ticket for s and sends it as SESSION_TICKET.
func (t *Tickets) issue(ctx context.Context, s *Session, peer identity.NodeID) error {
	key, ok := t.Keys.Current()
	if !ok {
		return nil // no ticket key: resumption is off
	}
	life := t.Lifetime
	if life <= 0 || life > wire.TicketLifetime {
		life = wire.TicketLifetime
	}
	now := s.cfg.now()
	c := ticket.Contents{ResumptionSecret: s.resumption, DeviceID: peer,
		IssuedAt: uint32(now.Unix()), ExpiresAt: uint32(now.Add(life).Unix())}
	var gcmNonce [ticket.NonceSize]byte
	if _, err := io.ReadFull(s.cfg.Rand, c.TicketNonce[:]); err != nil {
		return err
	}
	if _, err := io.ReadFull(s.cfg.Rand, gcmNonce[:]); err != nil {
		return err
	}
	tk, err := ticket.Seal(key, gcmNonce, c)
	if err != nil {
		return err
	}
	b, err := (&payload.NewTicket{Ticket: tk, Lifetime: uint32(life / time.Second)}).Marshal()
	if err != nil {
		return err
	}
	return s.Send(ctx, wire.OpSessionTicket, b)
}

// Resume opens a session from a ticket of an earlier one (SESSION_RESUME /
// SESSION_RESUMED, PROFILE.md §P18): fresh ephemeral keys and nonces, no
// identity exchange (the ticket's secret proves both ends). Each ticket
// works once.
func Resume(ctx context.Context, conn transport.Conn, cfg *Config, t Ticket) (*Session, error) {
	s, err := resume(ctx, conn, cfg, t)
	if err != nil {
		conn.Close()
	}
	return s, err
}

func resume(ctx context.Context, conn transport.Conn, cfg *Config, t Ticket) (*Session, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	eph, err := newEphemeral(cfg.Rand)
	if err != nil {
		return nil, err
	}
	resumeFrame, err := eph.hello(wire.OpSessionResume, 0, cfg.now(), &payload.SessionResume{OldSessionID: t.SessionID, Ticket: t.Ticket, Nonce: eph.nonce, Capabilities: cfg.Capabilities})
	if err != nil {
		return nil, err
	}
	resumedFrame, f, err := exchangeHello(ctx, conn, resumeFrame, wire.OpSessionResume, wire.OpSessionResumed)
	if err != nil {
		return nil, err
	}
	var r payload.SessionResumed
	if err := r.Unmarshal(f.Body); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	tier := wire.Tier(r.SelectedTier)
	if tier < max(cfg.Floor, wire.Tier3) {
		return nil, fmt.Errorf("%w: resumed at tier %d", ErrBelowFloor, tier)
	}
	aead, err := selectedAEAD(cfg.Capabilities, r.SelectedCapabilities)
	if err != nil {
		return nil, err
	}
	shared, err := eph.shared(f.Header.PublicKey)
	if err != nil {
		return nil, err
	}
	sec := wire.SessionSecrets{
		SessionKey:     wire.ResumedSessionKey(shared, t.Secret, eph.nonce, r.Nonce),
		TranscriptHash: wire.TranscriptHash(resumeFrame, resumedFrame),
		InitiatorKey:   eph.pub,
		ResponderKey:   f.Header.PublicKey,
		AEAD:           aead,
	}
	skew := time.Duration(int64(f.Header.Timestamp)-cfg.now().Unix()) * time.Second
	s := newSession(conn, cfg, wire.InitiatorToResponder, r.SessionID, tier, t.Tier, r.SelectedCapabilities, &sec, skew)
	s.peer = t.Peer
	// Key confirmation: the responder's first sealed frame (its new
	// ticket, or a NOP) must open under the resumed keys.
	if err := s.Send(ctx, wire.OpNOP, nil); err != nil {
		return nil, err
	}
	m, err := s.readHandshakeMessage(ctx)
	if err != nil {
		return nil, err
	}
	if m.Op != wire.OpSessionTicket && m.Op != wire.OpNOP {
		return nil, fmt.Errorf("%w: got %v after SESSION_RESUMED", ErrHandshake, m.Op)
	}
	if m.Op == wire.OpSessionTicket {
		s.storeTicket(m)
	}
	s.established()
	s.log(zerolog.InfoLevel).Int("tier", int(tier)).Str("peer", peerName(s.peer)).Msg("Resumed a session")
	return s, nil
}

// acceptResume is the responder's side of SESSION_RESUME.
func (r *Responder) acceptResume(ctx context.Context, conn transport.Conn, ids *IDs, resumeFrame []byte, f *wire.Frame, skew time.Duration) (*Session, error) {
	cfg := r.Config
	now := cfg.now()
	fail := func(code wire.Code, msg string, err error) (*Session, error) {
		plainError(ctx, conn, code, 0, msg)
		return nil, err
	}
	if r.Tickets == nil {
		return fail(wire.CodeUnsupported, "resumption is off", fmt.Errorf("%w: resumption is off", ErrHandshake))
	}
	var req payload.SessionResume
	if err := req.Unmarshal(f.Body); err != nil {
		return fail(wire.CodeBadRequest, "malformed SESSION_RESUME", fmt.Errorf("%w: %w", ErrHandshake, err))
	}
	c, err := ticket.Open(r.Tickets.Keys, req.Ticket[:], now)
	if err != nil {
		return fail(wire.CodeInvalidSession, "ticket refused: run a full handshake", err)
	}
	first, err := r.Tickets.markUsed(ctx, c.TicketNonce, time.Unix(int64(c.ExpiresAt), 0), now)
	if err != nil {
		return fail(wire.CodeInternalError, "ticket check failed", err)
	}
	if !first {
		return fail(wire.CodeInvalidSession, "ticket already used: run a full handshake", fmt.Errorf("%w: ticket used before", wire.ErrTicket))
	}
	peerID := identity.NodeID(c.DeviceID)
	if cfg.Revoked != nil && cfg.Revoked(peerID) {
		return fail(wire.CodeUnauthorized, "node revoked", fmt.Errorf("%w: %s", identity.ErrRevoked, peerID))
	}
	var peer *identity.Certificate
	if r.Tickets.Lookup != nil {
		if peer, err = r.Tickets.Lookup(ctx, peerID); err != nil {
			return fail(wire.CodeUnauthorized, "unknown node", err)
		}
	}
	id, err := ids.Alloc()
	if err != nil {
		return fail(wire.CodeServiceUnavailable, "no session ID free", err)
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
	tier := cfg.Tier
	resumed := payload.SessionResumed{SessionID: id, Nonce: eph.nonce, SelectedTier: uint8(tier)}
	if req.Capabilities != nil {
		// Negotiated afresh, as in SESSION_ACK (§P23); an initiator that
		// offered nothing gets nothing selected and ChaCha20-Poly1305.
		if resumed.SelectedCapabilities = payload.Negotiate(req.Capabilities, cfg.Capabilities); resumed.SelectedCapabilities == nil {
			resumed.SelectedCapabilities = []payload.Capability{}
		}
	}
	resumedFrame, err := eph.hello(wire.OpSessionResumed, id, now, &resumed)
	if err != nil {
		return nil, err
	}
	shared, err := eph.shared(f.Header.PublicKey)
	if err != nil {
		return fail(wire.CodeBadRequest, "invalid public key", err)
	}
	if err := conn.WriteFrame(ctx, resumedFrame); err != nil {
		return nil, fmt.Errorf("failed to send SESSION_RESUMED: %w", err)
	}
	sec := wire.SessionSecrets{
		SessionKey:     wire.ResumedSessionKey(shared, c.ResumptionSecret, req.Nonce, eph.nonce),
		TranscriptHash: wire.TranscriptHash(resumeFrame, resumedFrame),
		InitiatorKey:   f.Header.PublicKey,
		ResponderKey:   eph.pub,
		AEAD:           payload.SelectAEAD(resumed.SelectedCapabilities),
	}
	s := newSession(conn, cfg, wire.ResponderToInitiator, id, tier, tier, resumed.SelectedCapabilities, &sec, skew)
	s.release = func() { ids.Free(id) }
	s.peer = peer
	// Key confirmation: the initiator's NOP must open under the resumed keys.
	m, err := s.readHandshakeMessage(ctx)
	if err != nil {
		return nil, err
	}
	if m.Op != wire.OpNOP {
		return nil, fmt.Errorf("%w: got %v after SESSION_RESUMED", ErrHandshake, m.Op)
	}
	if err := r.Tickets.issue(ctx, s, peerID); err != nil {
		return nil, err
	}
	if _, ok := r.Tickets.Keys.Current(); !ok {
		if err := s.Send(ctx, wire.OpNOP, nil); err != nil {
			return nil, err
		}
	}
	ok = true
	s.established()
	s.log(zerolog.InfoLevel).Int("tier", int(tier)).Str("peer", peerName(peer)).Msg("Resumed a session")
	return s, nil
}
