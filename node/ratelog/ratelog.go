// Package ratelog keeps reject paths from turning a flood into a flood of
// log lines (PROFILE.md §P41): per key (a reason), at most Lines lines per
// Every; the lines over that are suppressed and counted, and the next line
// written for the key says how many were. Counters elsewhere (metrics)
// keep the true number of events; the log only keeps a sample.
//
// The package is a leaf: it does no I/O and reads the clock it is given.
package ratelog

import (
	"sync"
	"time"
)

// maxKeys bounds the keys a Limiter tracks; keys beyond it share one
// bucket, so that a caller passing peer-chosen keys cannot grow it.
const maxKeys = 256

// overflowKey is the bucket of keys beyond maxKeys.
const overflowKey = "(other)"

// Limiter rate-limits log lines by key. The zero value is not usable;
// make one with New. A nil *Limiter allows every line. It is safe for
// concurrent use.
type Limiter struct {
	lines int
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

// bucket is one key's current interval.
type bucket struct {
	start      time.Time // when the interval began
	written    int       // lines written in it
	suppressed int       // lines suppressed since the last written one
}

// New returns a Limiter that lets through lines lines per key per every,
// reading the time from now.
func New(lines int, every time.Duration, now func() time.Time) *Limiter {
	return &Limiter{lines: max(lines, 1), every: every, now: now, buckets: map[string]*bucket{}}
}

// Allow reports whether a line for key may be written now. When it may,
// suppressed is the number of key's lines suppressed since the last one
// written, for the line to carry (as a "suppressed" field).
func (l *Limiter) Allow(key string) (ok bool, suppressed int) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxKeys-1 { // one left for the overflow bucket
			key = overflowKey
			b = l.buckets[key]
		}
		if b == nil {
			b = &bucket{start: now}
			l.buckets[key] = b
		}
	}
	if now.Sub(b.start) >= l.every {
		b.start, b.written = now, 0
	}
	if b.written >= l.lines {
		b.suppressed++
		return false, 0
	}
	b.written++
	suppressed, b.suppressed = b.suppressed, 0
	return true, suppressed
}
