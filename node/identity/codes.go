package identity

import (
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
)

// PairingLifetime is how long a pairing code stays usable.
const PairingLifetime = 15 * time.Minute

// Codes holds a hub's outstanding pairing codes. Each is single-use and
// expires after PairingLifetime. It is safe for concurrent use.
type Codes struct {
	mu    sync.Mutex
	codes map[PairingCode]pending
}

type pending struct {
	role    Role
	name    string // "" for any name
	expires time.Time
}

// Add makes code usable until now + PairingLifetime, for a node of role
// and, unless name is "", for that name alone (the enroller enforces it).
func (c *Codes) Add(code PairingCode, role Role, name string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.codes == nil {
		c.codes = map[PairingCode]pending{}
	}
	c.codes[code] = pending{role: role, name: name, expires: now.Add(PairingLifetime)}
}

// Pending returns how many codes are usable at now.
func (c *Codes) Pending(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range c.codes {
		if now.Before(p.expires) {
			n++
		}
	}
	return n
}

// Redeem finds the unexpired code whose proof over (th, pub, name) is
// proof, asks accept (when not nil) whether to go on with the role and
// the name it was made for ("" when it is not bound to a name), then
// removes it and returns it with that role. When accept
// refuses, the code stays usable and accept's error is returned. Expired
// codes are forgotten on the way.
func (c *Codes) Redeem(proof []byte, th [32]byte, pub ed25519.PublicKey, name string, now time.Time, accept func(role Role, bound string) error) (PairingCode, Role, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for code, p := range c.codes {
		if !now.Before(p.expires) {
			delete(c.codes, code)
			continue
		}
		if code.Check(proof, wire.InitiatorToResponder, th, pub, []byte(name)) {
			if accept != nil {
				if err := accept(p.role, p.name); err != nil {
					return "", 0, err
				}
			}
			delete(c.codes, code)
			return code, p.role, nil
		}
	}
	return "", 0, fmt.Errorf("%w: no outstanding code matches", ErrPairing)
}
