package session

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/transport"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// CertLifetime is how long an enrolment certificate is valid; nodes renew
// before it ends.
const CertLifetime = 365 * 24 * time.Hour

// Enrol joins a family (PROFILE.md §P35): it runs the handshake without an
// identity, sends ENROL_REQUEST with a fresh node key and name proven by
// the pairing code, and checks that ENROL_RESPONSE's certificate and root
// key come from the holder of the same code. It returns the node's new
// identity and the family root key to pin. cfg.Root and cfg.Identity are
// ignored.
func Enrol(ctx context.Context, conn transport.Conn, cfg Config, code identity.PairingCode, name string, role identity.Role) (*identity.Identity, ed25519.PublicKey, error) {
	priv, _, err := identity.NewNodeKey(cfg.Rand)
	if err != nil {
		return nil, nil, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	cfg.Identity = nil
	cfg.Root = make(ed25519.PublicKey, ed25519.PublicKeySize) // not used before the response
	var id *identity.Identity
	var root ed25519.PublicKey
	_, err = dial(ctx, conn, &cfg, func(s *Session, ctx context.Context, th [32]byte) error {
		req := payload.EnrolRequest{Name: name, PublicKey: [32]byte(pub), Role: uint8(role),
			Proof: [32]byte(code.Proof(wire.InitiatorToResponder, th, pub, []byte(name)))}
		b, err := req.Marshal()
		if err != nil {
			return err
		}
		if err := s.Send(ctx, wire.OpEnrolRequest, b); err != nil {
			return err
		}
		m, err := s.readHandshakeMessage(ctx)
		if err != nil {
			return err
		}
		var resp payload.EnrolResponse
		if m.Op != wire.OpEnrolResponse || resp.Unmarshal(m.Payload) != nil {
			return fmt.Errorf("%w: want ENROL_RESPONSE, got %v", ErrHandshake, m.Op)
		}
		if !code.Check(resp.Proof[:], wire.ResponderToInitiator, th, resp.Certificate, resp.RootKey[:]) {
			return fmt.Errorf("%w: the hub's answer is not proven by the pairing code", identity.ErrPairing)
		}
		root = ed25519.PublicKey(resp.RootKey[:])
		c, err := identity.ParseCertificate(resp.Certificate)
		if err != nil {
			return err
		}
		if err := c.Verify(root, cfg.now()); err != nil {
			return err
		}
		if !c.PublicKey.Equal(pub) || c.Name != name {
			return fmt.Errorf("%w: the certificate is for another key or name", identity.ErrCertificate)
		}
		id = &identity.Identity{Cert: c, Private: priv}
		s.shutdown(ErrClosed) // enrolment sessions end here
		return nil
	})
	conn.Close()
	if err != nil {
		return nil, nil, err
	}
	return id, root, nil
}

// CodeBook holds outstanding pairing codes: identity.Codes in memory, or
// the store's CodeQuery, shared with `myclerk-bridge invite`. Redeem finds
// the code whose proof matches, asks accept whether the enrolment may go
// on (given the role the code was made for and the name it is bound to,
// "" for none) and only then uses the code up: a refused enrolment leaves
// it valid, so the person may try again (with another name, say).
type CodeBook interface {
	Redeem(proof []byte, th [32]byte, pub ed25519.PublicKey, name string, now time.Time, accept func(role identity.Role, bound string) error) (identity.PairingCode, identity.Role, error)
}

// ErrCodeRole refuses an enrolment that asks for another role than its
// code was made for.
var ErrCodeRole = &wire.Error{Code: wire.CodeForbidden, Reason: "the pairing code is for another role"}

// Refusals of a name a code may not enrol (PROFILE.md §P35). Like every
// refusal of the accept callback they come before the code is used, so it
// stays valid.
var (
	// ErrCodeName: the code is bound to another name.
	ErrCodeName = &wire.Error{Code: wire.CodeForbidden, Reason: "the pairing code is for another name"}
	// ErrAdminCode: the name is an admin's (acl.admins), which carries
	// admin rights, and the code is bound to no name.
	ErrAdminCode = &wire.Error{Code: wire.CodeForbidden, Reason: "an admin's name needs a pairing code made for it"}
	// ErrMatrixName: Matrix user IDs name the bridge's members, which the
	// hub issues itself (runtime.Hub.IssueMember), never a paired node.
	ErrMatrixName = &wire.Error{Code: wire.CodeBadRequest, Reason: "a Matrix user ID is not enrolled with a pairing code"}
)

// ErrKeyEnrolled refuses an enrolment whose public key is the hub's or a
// non-revoked node's (PROFILE.md §P35). The key needs no proof of
// possession, and the NATS user table is keyed by it (§P36): with the
// hub's key the hub would get a node's subjects, with a node's that node
// the newcomer's. Like the other refusals it leaves the code valid.
var ErrKeyEnrolled = &wire.Error{Code: wire.CodeConflict, Reason: "this key is already enrolled"}

// ErrNotStored answers an enrolment the hub could not record: no
// certificate is sent, since one the admin can neither see nor revoke
// must not exist.
var ErrNotStored = &wire.Error{Code: wire.CodeServiceUnavailable, Reason: "the hub could not record the enrolment; try again"}

// Enroller is the hub's side of enrolment: plug its Handle into
// Responder.Enrol.
type Enroller struct {
	Root  *identity.Root
	Codes CodeBook
	// NameFree refuses a name that is taken (identity.ErrNameTaken). It
	// runs once the pairing code's proof holds and before the code is
	// used; nil takes every valid name.
	NameFree func(ctx context.Context, name string) error
	// KeyFree refuses a public key that is the hub's or a non-revoked
	// node's (ErrKeyEnrolled). It runs once the pairing code's proof
	// holds and before the code is used; nil takes every key.
	KeyFree func(ctx context.Context, pub ed25519.PublicKey) error
	// Admin returns the admin (as acl.admins spells it) whose name name
	// is in any ASCII case, or "": an admin's name enrols only with a
	// code bound to it. Nil: no name is an admin's.
	Admin func(name string) string
	// Enrolled records each new node (in the store) before the hub
	// answers. When it fails the new node is told ERROR with the error's
	// code (SERVICE_UNAVAILABLE for one without) and gets no certificate.
	// Nil records nothing.
	Enrolled func(ctx context.Context, c *identity.Certificate) error
}

// Handle checks an ENROL_REQUEST against the outstanding pairing codes and
// the name rules (PROFILE.md §P35), issues the certificate, has it
// recorded and only then answers ENROL_RESPONSE.
func (e *Enroller) Handle(ctx context.Context, s *Session, req *payload.EnrolRequest, th [32]byte) error {
	now := s.cfg.now()
	pub := ed25519.PublicKey(req.PublicKey[:])
	var admin string // the admin whose name req.Name is, when refused for it
	code, role, err := e.Codes.Redeem(req.Proof[:], th, pub, req.Name, now, func(role identity.Role, bound string) error {
		if req.Role != 0 && identity.Role(req.Role) != role {
			return fmt.Errorf("%w: the code was made for a %v, not a %v", ErrCodeRole, role, identity.Role(req.Role))
		}
		if bound != "" && req.Name != bound { // exact: the certificate's name is what acl.admins is compared with
			return fmt.Errorf("%w: \"%s\"", ErrCodeName, identity.Printable(req.Name))
		}
		if err := identity.CheckName(req.Name, role); err != nil {
			return err
		}
		if strings.HasPrefix(req.Name, "@") {
			return fmt.Errorf("%w: \"%s\"", ErrMatrixName, identity.Printable(req.Name))
		}
		if e.NameFree != nil { // an admin enrolled already: the name is taken
			if err := e.NameFree(ctx, req.Name); err != nil {
				return err
			}
		}
		if e.KeyFree != nil {
			if err := e.KeyFree(ctx, pub); err != nil {
				return err
			}
		}
		if bound == "" && e.Admin != nil {
			if admin = e.Admin(req.Name); admin != "" {
				return fmt.Errorf("%w: \"%s\" is the admin \"%s\"", ErrAdminCode, identity.Printable(req.Name), identity.Printable(admin))
			}
		}
		return nil
	})
	if err != nil {
		s.reject(err, "Refused an enrolment")
		s.sendError(ctx, wire.CodeOf(err), 0, 0, enrolRefusal(err, req.Name, admin))
		return err
	}
	_, nodeID, err := identity.NewNodeKey(s.cfg.Rand) // only the ID is used
	if err != nil {
		return err
	}
	c, err := e.Root.Issue(nodeID, role, req.Name, pub, now, CertLifetime)
	if err != nil {
		s.sendError(ctx, wire.CodeOf(err), 0, 0, wire.ReasonOf(err))
		return err
	}
	cb, err := c.Marshal()
	if err != nil {
		return err
	}
	if e.Enrolled != nil {
		if err := e.Enrolled(ctx, c); err != nil {
			var we *wire.Error
			if !errors.As(err, &we) || we.Code == wire.CodeInternalError {
				err = fmt.Errorf("%w: %w", ErrNotStored, err)
			}
			s.log(zerolog.ErrorLevel).Err(err).Str("name", identity.Printable(c.Name)).Stringer("node_id", c.Node).Msg("Failed to record an enrolment; no certificate sent")
			s.sendError(ctx, wire.CodeOf(err), 0, 0, enrolRefusal(err, req.Name, ""))
			return err
		}
	}
	resp := payload.EnrolResponse{Certificate: cb, RootKey: [32]byte(e.Root.Public()),
		Proof: [32]byte(code.Proof(wire.ResponderToInitiator, th, cb, e.Root.Public()))}
	b, err := resp.Marshal()
	if err != nil {
		return err
	}
	if err := s.Send(ctx, wire.OpEnrolResponse, b); err != nil {
		return err
	}
	s.peer = c
	s.log(zerolog.InfoLevel).Str("name", c.Name).Stringer("node_id", c.Node).Stringer("role", c.Role).Msg("Enrolled a new node")
	return errEnrolled
}

// enrolRefusal is what a refused node is told: the stable reason, and for
// a refused name what to do about it. admin is the admin whose name was
// refused for want of a bound code.
func enrolRefusal(err error, name, admin string) string {
	n := identity.Printable(name)
	switch {
	case errors.Is(err, ErrCodeName):
		return "the pairing code is for another name; pair with the name it was made for, as the hub's admin wrote it (the code is still valid)"
	case errors.Is(err, ErrAdminCode):
		a := identity.Printable(admin)
		return fmt.Sprintf("the name \"%s\" is the admin \"%s\"'s (acl.admins): it enrols only with a code made for it, `myclerk-bridge invite -name %s` on the hub (this code is still valid for another name)", n, a, a)
	case errors.Is(err, ErrMatrixName):
		return fmt.Sprintf("\"%s\" is a Matrix user ID: the bridge makes those members itself; pair with a plain name (the code is still valid)", n)
	case errors.Is(err, identity.ErrNameTaken):
		return fmt.Sprintf("the name \"%s\" is taken in this family; pair again with another name (the code is still valid)", n)
	case errors.Is(err, ErrKeyEnrolled):
		return "this key is already enrolled in this family; pair again with a fresh key (the code is still valid)"
	case errors.Is(err, identity.ErrName):
		return fmt.Sprintf("invalid name \"%s\": want 1-%d letters, digits, '_' or '-' (the code is still valid)", n, identity.MaxPlainName)
	}
	return wire.ReasonOf(err)
}

// errEnrolled ends the responder's handshake after a successful enrolment:
// the session served its purpose and is not handed to the caller.
var errEnrolled = errors.New("session: node enrolled")

// IsEnrolled reports whether Accept's error means "a node was enrolled".
func IsEnrolled(err error) bool { return errors.Is(err, errEnrolled) }
