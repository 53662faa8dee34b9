package hub

import (
	"testing"

	"github.com/myclerk/myclerk-bridge/node/optable"
)

// TestEveryServedOpHasAHandler keeps the op table and the hub's handlers
// in step: every op the table says the hub serves has exactly one
// handler, and no handler serves an op the table does not give the hub.
func TestEveryServedOpHasAHandler(t *testing.T) {
	for _, e := range optable.Entries() {
		_, hasHandler := handlers[e.Op]
		_, hasPush := pushHandlers[e.Op]
		switch {
		case e.Server == optable.Hub && e.Served && !hasHandler:
			t.Errorf("%v: served by the hub, no handler", e.Op)
		case hasHandler && (e.Server != optable.Hub || !e.Served):
			t.Errorf("%v: a handler, but the table says %v, served %v", e.Op, e.Server, e.Served)
		case e.Server == optable.Push && e.Served && e.Senders.Has(optable.FromNode) && !hasPush:
			t.Errorf("%v: a push the hub takes, no handler", e.Op)
		case hasPush && (e.Server != optable.Push || !e.Served):
			t.Errorf("%v: a push handler, but the table says %v, served %v", e.Op, e.Server, e.Served)
		}
	}
	for op := range relayHooks {
		if e, ok := optable.Lookup(op); !ok || e.Server != optable.Owner {
			t.Errorf("%v: a relay hook for an op the owner does not serve", op)
		}
	}
}
