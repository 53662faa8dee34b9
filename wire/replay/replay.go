// Package replay implements the per-direction anti-replay filter of the
// MyClerk wire profile (PROFILE.md §P17) and the recovery of a full frame
// counter from the 24 bits a sealed header carries (§P4).
//
// The filter is a sliding bitmap over the counter, after RFC 6479 and
// WireGuard's replay package: a ring of 64-bit blocks, one bit per counter,
// accepting counters up to WindowSize below the largest one seen. Checking
// and marking are separate so that a receiver marks a counter only after
// the frame carrying it has been authenticated.
package replay

const (
	blockBits  = 64
	ringBlocks = 128 // a power of two
	blockMask  = ringBlocks - 1
	bitMask    = blockBits - 1
	blockShift = 6 // log2(blockBits)
	// WindowSize is how far below the largest accepted counter a counter
	// may still be accepted (8128, as in WireGuard).
	WindowSize = (ringBlocks - 1) * blockBits
)

// Filter remembers which counters were accepted. The zero value is ready
// and accepts every counter once. It is not safe for concurrent use.
type Filter struct {
	last uint64 // largest accepted counter
	any  bool   // whether any counter was accepted
	ring [ringBlocks]uint64
}

// Reset forgets every counter.
func (f *Filter) Reset() { *f = Filter{} }

// Largest returns the largest accepted counter, and whether there is one.
func (f *Filter) Largest() (uint64, bool) { return f.last, f.any }

// Check reports whether counter would be accepted now: not accepted before
// and not more than WindowSize below the largest accepted counter. It
// changes nothing.
func (f *Filter) Check(counter uint64) bool {
	if !f.any || counter > f.last {
		return true
	}
	if f.last-counter > WindowSize {
		return false
	}
	return f.ring[(counter>>blockShift)&blockMask]&(1<<(counter&bitMask)) == 0
}

// Accept marks counter as seen. It returns false, and changes nothing, when
// Check would have returned false.
func (f *Filter) Accept(counter uint64) bool {
	if !f.Check(counter) {
		return false
	}
	if !f.any || counter > f.last {
		// Slide the window: clear the blocks between the old largest and
		// the new one (all of them when the jump is larger than the ring).
		cur := f.last >> blockShift
		if !f.any {
			cur = counter>>blockShift - ringBlocks
		}
		diff := counter>>blockShift - cur
		if diff > ringBlocks {
			diff = ringBlocks
		}
		for i := uint64(1); i <= diff; i++ {
			f.ring[(cur+i)&blockMask] = 0
		}
		f.last, f.any = counter, true
	}
	f.ring[(counter>>blockShift)&blockMask] |= 1 << (counter & bitMask)
	return true
}

// Recover expands the low `bits` bits of a counter (truncated) to the full
// counter closest to the one expected after largest, as in RFC 9000
// Appendix A.3. With no counter accepted yet, pass largest = 0 and any =
// false: the expected counter is then 0.
func Recover(largest uint64, any bool, truncated uint64, bits uint) uint64 {
	expected := uint64(0)
	if any {
		expected = largest + 1
	}
	win := uint64(1) << bits
	hwin := win / 2
	mask := win - 1
	candidate := expected&^mask | truncated&mask
	switch {
	case candidate+hwin <= expected && candidate < 1<<62-win:
		return candidate + win
	case candidate > expected+hwin && candidate >= win:
		return candidate - win
	}
	return candidate
}
