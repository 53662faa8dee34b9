// Package metrics counts what a node's sessions do, for Prometheus:
// frames by direction, tier, operation and result, rejected frames by
// reason, and live sessions. A Metrics value is made with the registry it
// reports to; nothing is global.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myclerk/myclerk-bridge/wire"
)

// Metrics are a node's session counters. A nil *Metrics counts nothing.
type Metrics struct {
	frames   *prometheus.CounterVec
	rejected *prometheus.CounterVec
	refused  *prometheus.CounterVec
	sessions prometheus.Gauge
}

// New registers the counters with reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myclerk_frames_total",
			Help: "Frames sent (out) and received (in), by tier, operation and result.",
		}, []string{"direction", "tier", "op", "result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myclerk_rejected_frames_total",
			Help: "Received frames that were dropped or refused, by reason.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myclerk_refused_requests_total",
			Help: "Requests of authenticated peers answered with an error (the op table's gate or the handler), by operation and error code.",
		}, []string{"op", "code"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "myclerk_sessions",
			Help: "Sessions open now.",
		}),
	}
	for _, c := range []prometheus.Collector{m.frames, m.rejected, m.refused, m.sessions} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Frame counts one frame.
func (m *Metrics) Frame(out bool, tier wire.Tier, op wire.Op, result string) {
	if m == nil {
		return
	}
	dir := "in"
	if out {
		dir = "out"
	}
	m.frames.WithLabelValues(dir, strconv.Itoa(int(tier)), op.String(), result).Inc()
}

// Rejected counts a refused frame.
func (m *Metrics) Rejected(reason string) {
	if m == nil {
		return
	}
	m.rejected.WithLabelValues(reason).Inc()
}

// Refused counts a request answered with an error.
func (m *Metrics) Refused(op wire.Op, code wire.Code) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(op.String(), code.String()).Inc()
}

// SessionOpened and SessionClosed keep the session gauge.
func (m *Metrics) SessionOpened() {
	if m != nil {
		m.sessions.Inc()
	}
}

// SessionClosed is SessionOpened's counterpart.
func (m *Metrics) SessionClosed() {
	if m != nil {
		m.sessions.Dec()
	}
}
