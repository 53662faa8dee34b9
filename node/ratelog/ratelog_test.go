package ratelog

import (
	"fmt"
	"testing"
	"time"
)

// clock is a fake clock a test moves by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestAllow(t *testing.T) {
	type call struct {
		at         time.Duration // since the start
		key        string
		ok         bool
		suppressed int
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{"under the limit", []call{{0, "a", true, 0}, {time.Second, "a", true, 0}}},
		{"over the limit is suppressed", []call{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", false, 0}, {time.Second, "a", false, 0},
		}},
		{"the next interval says how many were suppressed", []call{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", false, 0}, {0, "a", false, 0}, {0, "a", false, 0},
			{time.Minute, "a", true, 3}, {time.Minute, "a", true, 0}, {time.Minute, "a", false, 0},
			{2 * time.Minute, "a", true, 1},
		}},
		{"keys are apart", []call{
			{0, "a", true, 0}, {0, "a", true, 0}, {0, "a", false, 0}, {0, "b", true, 0}, {0, "b", true, 0}, {0, "b", false, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1000, 0)}
			l := New(2, time.Minute, c.now)
			start := c.t
			for i, k := range tt.calls {
				c.t = start.Add(k.at)
				ok, n := l.Allow(k.key)
				if ok != k.ok || n != k.suppressed {
					t.Fatalf("call %d (%s at %v): Allow = %v, %d; want %v, %d", i, k.key, k.at, ok, n, k.ok, k.suppressed)
				}
			}
		})
	}
}

func TestManyKeysShareABucket(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(1, time.Minute, c.now)
	written := 0
	for i := range 10 * maxKeys {
		if ok, _ := l.Allow(fmt.Sprint("key ", i)); ok {
			written++
		}
	}
	if written != maxKeys {
		t.Errorf("%d lines written for %d keys, want %d (the rest share one bucket)", written, 10*maxKeys, maxKeys)
	}
	if len(l.buckets) > maxKeys {
		t.Errorf("%d buckets, want at most %d", len(l.buckets), maxKeys)
	}
}

func TestNilAllows(t *testing.T) {
	var l *Limiter
	if ok, n := l.Allow("a"); !ok || n != 0 {
		t.Errorf("nil Limiter: Allow = %v, %d", ok, n)
	}
}
