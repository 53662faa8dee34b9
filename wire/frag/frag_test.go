package frag

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/myclerk/myclerk-bridge/wire"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

func TestSplit(t *testing.T) {
	tests := []struct {
		n, maxBody int
		want       int   // fragments
		err        error // when want is 0
	}{
		{n: 2, maxBody: 1, want: 2},
		{n: 3, maxBody: 2, want: 2},
		{n: 100, maxBody: 10, want: 10},
		{n: 101, maxBody: 10, want: 11},
		{n: wire.MaxFragments, maxBody: 1, want: wire.MaxFragments},
		{n: wire.MaxMessageSize, maxBody: wire.MaxMessageSize / wire.MaxFragments, want: wire.MaxFragments},
		{n: wire.MaxMessageSize, maxBody: wire.MaxMessageSize - 1, want: 2},

		{n: 0, maxBody: 10, err: wire.ErrFragment},
		{n: 10, maxBody: 10, err: wire.ErrFragment},
		{n: 1, maxBody: 10, err: wire.ErrFragment},
		{n: 10, maxBody: 0, err: wire.ErrFragment},
		{n: 10, maxBody: -1, err: wire.ErrFragment},
		{n: wire.MaxFragments + 1, maxBody: 1, err: wire.ErrTooLarge},
		{n: wire.MaxMessageSize, maxBody: wire.MaxMessageSize/wire.MaxFragments - 1, err: wire.ErrTooLarge},
		{n: wire.MaxMessageSize + 1, maxBody: wire.MaxMessageSize, err: wire.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d", tt.n, tt.maxBody), func(t *testing.T) {
			p := payload(tt.n)
			frags, err := Split(42, p, tt.maxBody)
			if got := Count(tt.n, tt.maxBody); got != tt.want {
				t.Errorf("Count = %d, want %d", got, tt.want)
			}
			if tt.want == 0 {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Split error = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || len(frags) != tt.want {
				t.Fatalf("Split = %d fragments, %v; want %d", len(frags), err, tt.want)
			}
			var joined []byte
			for i, f := range frags {
				want := wire.FragmentHeader{MessageID: 42, Index: uint16(i), Total: uint16(tt.want)}
				if f.Header != want {
					t.Fatalf("fragment %d header %+v, want %+v", i, f.Header, want)
				}
				if err := f.Header.Validate(); err != nil {
					t.Fatalf("fragment %d: %v", i, err)
				}
				if len(f.Body) == 0 || len(f.Body) > tt.maxBody || cap(f.Body) != len(f.Body) {
					t.Fatalf("fragment %d body len %d cap %d", i, len(f.Body), cap(f.Body))
				}
				if &f.Body[0] != &p[i*tt.maxBody] {
					t.Fatalf("fragment %d body does not alias the payload", i)
				}
				if At(42, p, tt.maxBody, i).Header != f.Header {
					t.Fatalf("At(%d) differs from Split", i)
				}
				joined = append(joined, f.Body...)
			}
			if !bytes.Equal(joined, p) {
				t.Fatal("bodies do not join to the payload")
			}
		})
	}
}

func TestAtOutOfRange(t *testing.T) {
	for _, i := range []int{-1, 2, 3} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("At(%d) did not panic", i)
				}
			}()
			At(1, payload(4), 2, i)
		}()
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	orders := map[string]func([]Fragment){
		"in-order": func([]Fragment) {},
		"reversed": func(f []Fragment) {
			for i, j := 0, len(f)-1; i < j; i, j = i+1, j-1 {
				f[i], f[j] = f[j], f[i]
			}
		},
		"shuffled": func(f []Fragment) { rng.Shuffle(len(f), func(i, j int) { f[i], f[j] = f[j], f[i] }) },
	}
	sizes := []struct{ n, maxBody int }{{2, 1}, {17, 4}, {1000, 999}, {wire.MaxFragments, 1}, {1 << 20, 4096}, {1<<20 + 5, 1500}, {wire.MaxMessageSize, 1 << 13}}
	for name, order := range orders {
		for _, s := range sizes {
			t.Run(fmt.Sprintf("%s/%d/%d", name, s.n, s.maxBody), func(t *testing.T) {
				p := payload(s.n)
				frags, err := Split(7, p, s.maxBody)
				if err != nil {
					t.Fatal(err)
				}
				order(frags)
				r := NewReassembler(DefaultLimits())
				for i, f := range frags {
					msg, done, err := r.Add(Kind{}, f.Header, f.Body, t0)
					if err != nil {
						t.Fatal(err)
					}
					if done != (i == len(frags)-1) {
						t.Fatalf("fragment %d: done = %v", i, done)
					}
					if done && !bytes.Equal(msg, p) {
						t.Fatal("reassembled message differs")
					}
				}
				if m, b := r.Pending(); m != 0 || b != 0 {
					t.Fatalf("Pending = %d, %d after completion", m, b)
				}
			})
		}
	}
}

