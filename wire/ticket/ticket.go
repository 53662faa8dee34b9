// Package ticket seals and opens the session resumption tickets of the
// MyClerk wire profile (review item 18; the draft's 64-byte ticket of §7.3
// cannot hold an AES-256-GCM sealing of its own 64-byte plaintext).
//
// A ticket is wire.TicketSize (96) bytes:
//
//	key-id     4   big-endian; names the ticket-encryption key
//	nonce     12   AES-GCM nonce
//	sealed    64   AES-256-GCM of resumption-secret 32 ‖ device-id 16 ‖
//	               issued-at 4 ‖ expires-at 4 ‖ ticket-nonce 8
//	tag       16   AES-GCM tag
//
// with the 4 key-id bytes as additional data. Integers are big-endian;
// times are Unix seconds. Only the issuing server can read or forge a
// ticket; to the client it is opaque.
//
// The resumption secret is never a traffic key: the session layer derives
// the resumed session's keys from it and from fresh nonces of both sides.
// This package does not enforce single use: the session layer must remember
// each accepted TicketNonce until its ticket expires and refuse it a second
// time.
//
// The package does no I/O and keeps no state; clocks and randomness are
// parameters.
package ticket

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
)

// Sizes of the ticket's parts.
const (
	KeyIDSize     = 4
	NonceSize     = 12 // the AES-GCM nonce
	plaintextSize = 32 + 16 + 4 + 4 + 8
	headerSize    = KeyIDSize + NonceSize
	tagSize       = 16
)

// Both must hold, or wire.TicketSize and this package disagree.
var _ [wire.TicketSize - headerSize - plaintextSize - tagSize]struct{}
var _ [headerSize + plaintextSize + tagSize - wire.TicketSize]struct{}

// maxLifetime is wire.TicketLifetime in seconds.
const maxLifetime = uint32(wire.TicketLifetime / time.Second)

// Contents is what a ticket carries.
type Contents struct {
	// ResumptionSecret is the secret the resumed session's keys are
	// derived from. It is never used as a traffic key itself.
	ResumptionSecret [32]byte
	DeviceID         [16]byte
	// IssuedAt and ExpiresAt are Unix seconds. ExpiresAt must be after
	// IssuedAt, by at most wire.TicketLifetime.
	IssuedAt, ExpiresAt uint32
	// TicketNonce identifies the ticket for single-use tracking by the
	// session layer.
	TicketNonce [8]byte
}

// Key is a ticket-encryption key. A server keeps its keys in a Keyring and
// seals new tickets with the current one.
type Key struct {
	ID     uint32   // carried in clear in each ticket; unique within a keyring
	Secret [32]byte // AES-256 key
}

// Seal encrypts c into a ticket under k. gcmNonce must never repeat under
// one key: a counter, or 12 random bytes for at most 2^32 tickets per key
// (NIST SP 800-38D §8.3); rotate keys well before that. It rejects contents
// whose ExpiresAt is not after IssuedAt or whose lifetime exceeds
// wire.TicketLifetime, with an error wrapping wire.ErrTicket.
func Seal(k Key, gcmNonce [NonceSize]byte, c Contents) ([wire.TicketSize]byte, error) {
	var t [wire.TicketSize]byte
	if err := checkLifetime(c.IssuedAt, c.ExpiresAt); err != nil {
		return t, err
	}
	aead := newAEAD(&k)
	binary.BigEndian.PutUint32(t[:KeyIDSize], k.ID)
	copy(t[KeyIDSize:headerSize], gcmNonce[:])
	var pt [plaintextSize]byte
	marshal(&pt, &c)
	aead.Seal(t[headerSize:headerSize], gcmNonce[:], pt[:], t[:KeyIDSize])
	clear(pt[:])
	return t, nil
}

// Open authenticates and decrypts ticket t with the key its key-id names,
// and checks its times against now: t must not have expired and must not
// have been issued more than wire.TimestampSkew in the future. Every
// failure wraps wire.ErrTicket; the message gives the reason, never a
// secret. Open does not check or record single use (see the package
// comment).
func Open(kr *Keyring, t []byte, now time.Time) (Contents, error) {
	if len(t) != wire.TicketSize {
		return Contents{}, fmt.Errorf("%w: %d bytes, want %d", wire.ErrTicket, len(t), wire.TicketSize)
	}
	id := binary.BigEndian.Uint32(t[:KeyIDSize])
	k, ok := kr.Lookup(id)
	if !ok {
		return Contents{}, fmt.Errorf("%w: unknown key id %d", wire.ErrTicket, id)
	}
	var pt [plaintextSize]byte
	_, err := newAEAD(&k).Open(pt[:0], t[KeyIDSize:headerSize], t[headerSize:], t[:KeyIDSize])
	clear(k.Secret[:])
	if err != nil {
		return Contents{}, fmt.Errorf("%w: authentication failed under key id %d", wire.ErrTicket, id)
	}
	var c Contents
	unmarshal(&c, &pt)
	clear(pt[:])
	if err := checkLifetime(c.IssuedAt, c.ExpiresAt); err != nil {
		clear(c.ResumptionSecret[:])
		return Contents{}, err
	}
	unix := now.Unix()
	switch {
	case unix >= int64(c.ExpiresAt):
		err = fmt.Errorf("%w: expired at %d, now %d", wire.ErrTicket, c.ExpiresAt, unix)
	case int64(c.IssuedAt)-int64(wire.TimestampSkew/time.Second) > unix:
		err = fmt.Errorf("%w: issued at %d, in the future (now %d)", wire.ErrTicket, c.IssuedAt, unix)
	}
	if err != nil {
		clear(c.ResumptionSecret[:])
		return Contents{}, err
	}
	return c, nil
}

func checkLifetime(issued, expires uint32) error {
	if expires <= issued {
		return fmt.Errorf("%w: expires-at %d not after issued-at %d", wire.ErrTicket, expires, issued)
	}
	if expires-issued > maxLifetime {
		return fmt.Errorf("%w: lifetime %ds over the limit of %ds", wire.ErrTicket, expires-issued, maxLifetime)
	}
	return nil
}

// newAEAD returns AES-256-GCM under k. Neither call can fail: the key is
// 32 bytes and the nonce and tag sizes are the standard ones.
func newAEAD(k *Key) cipher.AEAD {
	block, err := aes.NewCipher(k.Secret[:])
	if err != nil {
		panic("ticket: " + err.Error())
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("ticket: " + err.Error())
	}
	return aead
}

func marshal(pt *[plaintextSize]byte, c *Contents) {
	b := pt[:0]
	b = append(b, c.ResumptionSecret[:]...)
	b = append(b, c.DeviceID[:]...)
	b = binary.BigEndian.AppendUint32(b, c.IssuedAt)
	b = binary.BigEndian.AppendUint32(b, c.ExpiresAt)
	_ = append(b, c.TicketNonce[:]...)
}

func unmarshal(c *Contents, pt *[plaintextSize]byte) {
	copy(c.ResumptionSecret[:], pt[0:32])
	copy(c.DeviceID[:], pt[32:48])
	c.IssuedAt = binary.BigEndian.Uint32(pt[48:52])
	c.ExpiresAt = binary.BigEndian.Uint32(pt[52:56])
	copy(c.TicketNonce[:], pt[56:64])
}
