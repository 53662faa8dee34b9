package agent_test

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/myclerk/myclerk-bridge/node/agent"
	"github.com/myclerk/myclerk-bridge/node/hub"
	"github.com/myclerk/myclerk-bridge/node/hub/hubtest"
	"github.com/myclerk/myclerk-bridge/node/identity"
	"github.com/myclerk/myclerk-bridge/node/ops"
	"github.com/myclerk/myclerk-bridge/wire"
	"github.com/myclerk/myclerk-bridge/wire/payload"
)

// TestNodeDispatch: a node serves, from the op table, only what its owner
// serves, relayed by its hub with a caller whose mode allows the op.
func TestNodeDispatch(t *testing.T) {
	w := hubtest.New(t, hub.Config{})
	node, hubSide := w.Pair(w.Member(identity.RoleNode, "pi"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sensor := agent.NewSimSensor("temp", "t", 20, time.Hour)
	go (&agent.Agent{Devices: []agent.Device{sensor}, Log: zerolog.Nop()}).Serve(ctx, node)
	if m, err := hubSide.Recv(ctx); err != nil || m.Op != wire.OpDeviceAnnounce {
		t.Fatalf("announce: %v %v", m.Op, err)
	}
	rw := &ops.Caller{Node: "00", Name: "phone", Mode: ops.ModeReadWrite}
	cases := []struct {
		name   string
		op     wire.Op
		req    ops.Request
		answer bool
		code   wire.Code // of an ERROR answer; OK for a reply
	}{
		{"served, allowed", wire.OpDeviceConfigure, ops.Request{Relay: 11, Device: "pi/temp", Settings: map[string]string{"interval": "5s"}, Caller: rw}, true, wire.CodeOK},
		{"no relay", wire.OpDeviceConfigure, ops.Request{Req: 12, Device: "pi/temp", Caller: rw}, true, wire.CodeBadRequest},
		{"no caller", wire.OpDeviceConfigure, ops.Request{Relay: 13, Device: "pi/temp"}, true, wire.CodeBadRequest},
		{"the caller's mode does not allow it", wire.OpDeviceConfigure, ops.Request{Relay: 14, Device: "pi/temp", Caller: &ops.Caller{Mode: ops.ModeRead}}, true, wire.CodeForbidden},
		{"a device it does not have", wire.OpDeviceConfigure, ops.Request{Relay: 15, Device: "pi/none", Caller: rw}, true, wire.CodeNotFound},
		{"an owner's op it does not serve yet", wire.OpGPIOLineSet, ops.Request{Relay: 16, Device: "pi/temp", Caller: rw}, true, wire.CodeUnsupported},
		{"a bad setting", wire.OpDeviceConfigure, ops.Request{Relay: 17, Device: "pi/temp", Settings: map[string]string{"x": "1"}, Caller: rw}, true, wire.CodeBadRequest},
		{"an op the hub serves: ignored", wire.OpDeviceList, ops.Request{Relay: 18, Caller: rw}, false, 0},
	}
	for _, tc := range cases {
		tc.req.Req = max(tc.req.Req, tc.req.Relay)
		b, _ := ops.Marshal(tc.req)
		if err := hubSide.Send(ctx, tc.op, b); err != nil {
			t.Fatal(err)
		}
		if !tc.answer {
			continue
		}
		m, err := hubSide.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var code wire.Code
		var ref uint32
		if m.Op == wire.OpError {
			var e payload.Error
			e.Unmarshal(m.Payload)
			code, ref = e.Code, e.RefSeq
		} else {
			var r ops.Reply
			ops.Unmarshal(m.Payload, &r)
			if m.Op != tc.op || r.Relay != tc.req.Relay || r.Result != "configured" || r.Devices[0].Capabilities["interval"] != "5s" {
				t.Errorf("%s: answer %v %+v", tc.name, m.Op, r)
			}
			ref = r.Relay
		}
		if code != tc.code || ref != tc.req.Req {
			t.Errorf("%s: %v (ref %d), want %v (ref %d)", tc.name, code, ref, tc.code, tc.req.Req)
		}
	}
	// Nothing was answered to the op the hub serves: the next answer is
	// to the next request.
	b, _ := ops.Marshal(ops.Request{Req: 19, Relay: 19, Device: "temp", Caller: rw})
	hubSide.Send(ctx, wire.OpDeviceConfigure, b)
	if m, _ := hubSide.Recv(ctx); m.Op != wire.OpDeviceConfigure {
		t.Errorf("after the ignored op: %v", m.Op)
	}
}