// TestInterleaved reassembles several messages whose fragments arrive mixed,
// with bodies of unequal sizes, and checks the copies are the Reassembler's.
func TestInterleaved(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type arrival struct {
		id   uint32
		f    Fragment
		want []byte
	}
	var all []arrival
	for id := range uint32(wire.MaxPendingMessages) {
		p := payload(1000 + int(id))
		frags, err := Split(id, p, 97+int(id))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frags {
			all = append(all, arrival{id, f, p})
		}
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	r := NewReassembler(DefaultLimits())
	done := 0
	for _, a := range all {
		body := bytes.Clone(a.f.Body)
		msg, ok, err := r.Add(Kind{}, a.f.Header, body, t0)
		clear(body) // the Reassembler must have copied it
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			done++
			if !bytes.Equal(msg, a.want) {
				t.Fatalf("message %d differs", a.id)
			}
		}
	}
	if done != wire.MaxPendingMessages {
		t.Fatalf("%d messages completed", done)
	}
	if m, b := r.Pending(); m != 0 || b != 0 {
		t.Fatalf("Pending = %d, %d", m, b)
	}
}

func hdr(id uint32, index, total uint16) wire.FragmentHeader {
	return wire.FragmentHeader{MessageID: id, Index: index, Total: total}
}

// step is one Add: a kind, a header, a body of n bytes, received at t0+at.
type step struct {
	k    Kind
	h    wire.FragmentHeader
	n    int
	at   time.Duration
	err  error // nil, or what the error wraps
	done bool
}

// cost is what Pending counts for a message holding the given bodies.
func cost(bodies ...int) int {
	c := messageOverhead
	for _, n := range bodies {
		c += pieceOverhead + n
	}
	return c
}

