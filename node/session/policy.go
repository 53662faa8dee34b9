package session

import (
	"fmt"
	"sync"

	"github.com/myclerk/myclerk-bridge/node/optable"
	"github.com/myclerk/myclerk-bridge/wire"
)

// Policy is the minimum tier each operation needs (PROFILE.md §P20): the
// op table's (node/optable), which configuration may raise and never lower.
// The zero value is the default policy. It is safe for concurrent use.
type Policy struct {
	mu     sync.RWMutex
	ops    map[wire.Op]wire.Tier
	ranges map[wire.Range]wire.Tier
}

// MinTier returns the lowest tier at which op is accepted.
func (p *Policy) MinTier(op wire.Op) wire.Tier {
	t := optable.MinTier(op)
	if p == nil {
		return t
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if r, ok := p.ranges[op.Range()]; ok && r > t {
		t = r
	}
	if o, ok := p.ops[op]; ok && o > t {
		t = o
	}
	return t
}

// RaiseOp raises op's minimum to tier. Lowering is refused.
func (p *Policy) RaiseOp(op wire.Op, tier wire.Tier) error {
	if !tier.Valid() {
		return wire.ErrTier
	}
	if cur := p.MinTier(op); tier < cur {
		return fmt.Errorf("%v needs tier %d by the profile; a policy may raise it, not lower it to %d", op, cur, tier)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ops == nil {
		p.ops = map[wire.Op]wire.Tier{}
	}
	p.ops[op] = tier
	return nil
}

// RaiseRange raises the minimum of every op in range r to tier (ops that
// already need more keep their own minimum).
func (p *Policy) RaiseRange(r wire.Range, tier wire.Tier) error {
	if !tier.Valid() {
		return wire.ErrTier
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ranges == nil {
		p.ranges = map[wire.Range]wire.Tier{}
	}
	if tier > p.ranges[r] {
		p.ranges[r] = tier
	}
	return nil
}
