package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/myclerk/myclerk-bridge/wire"
)

func TestCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Frame(true, wire.Tier3, wire.OpDeviceList, "ok")
	m.Frame(true, wire.Tier3, wire.OpDeviceList, "ok")
	m.Frame(false, wire.Tier4, wire.OpSessionAuth, "ok")
	m.Rejected("authentication failed")
	m.Refused(wire.OpDeviceLock, wire.CodeConflict)
	m.SessionOpened()
	m.SessionOpened()
	m.SessionClosed()
	if got := testutil.ToFloat64(m.frames.WithLabelValues("out", "3", "DEVICE_LIST", "ok")); got != 2 {
		t.Errorf("frames out %v", got)
	}
	if got := testutil.ToFloat64(m.rejected.WithLabelValues("authentication failed")); got != 1 {
		t.Errorf("rejected %v", got)
	}
	if got := testutil.ToFloat64(m.refused.WithLabelValues("DEVICE_LOCK", "CONFLICT")); got != 1 {
		t.Errorf("refused %v", got)
	}
	if got := testutil.ToFloat64(m.sessions); got != 1 {
		t.Errorf("sessions %v", got)
	}
	if _, err := New(reg); err == nil {
		t.Error("registered twice")
	}
	var none *Metrics
	none.Frame(true, wire.Tier3, wire.OpNOP, "ok") // a nil Metrics counts nothing, and does not crash
	none.SessionOpened()
	none.Refused(wire.OpNOP, wire.CodeConflict)
}
