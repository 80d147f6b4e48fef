package controller

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
)

// daemonMetrics are swiftdeployd's own Prometheus metrics, served on the
// control socket at /metrics.
type daemonMetrics struct {
	reg        *prometheus.Registry
	reconciles *prometheus.CounterVec
	duration   prometheus.Histogram
	decisions  *prometheus.CounterVec
	failed     atomic.Int64 // failed reconciles, for tests
}

func (m *daemonMetrics) failures() int64 { return m.failed.Load() }

func newDaemonMetrics() *daemonMetrics {
	m := &daemonMetrics{
		reg: prometheus.NewRegistry(),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swiftdeploy_reconciles_total", Help: "Reconcile runs by result.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swiftdeploy_reconcile_duration_seconds", Help: "Duration of reconcile runs.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swiftdeploy_policy_decisions_total", Help: "Policy gate decisions.",
		}, []string{"policy", "allowed"}),
	}
	m.reg.MustRegister(m.reconciles, m.duration, m.decisions, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *daemonMetrics) observeReconcile(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
		m.failed.Add(1)
	}
	m.reconciles.WithLabelValues(result).Inc()
	m.duration.Observe(d.Seconds())
}

func (m *daemonMetrics) observeDecision(d policy.Decision) {
	allowed := "false"
	if d.Allowed {
		allowed = "true"
	}
	m.decisions.WithLabelValues(d.Policy, allowed).Inc()
}