func TestAdd(t *testing.T) {
	t3 := Kind{Op: wire.OpStreamData, Tier: wire.Tier3, Encrypted: true}
	small := Limits{MaxFragments: 4, MaxMessageSize: 100, MaxPending: 2, MaxBytes: 1000, Timeout: 10 * time.Second}
	tests := []struct {
		name      string
		l         Limits
		steps     []step
		msgs      int // Pending after the steps
		bytes     int
		expire    time.Duration // if not 0: Expire(t0+expire) then Pending is 0
		nexpired  int
		afterDone bool
	}{
		{name: "total 1", l: small, steps: []step{{h: hdr(1, 0, 1), n: 1, err: wire.ErrFragment}}},
		{name: "total 0", l: small, steps: []step{{h: hdr(1, 0, 0), n: 1, err: wire.ErrFragment}}},
		{name: "index = total", l: small, steps: []step{{h: hdr(1, 3, 3), n: 1, err: wire.ErrFragment}}},
		{name: "total over wire limit", l: DefaultLimits(), steps: []step{{h: hdr(1, 0, wire.MaxFragments+1), n: 1, err: wire.ErrFragment}}},
		{name: "total over limit", l: small, steps: []step{{h: hdr(1, 0, 5), n: 1, err: wire.ErrReassembly}}},
		{name: "empty body", l: small, steps: []step{
			{h: hdr(1, 0, 2), n: 3},
			{h: hdr(1, 1, 2), n: 0, err: wire.ErrFragment},
		}, msgs: 1, bytes: cost(3)},
		{name: "empty body then complete", l: small, steps: []step{
			{h: hdr(1, 0, 2), n: 3},
			{h: hdr(1, 1, 2), n: 0, err: wire.ErrFragment},
			{h: hdr(1, 1, 2), n: 3, done: true},
		}},
		{name: "mismatched total drops", l: small, steps: []step{
			{h: hdr(1, 0, 3), n: 5},
			{h: hdr(1, 1, 3), n: 5},
			{h: hdr(1, 2, 4), n: 5, err: wire.ErrFragment},
		}},
		{name: "mismatched total keeps others", l: small, steps: []step{
			{h: hdr(1, 0, 3), n: 5},
			{h: hdr(2, 0, 2), n: 6},
			{h: hdr(1, 1, 2), n: 5, err: wire.ErrFragment},
		}, msgs: 1, bytes: cost(6)},
		{name: "other op drops", l: small, steps: []step{
			{k: t3, h: hdr(1, 0, 3), n: 5},
			{k: t3, h: hdr(1, 1, 3), n: 5},
			{k: Kind{Op: wire.OpStreamData + 1, Tier: wire.Tier3, Encrypted: true}, h: hdr(1, 2, 3), n: 5, err: wire.ErrFragment},
		}},
		{name: "lower tier drops", l: small, steps: []step{
			{k: Kind{Op: wire.OpStreamData, Tier: wire.Tier5, Encrypted: true}, h: hdr(1, 0, 3), n: 5},
			{k: t3, h: hdr(1, 1, 3), n: 5, err: wire.ErrFragment},
			{k: t3, h: hdr(1, 2, 3), n: 5},
		}, msgs: 1, bytes: cost(5)},
		{name: "compressed flag differs drops", l: small, steps: []step{
			{k: t3, h: hdr(1, 0, 2), n: 5},
			{k: Kind{Op: wire.OpStreamData, Tier: wire.Tier3, Encrypted: true, Compressed: true}, h: hdr(1, 1, 2), n: 5, err: wire.ErrFragment},
		}},
		{name: "encrypted flag differs drops and keeps others", l: small, steps: []step{
			{k: t3, h: hdr(1, 0, 2), n: 5},
			{k: t3, h: hdr(2, 0, 2), n: 6},
			{k: Kind{Op: wire.OpStreamData, Tier: wire.Tier3}, h: hdr(1, 1, 2), n: 5, err: wire.ErrFragment},
		}, msgs: 1, bytes: cost(6)},
		{name: "same kind completes", l: small, steps: []step{
			{k: t3, h: hdr(1, 1, 2), n: 5},
			{k: t3, h: hdr(1, 0, 2), n: 5, done: true},
		}},
		{name: "duplicate keeps message", l: small, steps: []step{
			{h: hdr(1, 0, 3), n: 5},
			{h: hdr(1, 1, 3), n: 5},
			{h: hdr(1, 1, 3), n: 5, err: wire.ErrFragment},
			{h: hdr(1, 0, 3), n: 9, err: wire.ErrFragment},
		}, msgs: 1, bytes: cost(5, 5)},
		{name: "duplicate then complete", l: small, steps: []step{
			{h: hdr(1, 2, 3), n: 5},
			{h: hdr(1, 2, 3), n: 5, err: wire.ErrFragment},
			{h: hdr(1, 0, 3), n: 5},
			{h: hdr(1, 1, 3), n: 5, done: true},
		}},
		{name: "body over message size", l: small, steps: []step{
			{h: hdr(1, 0, 2), n: 101, err: wire.ErrReassembly},
		}},
		{name: "message over size drops", l: small, steps: []step{
			{h: hdr(1, 0, 3), n: 50},
			{h: hdr(1, 1, 3), n: 50},
			{h: hdr(1, 2, 3), n: 1, err: wire.ErrReassembly},
		}},
		{name: "message at size completes", l: small, steps: []step{
			{h: hdr(1, 0, 3), n: 50},
			{h: hdr(1, 1, 3), n: 49},
			{h: hdr(1, 2, 3), n: 1, done: true},
		}},
		{name: "pending full refuses new", l: small, steps: []step{
			{h: hdr(1, 0, 2), n: 1},
			{h: hdr(2, 0, 2), n: 2},
			{h: hdr(3, 0, 2), n: 3, at: 10 * time.Second, err: wire.ErrReassembly},
		}, msgs: 2, bytes: cost(1) + cost(2)},
		{name: "pending full keeps existing", l: small, steps: []step{
			{h: hdr(1, 0, 2), n: 1},
			{h: hdr(2, 0, 2), n: 2},
			{h: hdr(3, 0, 2), n: 3, err: wire.ErrReassembly},
			{h: hdr(4, 0, 2), n: 3, err: wire.ErrReassembly},
			{h: hdr(1, 1, 2), n: 1, done: true},
			{h: hdr(3, 0, 2), n: 3},
		}, msgs: 2, bytes: cost(2) + cost(3)},
		{name: "pending full expires first", l: small, steps: []step{
			{h: hdr(1, 0, 2), n: 1},
			{h: hdr(2, 0, 2), n: 2, at: 5 * time.Second},
			{h: hdr(3, 0, 2), n: 3, at: 11 * time.Second},
		}, msgs: 2, bytes: cost(2) + cost(3)},
		{name: "bytes full refuses new", l: Limits{MaxBytes: cost(60) + cost(30), MaxMessageSize: 100}, steps: []step{
			{h: hdr(1, 0, 2), n: 60},
			{h: hdr(2, 0, 2), n: 31, err: wire.ErrReassembly},
			{h: hdr(2, 0, 2), n: 30},
		}, msgs: 2, bytes: cost(60) + cost(30)},
		{name: "bytes full drops the message it touches", l: Limits{MaxBytes: cost(60) + cost(30), MaxMessageSize: 100}, steps: []step{
			{h: hdr(1, 0, 3), n: 60},
			{h: hdr(2, 0, 2), n: 10},
			{h: hdr(1, 1, 3), n: 1, err: wire.ErrReassembly},
		}, msgs: 1, bytes: cost(10)},
		{name: "bytes full expires first", l: Limits{MaxBytes: cost(60) + cost(30), Timeout: time.Second}, steps: []step{
			{h: hdr(1, 0, 2), n: 60},
			{h: hdr(2, 0, 2), n: 60, at: 2 * time.Second},
		}, msgs: 1, bytes: cost(60)},
		{name: "timed out fragment drops", l: small, steps: []step{
			{h: hdr(1, 0, 3), n: 5},
			{h: hdr(1, 1, 3), n: 5, at: 10 * time.Second},
			{h: hdr(1, 2, 3), n: 5, at: 10*time.Second + 1, err: wire.ErrReassemblyTime},
		}},
		{name: "timed out keeps others", l: small, steps: []step{
			{h: hdr(1, 0, 2), n: 5},
			{h: hdr(2, 0, 2), n: 7, at: 5 * time.Second},
			{h: hdr(1, 1, 2), n: 5, at: 11 * time.Second, err: wire.ErrReassemblyTime},
		}, msgs: 1, bytes: cost(7), expire: 16 * time.Second, nexpired: 1},
		{name: "timeout runs from the first fragment", l: small, steps: []step{
			{h: hdr(1, 0, 3), n: 5},
			{h: hdr(1, 1, 3), n: 5, at: 9 * time.Second},
		}, msgs: 1, bytes: cost(5, 5), expire: 11 * time.Second, nexpired: 1},
		{name: "id reused after completion", l: small, steps: []step{
			{h: hdr(1, 0, 2), n: 5},
			{h: hdr(1, 1, 2), n: 5, done: true},
			{h: hdr(1, 1, 2), n: 5},
		}, msgs: 1, bytes: cost(5), expire: time.Hour, nexpired: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReassembler(tt.l)
			for i, s := range tt.steps {
				body := payload(s.n)
				msg, done, err := r.Add(s.k, s.h, body, t0.Add(s.at))
				if !errors.Is(err, s.err) || (err != nil) != (s.err != nil) {
					t.Fatalf("step %d: error %v, want %v", i, err, s.err)
				}
				if err != nil && msg != nil {
					t.Fatalf("step %d: message with an error", i)
				}
				if done != s.done {
					t.Fatalf("step %d: done = %v", i, done)
				}
				if m, b := r.Pending(); m > r.l.MaxPending || b > r.l.MaxBytes {
					t.Fatalf("step %d: Pending = %d, %d over the limits", i, m, b)
				}
			}
			if m, b := r.Pending(); m != tt.msgs || b != tt.bytes {
				t.Fatalf("Pending = %d, %d; want %d, %d", m, b, tt.msgs, tt.bytes)
			}
			if tt.expire != 0 {
				if n := r.Expire(t0.Add(tt.expire)); n != tt.nexpired {
					t.Fatalf("Expire dropped %d, want %d", n, tt.nexpired)
				}
				if m, b := r.Pending(); m != 0 || b != 0 {
					t.Fatalf("Pending = %d, %d after Expire", m, b)
				}
			}
		})
	}
}

