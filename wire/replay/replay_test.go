package replay

import "testing"

// The sequence of WireGuard's replay test (itself from the kernel's), run
// through Check then Accept as a receiver does after authentication.
func TestFilter(t *testing.T) {
	const T = WindowSize
	tests := []struct {
		ctr  uint64
		want bool
	}{
		{0, true}, {1, true}, {1, false}, {9, true}, {8, true}, {7, true}, {7, false},
		{T, true}, {T - 1, true}, {T - 1, false}, {T - 2, true}, {2, true}, {2, false},
		{T + 16, true}, {3, false}, {T + 16, false}, {T * 4, true},
		{T*4 - (T - 1), true}, {10, false}, {T*4 - T, true}, {T*4 - T, false}, {T*4 - (T + 1), false},
		{T*4 - (T - 2), true}, {T*4 + 1 - T, false}, {0, false},
		{1 << 40, true}, {1<<40 - T, true}, {1<<40 - T - 1, false},
	}
	var f Filter
	for i, tt := range tests {
		if c := f.Check(tt.ctr); c != tt.want {
			t.Errorf("%d: Check(%d) = %v, want %v", i, tt.ctr, c, tt.want)
		}
		if a := f.Accept(tt.ctr); a != tt.want {
			t.Errorf("%d: Accept(%d) = %v, want %v", i, tt.ctr, a, tt.want)
		}
	}
}

func TestFilterFirstCounterHigh(t *testing.T) {
	var f Filter
	if !f.Accept(100_000) {
		t.Fatal("first counter refused")
	}
	if !f.Accept(100_000 - WindowSize) {
		t.Error("window bottom refused")
	}
	if f.Accept(100_000-WindowSize-1) || f.Check(100_000) {
		t.Error("below the window or repeated accepted")
	}
	if l, ok := f.Largest(); !ok || l != 100_000 {
		t.Errorf("largest %d %v", l, ok)
	}
	f.Reset()
	if _, ok := f.Largest(); ok || !f.Check(100_000) {
		t.Error("reset")
	}
}

func TestFilterBitsPerCounter(t *testing.T) {
	// Every counter in a window is tracked on its own, across block edges.
	var f Filter
	for c := uint64(0); c < 3*WindowSize; c += 2 {
		if !f.Accept(c) {
			t.Fatalf("even %d refused", c)
		}
	}
	for c := uint64(2*WindowSize + 1); c < 3*WindowSize; c += 2 {
		if !f.Accept(c) {
			t.Fatalf("odd %d refused", c)
		}
	}
	for c := uint64(2 * WindowSize); c < 3*WindowSize; c++ {
		if f.Check(c) {
			t.Fatalf("%d accepted twice", c)
		}
	}
}

// RFC 9000 Appendix A.3's example and edges, for 24 bits.
func TestRecover(t *testing.T) {
	tests := []struct {
		largest uint64
		any     bool
		trunc   uint64
		bits    uint
		want    uint64
	}{
		{0xa82f30ea, true, 0x9b32, 16, 0xa82f9b32}, // RFC 9000 A.3
		{0, false, 0, 24, 0},
		{0, false, 5, 24, 5},
		{0, true, 1, 24, 1},
		{1<<24 - 2, true, 1<<24 - 1, 24, 1<<24 - 1},
		{1<<24 - 1, true, 0, 24, 1 << 24},
		{1<<24 + 5, true, 1<<24 - 3, 24, 1<<24 - 3}, // reordered across the wrap
		{5 << 24, true, 7, 24, 5<<24 + 7},
		{5<<24 + 1<<23, true, 2, 24, 5<<24 + 2},     // just inside half a window
		{5<<24 + 1<<23 + 1, true, 2, 24, 6<<24 + 2}, // just past it
		{100, true, 1<<24 - 1, 24, 1<<24 - 1},       // no candidate below zero
	}
	for _, tt := range tests {
		if got := Recover(tt.largest, tt.any, tt.trunc, tt.bits); got != tt.want {
			t.Errorf("Recover(%#x, %v, %#x, %d) = %#x, want %#x", tt.largest, tt.any, tt.trunc, tt.bits, got, tt.want)
		}
	}
}

func FuzzFilter(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 200, 255, 1})
	f.Fuzz(func(t *testing.T, steps []byte) {
		var flt Filter
		seen := map[uint64]bool{}
		var ctr uint64
		for _, s := range steps {
			// Walk forwards in big and small steps, sometimes back.
			switch {
			case s < 128:
				ctr += uint64(s)
			case s < 192:
				ctr += uint64(s) << 6
			default:
				ctr -= min(ctr, uint64(s-191)*37)
			}
			largest, any := flt.Largest()
			inWindow := !any || ctr > largest || largest-ctr <= WindowSize
			want := inWindow && !seen[ctr]
			if got := flt.Accept(ctr); got != want {
				t.Fatalf("Accept(%d) = %v, want %v (largest %d)", ctr, got, want, largest)
			}
			if want {
				seen[ctr] = true
			}
		}
	})
}
