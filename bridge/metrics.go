package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the bridge's counters, on the hub's /metrics beside the
// session counters (frames by tier, operation and result).
type Metrics struct {
	Transactions *prometheus.CounterVec
	MatrixFrames *prometheus.CounterVec
	Notices      *prometheus.CounterVec
	Logins       prometheus.Gauge

	reg *prometheus.Registry
}

// newMetrics registers with reg; a nil reg (no metrics listener) gets a
// private registry, so counting code never checks.
func newMetrics(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		Transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myclerk_matrix_transactions_total",
			Help: "Appservice transactions from the homeserver, by result (applied, duplicate, failed).",
		}, []string{"result"}),
		MatrixFrames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myclerk_matrix_frame_events_total",
			Help: "eu.myclerk.frame room events, by direction and result (accepted, duplicate, forbidden, malformed, dropped, sent, failed).",
		}, []string{"direction", "result"}),
		Notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myclerk_matrix_portal_notices_total",
			Help: "Device notices queued to portal rooms, by kind.",
		}, []string{"kind"}),
		Logins: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "myclerk_matrix_logins",
			Help: "Matrix users connected to the family now.",
		}),
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m.reg = reg
	reg.MustRegister(m.Transactions, m.MatrixFrames, m.Notices, m.Logins)
	return m
}

// watchQueue exports depth as a gauge.
func (m *Metrics) watchQueue(name, help string, depth func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, depth))
}

// watchFederations exports the number of federations by state.
func (m *Metrics) watchFederations(count func(state string) float64) {
	for _, st := range []string{"waiting", "confirmed", "revoked"} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "myclerk_matrix_federations",
			Help:        "Federations with other families, by state (waiting for the code, confirmed, revoked).",
			ConstLabels: prometheus.Labels{"state": st},
		}, func() float64 { return count(st) }))
	}
}
