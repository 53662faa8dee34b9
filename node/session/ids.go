package session

import (
	"sync"

	"github.com/myclerk/myclerk-bridge/wire"
)

// ErrNoSessionID is returned when every session ID of a scope is in use.
var ErrNoSessionID = &wire.Error{Code: wire.CodeServiceUnavailable, Reason: "no session ID free"}

// IDs allocates the 16-bit session IDs of one scope (PROFILE.md §P22): one
// peer connection, or one peer node on a message transport. IDs are never
// random, so they never collide; an ID is reused only after it is freed.
// The zero value is ready. It is safe for concurrent use.
type IDs struct {
	mu   sync.Mutex
	used map[uint16]bool
	next uint16
}

// Alloc returns a free ID (never 0, which means "no session" in a Tier 2
// header).
func (a *IDs) Alloc() (uint16, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.used == nil {
		a.used = map[uint16]bool{}
	}
	if len(a.used) >= 1<<16-1 {
		return 0, ErrNoSessionID
	}
	for {
		a.next++
		if a.next != 0 && !a.used[a.next] {
			a.used[a.next] = true
			return a.next, nil
		}
	}
}

// Free returns id to the scope.
func (a *IDs) Free(id uint16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.used, id)
}

// InUse returns how many IDs are allocated.
func (a *IDs) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.used)
}
