package hub

import (
	"testing"

	"github.com/myclerk/myclerk-bridge/node/ops"
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

// FuzzRelayPayload: whatever a caller sends, the relayed payload either is
// refused or carries the hub's relay and caller (never the caller's own),
// and the answer's rewrite puts the caller's req back and drops relay.
func FuzzRelayPayload(f *testing.F) {
	for _, seed := range []ops.Request{
		{Req: 7, Device: "pi/temp", Settings: map[string]string{"a": "1"}},
		{Req: 1, Relay: 99, Caller: &ops.Caller{Node: "x", Name: "admin", Mode: ops.ModeExclusive}},
		{},
	} {
		b, _ := ops.Marshal(seed)
		f.Add(b)
	}
	f.Add([]byte{0x80})
	f.Add([]byte{0x91, 0x01})
	f.Fuzz(func(t *testing.T, raw []byte) {
		caller := ops.Caller{Node: "00ff", Name: "phone", Mode: ops.ModeRead}
		b, err := relayPayload(raw, 42, caller)
		if err != nil {
			return
		}
		var req ops.Request
		if err := ops.Unmarshal(b, &req); err != nil {
			// Unknown members the caller sent travel as they came; a member
			// of a known name and the wrong type makes the request
			// undecodable at the node, which answers BAD_REQUEST.
			return
		}
		if req.Relay != 42 || req.Req != 42 || req.Caller == nil || *req.Caller != caller {
			t.Fatalf("relayed %+v caller %+v", req, req.Caller)
		}
		a, err := answerPayload(b, 7)
		if err != nil {
			t.Fatalf("the hub's own payload does not rewrite: %v", err)
		}
		var hdr ops.Header
		if err := ops.Unmarshal(a, &hdr); err != nil || hdr.Req != 7 || hdr.Relay != 0 {
			t.Fatalf("answer %+v %v", hdr, err)
		}
	})
}