func TestExpire(t *testing.T) {
	r := NewReassembler(Limits{Timeout: 30 * time.Second})
	for id := range uint32(3) {
		if _, _, err := r.Add(Kind{}, hdr(id, 0, 2), []byte{1}, t0.Add(time.Duration(id)*10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		at      time.Duration
		n, left int
	}{
		{-time.Hour, 0, 3}, // a clock that went back drops nothing
		{30 * time.Second, 0, 3},
		{30*time.Second + 1, 1, 2},
		{45 * time.Second, 1, 1},
		{45 * time.Second, 0, 1},
		{time.Hour, 1, 0},
	} {
		if n := r.Expire(t0.Add(c.at)); n != c.n {
			t.Fatalf("Expire(+%v) = %d, want %d", c.at, n, c.n)
		}
		if m, b := r.Pending(); m != c.left || b != c.left*cost(1) {
			t.Fatalf("Expire(+%v): Pending = %d, %d; want %d", c.at, m, b, c.left)
		}
	}
}

func TestDefaultLimits(t *testing.T) {
	r := NewReassembler(Limits{MaxPending: 3})
	want := DefaultLimits()
	want.MaxPending = 3
	if r.l != want {
		t.Fatalf("limits %+v, want %+v", r.l, want)
	}
}

// TestRandomHeaders feeds thousands of random fragments, many of them
// colliding in message-id, and checks the bounds hold after each.
func TestRandomHeaders(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	l := Limits{MaxFragments: 16, MaxMessageSize: 2000, MaxPending: 4, MaxBytes: 4000, Timeout: time.Minute}
	r := NewReassembler(l)
	now := t0
	var completed, refused, limited int
	for range 20000 {
		// Mostly plausible headers (a message-id keeps its Total), so that
		// messages complete and the byte limit is reached; some random ones.
		id := rng.Uint32N(8)
		total := uint16(2 + id%4)
		h := hdr(id, uint16(rng.UintN(uint(total))), total)
		if rng.IntN(10) == 0 {
			h = hdr(id, uint16(rng.UintN(20)), uint16(rng.UintN(20)))
		}
		msg, done, err := r.Add(Kind{}, h, payload(rng.IntN(300)), now)
		now = now.Add(time.Duration(rng.IntN(100)) * time.Millisecond)
		switch {
		case done:
			completed++
			if len(msg) > l.MaxMessageSize {
				t.Fatalf("message of %d bytes", len(msg))
			}
		case err != nil:
			refused++
			switch {
			case errors.Is(err, wire.ErrReassembly):
				limited++
			case !errors.Is(err, wire.ErrFragment):
				t.Fatalf("unexpected error %v", err)
			}
		}
		if m, b := r.Pending(); m > l.MaxPending || b > l.MaxBytes || b < 0 {
			t.Fatalf("Pending = %d, %d over the limits", m, b)
		}
	}
	r.Expire(now.Add(time.Hour))
	if m, b := r.Pending(); m != 0 || b != 0 {
		t.Fatalf("Pending = %d, %d after Expire", m, b)
	}
	if completed == 0 || limited == 0 {
		t.Fatalf("%d completed, %d refused for a limit: the test misses a path", completed, limited)
	}
	t.Logf("%d completed, %d refused, %d of them for a limit", completed, refused, limited)
}

// FuzzReassemble reads records of an 8-byte sub-header, a length byte n and
// n&0x7f body bytes (n's top bit: a fragment of another kind), and feeds
// them to a small Reassembler whose clock advances a second per record.
func FuzzReassemble(f *testing.F) {
	f.Add(records(rec(1, 0, 3, "abc"), rec(1, 2, 3, "g"), rec(1, 1, 3, "def")))
	f.Add(records(rec(1, 0, 3, "abc"), recOther(1, 2, 3, "g"), rec(1, 1, 3, "def"), rec(1, 2, 3, "g")))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := Limits{MaxFragments: 8, MaxMessageSize: 64, MaxPending: 3, MaxBytes: 3 * cost(20, 20), Timeout: 10 * time.Second}
		r := NewReassembler(l)
		now := t0
		for len(data) >= wire.FragmentHeaderSize+1 {
			h, _ := wire.DecodeFragmentHeader(data) // Add must refuse an invalid one itself
			n, k := int(data[wire.FragmentHeaderSize]&0x7f), Kind{Op: wire.OpStreamData, Tier: wire.Tier3}
			if data[wire.FragmentHeaderSize]&0x80 != 0 {
				k.Tier = wire.Tier5
			}
			data = data[wire.FragmentHeaderSize+1:]
			body := data[:min(n, len(data))]
			data = data[len(body):]

			msg, done, err := r.Add(k, h, body, now)
			now = now.Add(time.Second)
			if err != nil && !errors.Is(err, wire.ErrFragment) && !errors.Is(err, wire.ErrReassembly) && !errors.Is(err, wire.ErrReassemblyTime) {
				t.Fatalf("unexpected error %v", err)
			}
			if done && (err != nil || len(msg) > l.MaxMessageSize || len(msg) < int(h.Total)) {
				t.Fatalf("completed message of %d bytes, %v", len(msg), err)
			}
			if m, b := r.Pending(); m > l.MaxPending || b > l.MaxBytes || b < 0 || (m == 0) != (b == 0) {
				t.Fatalf("Pending = %d, %d", m, b)
			}
		}
		r.Expire(now.Add(l.Timeout + 1))
		if m, b := r.Pending(); m != 0 || b != 0 {
			t.Fatalf("Pending = %d, %d after Expire", m, b)
		}
	})
}

// rec encodes one fuzz record.
func rec(id uint32, index, total uint16, body string) []byte {
	b := hdr(id, index, total).AppendTo(nil)
	return append(append(b, byte(len(body))), body...)
}

// recOther encodes one fuzz record of a fragment of the other kind.
func recOther(id uint32, index, total uint16, body string) []byte {
	b := rec(id, index, total, body)
	b[wire.FragmentHeaderSize] |= 0x80
	return b
}

func records(rs ...[]byte) []byte { return bytes.Join(rs, nil) }

func BenchmarkSplitReassemble(b *testing.B) {
	const maxBody = 4096
	for _, size := range []struct {
		name string
		n    int
	}{{"16KiB", 16 << 10}, {"1MiB", 1 << 20}} {
		b.Run(size.name, func(b *testing.B) {
			p := payload(size.n)
			r := NewReassembler(DefaultLimits())
			b.SetBytes(int64(size.n))
			b.ReportAllocs()
			var id uint32
			for b.Loop() {
				id++
				frags, err := Split(id, p, maxBody)
				if err != nil {
					b.Fatal(err)
				}
				for _, f := range frags {
					if _, _, err := r.Add(Kind{}, f.Header, f.Body, t0); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
