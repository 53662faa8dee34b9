package session

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// oldKeysGrace is how long the keys a re-handshake replaced still open
// frames that were in flight during it.
const oldKeysGrace = 2 * time.Minute

// ErrRekeyBusy is returned when a re-handshake is already under way.
var ErrRekeyBusy = errors.New("session: a key exchange is already under way")

// rekeyState is the initiator's half-finished re-handshake.
type rekeyState struct {
	priv  *ecdh.PrivateKey
	init  []byte // the KEY_EXCHANGE_INIT payload
	nonce [8]byte
}

// Rekey starts the in-session re-handshake (KEY_EXCHANGE_INIT/RESPONSE/
// COMPLETE, PROFILE.md §P38): fresh X25519 keys under the protection of
// the current ones, replacing the session's keys for forward secrecy. Only
// the end that opened the session starts one; the other answers in Recv.
// It returns once INIT is sent; the switch happens when RESPONSE arrives.
func (s *Session) Rekey(ctx context.Context) error {
	if s.dir != wire.InitiatorToResponder {
		return errors.New("session: only the initiator starts a key exchange")
	}
	s.rekeyMu.Lock()
	if s.rekey != nil {
		s.rekeyMu.Unlock()
		return ErrRekeyBusy
	}
	priv, err := wire.GenerateKey(s.cfg.Rand)
	if err != nil {
		s.rekeyMu.Unlock()
		return err
	}
	st := &rekeyState{priv: priv}
	if _, err := io.ReadFull(s.cfg.Rand, st.nonce[:]); err != nil {
		s.rekeyMu.Unlock()
		return err
	}
	st.init, err = (&payload.KeyExchange{PublicKey: [32]byte(priv.PublicKey().Bytes()), Nonce: st.nonce}).Marshal()
	if err != nil {
		s.rekeyMu.Unlock()
		return err
	}
	s.rekey = st
	s.rekeyMu.Unlock()
	return s.Send(ctx, wire.OpKeyExchangeInit, st.init)
}

// Rekeys returns how many re-handshakes this session completed.
func (s *Session) Rekeys() int64 { return s.rekeys.Load() }

// newKeys derives the replacement secrets of a re-handshake.
func (s *Session) newKeys(shared [wire.KeySize]byte, nI, nR [8]byte, initP, respP []byte, initPub, respPub [32]byte) *wire.SessionSecrets {
	return &wire.SessionSecrets{
		SessionKey:     wire.SessionKey(shared, nI, nR),
		TranscriptHash: wire.RekeyTranscript(s.th, initP, respP),
		InitiatorKey:   initPub,
		ResponderKey:   respPub,
		AEAD:           s.aead, // a re-handshake keeps the session's cipher
	}
}

// installOpener switches receiving to new secrets, keeping the old opener
// for frames in flight (the caller has switched the sealer under sendMu).
func (s *Session) installOpener(sec *wire.SessionSecrets, now time.Time) {
	s.oldOpener, s.oldUntil = s.opener, now.Add(oldKeysGrace)
	o := wire.NewOpener(sec, 1-s.dir, now)
	o.Skew = s.opener.Skew
	s.opener = o
	s.th = sec.TranscriptHash
	s.resumption = wire.ResumptionSecret(sec.SessionKey, sec.TranscriptHash)
	s.rekeyMu.Lock()
	s.keyStart = now // Keepalive reads it
	s.rekey = nil    // the initiator's exchange is over
	s.rekeyMu.Unlock()
}

// handleRekey runs the responder's and the initiator's steps; it is called
// from Recv's goroutine.
func (s *Session) handleRekey(ctx context.Context, m Message) error {
	now := s.cfg.now()
	switch m.Op {
	case wire.OpKeyExchangeInit:
		if s.dir != wire.ResponderToInitiator {
			return fmt.Errorf("%w: KEY_EXCHANGE_INIT from the responder", ErrHandshake)
		}
		var in payload.KeyExchange
		if err := in.Unmarshal(m.Payload); err != nil {
			s.sendError(ctx, wire.CodeBadRequest, m.Counter, 0, "malformed KEY_EXCHANGE_INIT")
			return nil
		}
		priv, err := wire.GenerateKey(s.cfg.Rand)
		if err != nil {
			return err
		}
		var nR [8]byte
		if _, err := io.ReadFull(s.cfg.Rand, nR[:]); err != nil {
			return err
		}
		shared, err := wire.SharedSecret(priv, in.PublicKey)
		if err != nil {
			s.sendError(ctx, wire.CodeBadRequest, m.Counter, 0, "invalid public key")
			return nil
		}
		resp, err := (&payload.KeyExchange{PublicKey: [32]byte(priv.PublicKey().Bytes()), Nonce: nR}).Marshal()
		if err != nil {
			return err
		}
		sec := s.newKeys(shared, in.Nonce, nR, m.Payload, resp, in.PublicKey, [32]byte(priv.PublicKey().Bytes()))
		// RESPONSE goes out under the old keys, everything after under the new.
		s.sendMu.Lock()
		err = s.sealAndWrite(ctx, &wire.Header{Tier: s.sendTier(wire.OpKeyExchangeResponse), Encrypted: true, Op: wire.OpKeyExchangeResponse, SessionID: s.id}, nil, resp, now)
		if err == nil {
			s.sealer = wire.NewSealer(sec, s.dir, now)
		}
		s.sendMu.Unlock()
		if err != nil {
			return err
		}
		s.installOpener(sec, now)
		return nil
	case wire.OpKeyExchangeResponse:
		// s.rekey stays set until the new keys are in (installOpener
		// clears it with keyStart), so that Keepalive never sees the
		// exchange finished with the old keys' age and starts another.
		s.rekeyMu.Lock()
		st := s.rekey
		s.rekeyMu.Unlock()
		abandon := func() {
			s.rekeyMu.Lock()
			s.rekey = nil
			s.rekeyMu.Unlock()
		}
		var resp payload.KeyExchange
		if st == nil || resp.Unmarshal(m.Payload) != nil {
			if st != nil {
				abandon()
			}
			s.reject(fmt.Errorf("unexpected KEY_EXCHANGE_RESPONSE: %w", wire.ErrMalformed), "Refused a key exchange answer")
			return nil
		}
		shared, err := wire.SharedSecret(st.priv, resp.PublicKey)
		if err != nil {
			abandon()
			s.reject(err, "Refused a key exchange answer")
			return nil
		}
		sec := s.newKeys(shared, st.nonce, resp.Nonce, st.init, m.Payload, [32]byte(st.priv.PublicKey().Bytes()), resp.PublicKey)
		s.sendMu.Lock()
		s.sealer = wire.NewSealer(sec, s.dir, now)
		s.sendMu.Unlock()
		s.installOpener(sec, now)
		s.rekeys.Add(1)
		s.log(zerolog.InfoLevel).Msg("Replaced the session keys with a fresh key exchange")
		// COMPLETE, under the new keys, confirms them to the responder.
		return s.Send(ctx, wire.OpKeyExchangeComplete, []byte{0x80})
	case wire.OpKeyExchangeComplete:
		if s.oldOpener == nil {
			return nil
		}
		s.rekeys.Add(1)
		s.log(zerolog.InfoLevel).Msg("Replaced the session keys with a fresh key exchange")
		return nil
	}
	return nil
}
