package vectors

import (
	"fmt"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/ticket"
)

// TicketVector is a resumption ticket: the ticket key, the GCM nonce, the
// contents and the 96-byte result; or a ticket that must not open at Now.
type TicketVector struct {
	Name             string `json:"name"`
	KeyID            uint32 `json:"key_id"`
	Key              Hex    `json:"key"`
	GCMNonce         Hex    `json:"gcm_nonce,omitempty"`
	ResumptionSecret Hex    `json:"resumption_secret,omitempty"`
	DeviceID         Hex    `json:"device_id,omitempty"`
	IssuedAt         uint32 `json:"issued_at,omitempty"`
	ExpiresAt        uint32 `json:"expires_at,omitempty"`
	TicketNonce      Hex    `json:"ticket_nonce,omitempty"`
	Ticket           Hex    `json:"ticket"`
	Now              int64  `json:"now"`
	Reason           string `json:"reason,omitempty"`
}

func ticketsFile(hs *handshakeVector) (*File, error) {
	key := ticket.Key{ID: 0x00000007, Secret: seed("ticket key")}
	var kr ticket.Keyring
	kr.Add(key)
	issued := uint32(Time.Unix())
	c := ticket.Contents{ResumptionSecret: [32]byte(hs.ResumptionSecret), DeviceID: [16]byte(seedN("device id", 16)),
		IssuedAt: issued, ExpiresAt: issued + uint32(wire.TicketLifetime/time.Second), TicketNonce: [8]byte(seedN("ticket nonce", 8))}
	nonce := [12]byte(seedN("ticket gcm nonce", 12))
	t, err := ticket.Seal(key, nonce, c)
	if err != nil {
		return nil, err
	}
	good := TicketVector{Name: "7-day ticket carrying the handshake's resumption secret", KeyID: key.ID, Key: key.Secret[:],
		GCMNonce: nonce[:], ResumptionSecret: c.ResumptionSecret[:], DeviceID: c.DeviceID[:], IssuedAt: c.IssuedAt,
		ExpiresAt: c.ExpiresAt, TicketNonce: c.TicketNonce[:], Ticket: t[:], Now: Time.Unix() + 3600}
	out := []TicketVector{good}
	bad := func(name string, tk []byte, now int64) {
		out = append(out, TicketVector{Name: name, KeyID: key.ID, Key: key.Secret[:], Ticket: tk, Now: now, Reason: wire.ErrTicket.Reason})
	}
	flip := func(i int) []byte {
		b := append([]byte(nil), t[:]...)
		b[i] ^= 1
		return b
	}
	bad("expired: now is expires_at", t[:], int64(c.ExpiresAt))
	bad("issued in the future beyond the skew", t[:], Time.Unix()-int64(wire.TimestampSkew/time.Second)-1)
	bad("key id changed (associated data)", flip(3), Time.Unix())
	bad("ciphertext changed", flip(40), Time.Unix())
	bad("tag changed", flip(95), Time.Unix())
	bad("64-byte ticket of the draft", t[:64], Time.Unix())
	for i := range out {
		if err := CheckTicket(&out[i]); err != nil {
			return nil, fmt.Errorf("ticket vector %q: %w", out[i].Name, err)
		}
	}
	return &File{Name: "tickets.json", Description: "Resumption tickets (PROFILE.md §P18): key_id u32 ‖ gcm_nonce (12) ‖ AES-256-GCM(key, gcm_nonce, resumption_secret ‖ device_id ‖ issued_at u32 ‖ expires_at u32 ‖ ticket_nonce, ad = key_id) ‖ tag = 96 bytes; opened at `now` by a keyring holding key_id.", Vectors: out}, nil
}

// CheckTicket opens a ticket vector with a keyring holding its key: a good
// vector opens to its contents, a bad one fails with its reason.
func CheckTicket(v *TicketVector) error {
	var kr ticket.Keyring
	if len(v.Key) != 32 {
		return fmt.Errorf("key has %d bytes", len(v.Key))
	}
	kr.Add(ticket.Key{ID: v.KeyID, Secret: [32]byte(v.Key)})
	c, err := ticket.Open(&kr, v.Ticket, time.Unix(v.Now, 0))
	if v.Reason != "" {
		if err == nil || wire.ReasonOf(err) != v.Reason {
			return fmt.Errorf("opened or wrong error (%v), want %q", err, v.Reason)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if string(c.ResumptionSecret[:]) != string(v.ResumptionSecret) || string(c.DeviceID[:]) != string(v.DeviceID) ||
		c.IssuedAt != v.IssuedAt || c.ExpiresAt != v.ExpiresAt || string(c.TicketNonce[:]) != string(v.TicketNonce) {
		return fmt.Errorf("contents differ")
	}
	return nil
}
