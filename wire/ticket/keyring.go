package ticket

// MaxKeys bounds a Keyring: the current key and up to MaxKeys-1 previous
// ones. Rotating the ticket key at least once per wire.TicketLifetime keeps
// every unexpired ticket openable with MaxKeys = 4.
const MaxKeys = 4

// Keyring holds the current ticket-encryption key and a few previous ones,
// so that tickets sealed before a rotation still open until their key is
// dropped. The zero value is an empty keyring.
//
// A Keyring is not safe for concurrent use: Add and Remove must not run
// concurrently with any other method or with Open on the same keyring.
type Keyring struct {
	keys [MaxKeys]Key // keys[0] is the current key, then newest to oldest
	n    int
}

// Add makes k the current key. The previous current key is kept for
// opening, the oldest key beyond MaxKeys is dropped, and a key with k's ID
// is replaced (its tickets no longer open).
func (kr *Keyring) Add(k Key) {
	kr.Remove(k.ID)
	if kr.n == MaxKeys {
		kr.n--
		clear(kr.keys[kr.n].Secret[:])
	}
	copy(kr.keys[1:kr.n+1], kr.keys[:kr.n])
	kr.keys[0] = k
	kr.n++
}

// Remove drops the key with the given ID, for example one that was
// compromised, and reports whether there was one. Tickets sealed under it
// no longer open. Removing the current key makes the newest previous key
// current.
func (kr *Keyring) Remove(id uint32) bool {
	for i := range kr.n {
		if kr.keys[i].ID == id {
			copy(kr.keys[i:kr.n], kr.keys[i+1:kr.n])
			kr.n--
			kr.keys[kr.n] = Key{}
			return true
		}
	}
	return false
}

// Current returns the key new tickets are sealed with, and false on an
// empty keyring (never a zero key: sealing under one would let anyone
// forge tickets).
func (kr *Keyring) Current() (Key, bool) {
	if kr == nil || kr.n == 0 {
		return Key{}, false
	}
	return kr.keys[0], true
}

// Len returns the number of keys held, at most MaxKeys.
func (kr *Keyring) Len() int { return kr.n }

// Lookup returns the key with the given ID. A nil keyring holds no keys.
func (kr *Keyring) Lookup(id uint32) (Key, bool) {
	if kr == nil {
		return Key{}, false
	}
	for _, k := range kr.keys[:kr.n] {
		if k.ID == id {
			return k, true
		}
	}
	return Key{}, false
}
