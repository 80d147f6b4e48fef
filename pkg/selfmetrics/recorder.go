// Package selfmetrics is swiftdeployd's own Prometheus metrics: the
// swiftdeploy_* families. The daemon feeds a Recorder at the points where
// it already journals (every journaled event, every journal append, every
// reconcile and policy decision), so what the metrics say is what the
// journal says, and the daemon's hooks stay one call each. The families
// are served on the control socket (GET /metrics) and, with
// `swiftdeployd --metrics-listen ADDR`, on a TCP listener (listen.go).
//
// No label is unbounded: labels take values from fixed sets (results,
// outcomes, reason classes) or name the project; never an image, digest,
// user, URL or free text.
package selfmetrics

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The journal's event names the Recorder derives metrics from (the
// journal package's constants; repeated here so that this package depends
// on nothing of the daemon's).
const (
	evCanaryStep   = "canary_step"
	evCheckPassed  = "check_passed"
	evCheckFailed  = "check_failed"
	evCheckGrace   = "check_grace"
	evPromoted     = "promoted"
	evAborted      = "aborted"
	evRolledBack   = "rolled_back"
	evModeSwitched = "mode_switched"
	evPaused       = "rollout_paused"
	evResumed      = "rollout_resumed"
	evNotifyFailed = "notify_failed"
)

// Label values of swiftdeploy_rollouts_total{outcome}.
const (
	OutcomePromoted   = "promoted"
	OutcomeAborted    = "aborted"
	OutcomeRolledBack = "rolled_back"
)

// Label values of swiftdeploy_canary_aborts_total{reason}: a class of the
// abort's reasons, never their text (which names figures and thresholds).
const (
	AbortOperator         = "operator"
	AbortErrorRate        = "error_rate"
	AbortLatency          = "latency"
	AbortInsufficientData = "insufficient_data"
	AbortProgressDeadline = "progress_deadline"
	AbortOther            = "other"
)

// Recorder holds the swiftdeploy_* families. Its methods are safe for
// concurrent use and never block on I/O.
type Recorder struct {
	reg *prometheus.Registry

	reconciles     *prometheus.CounterVec
	reconcileDur   prometheus.Histogram
	decisions      *prometheus.CounterVec
	rollouts       *prometheus.CounterVec
	checks         *prometheus.CounterVec
	steps          *prometheus.CounterVec
	step           *prometheus.GaugeVec
	weight         *prometheus.GaugeVec
	paused         *prometheus.GaugeVec
	convergence    prometheus.Histogram
	aborts         *prometheus.CounterVec
	journalAppends *prometheus.CounterVec
	journalHealthy prometheus.Gauge
	webhooks       *prometheus.CounterVec
	certExpiry     *prometheus.GaugeVec

	mu          sync.Mutex
	pendingEdit time.Time // the first manifest edit not yet converged
	failed      atomic.Int64
}

// New returns a Recorder with every family registered, plus the Go
// runtime's and the process's collectors.
func New() *Recorder {
	r := &Recorder{
		reg: prometheus.NewRegistry(),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swiftdeploy_reconciles_total", Help: "Reconcile runs by result (ok or error; a denied deploy is an error).",
		}, []string{"result"}),
		reconcileDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swiftdeploy_reconcile_duration_seconds", Help: "Duration of reconcile runs.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swiftdeploy_policy_decisions_total", Help: "Policy gate decisions by policy and result (allow or deny).",
		}, []string{"policy", "result"}),
		rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swiftdeploy_rollouts_total", Help: "Finished canary rollouts by outcome (promoted, aborted, rolled_back), counted when nginx serves the result.",
		}, []string{"outcome"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swiftdeploy_canary_checks_total", Help: "Canary analysis checks by result (pass, fail, no_data, grace).",
		}, []string{"result"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swiftdeploy_canary_steps_total", Help: "Canary steps taken (a step counts when nginx serves its weight).",
		}, []string{"service"}),
		step: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "swiftdeploy_canary_step", Help: "The canary's current step (1-based; 0 when no stepped canary runs).",
		}, []string{"service"}),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "swiftdeploy_canary_weight_ratio", Help: "The share of traffic nginx sends to the canary (0 to 1).",
		}, []string{"service"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "swiftdeploy_canary_paused", Help: "1 while the canary's rollout is paused.",
		}, []string{"service"}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "swiftdeploy_convergence_seconds", Help: "Time from a manifest edit to the next reconcile that converged.",
			Buckets: []float64{0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600},
		}),
		aborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swiftdeploy_canary_aborts_total", Help: "Canary aborts by reason class (operator, error_rate, latency, insufficient_data, progress_deadline, other).",
		}, []string{"reason"}),
		journalAppends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swiftdeploy_journal_appends_total", Help: "Journal appends by result (ok or error).",
		}, []string{"result"}),
		journalHealthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "swiftdeploy_journal_healthy", Help: "1 while the last journal append succeeded, 0 while records are being lost.",
		}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "swiftdeploy_webhook_deliveries_total", Help: "Webhook deliveries by result (delivered, or failed after retries or a full queue).",
		}, []string{"result"}),
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "swiftdeploy_tls_certificate_expiry_seconds", Help: "Seconds until the certificate served for the host expires.",
		}, []string{"host"}),
	}
	r.reg.MustRegister(r.reconciles, r.reconcileDur, r.decisions, r.rollouts, r.checks, r.steps, r.step, r.weight, r.paused,
		r.convergence, r.aborts, r.journalAppends, r.journalHealthy, r.webhooks, r.certExpiry,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	// Every known label value starts at 0, so that rate() and increase()
	// see the first event (a series born at 1 has no increase).
	for _, v := range []string{"ok", "error"} {
		r.reconciles.WithLabelValues(v)
		r.journalAppends.WithLabelValues(v)
	}
	for _, v := range []string{OutcomePromoted, OutcomeAborted, OutcomeRolledBack} {
		r.rollouts.WithLabelValues(v)
	}
	for _, v := range []string{"pass", "fail", "no_data", "grace"} {
		r.checks.WithLabelValues(v)
	}
	for _, v := range []string{AbortOperator, AbortErrorRate, AbortLatency, AbortInsufficientData, AbortProgressDeadline, AbortOther} {
		r.aborts.WithLabelValues(v)
	}
	for _, v := range []string{"delivered", "failed"} {
		r.webhooks.WithLabelValues(v)
	}
	r.journalHealthy.Set(1)
	return r
}

// Registry is the registry holding the families (tests gather it).
func (r *Recorder) Registry() *prometheus.Registry { return r.reg }

// Handler serves the families in Prometheus's exposition formats.
func (r *Recorder) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}

// ReconcileFailures is how many reconciles failed (tests).
func (r *Recorder) ReconcileFailures() int64 { return r.failed.Load() }

// Reconciled records one reconcile. A successful one converges every
// manifest edit seen before it (ManifestEdited): their time to converge
// is observed from the first of them.
func (r *Recorder) Reconciled(d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
		r.failed.Add(1)
	}
	r.reconciles.WithLabelValues(result).Inc()
	r.reconcileDur.Observe(d.Seconds())
	if err != nil {
		return
	}
	r.mu.Lock()
	edit := r.pendingEdit
	r.pendingEdit = time.Time{}
	r.mu.Unlock()
	if !edit.IsZero() {
		r.convergence.Observe(time.Since(edit).Seconds())
	}
}

// ManifestEdited notes the time of a manifest edit (the first file event
// of a burst) that a reconcile is about to act on. Until a reconcile
// succeeds, later edits keep the first one's time: a denied or failed
// deploy that converges later counts from the edit that asked for it.
func (r *Recorder) ManifestEdited(at time.Time) {
	if at.IsZero() {
		return
	}
	r.mu.Lock()
	if r.pendingEdit.IsZero() {
		r.pendingEdit = at
	}
	r.mu.Unlock()
}

// Decision records one policy decision.
func (r *Recorder) Decision(policy string, allowed bool) {
	result := "deny"
	if allowed {
		result = "allow"
	}
	if policy == "" {
		policy = "unknown"
	}
	r.decisions.WithLabelValues(policy, result).Inc()
}

// JournalAppend records the result of one journal append.
func (r *Recorder) JournalAppend(err error) {
	if err != nil {
		r.journalAppends.WithLabelValues("error").Inc()
		r.journalHealthy.Set(0)
		return
	}
	r.journalAppends.WithLabelValues("ok").Inc()
	r.journalHealthy.Set(1)
}

// WebhookDelivered records a webhook delivered (failures come as the
// journal's notify_failed events, see Event).
func (r *Recorder) WebhookDelivered() { r.webhooks.WithLabelValues("delivered").Inc() }

// TLSCertificateExpiresIn is the hook for the TLS support: it sets how
// long the certificate served for host (a name from the manifest, so the
// label stays bounded) has left; left <= 0 means expired. ForgetTLSCertificate
// drops a host no longer served.
func (r *Recorder) TLSCertificateExpiresIn(host string, left time.Duration) {
	r.certExpiry.WithLabelValues(host).Set(left.Seconds())
}

// ForgetTLSCertificate removes host's expiry series.
func (r *Recorder) ForgetTLSCertificate(host string) { r.certExpiry.DeleteLabelValues(host) }

// Event derives metrics from one journaled event of service's project
// (details as journaled). It is called whether or not the append itself
// succeeded: the event happened either way.
func (r *Recorder) Event(service, name, user string, details map[string]any) {
	switch name {
	case evCanaryStep:
		r.steps.WithLabelValues(service).Inc()
		if s, ok := number(details["step"]); ok {
			r.step.WithLabelValues(service).Set(s)
		}
		if w, ok := number(details["weight"]); ok {
			r.weight.WithLabelValues(service).Set(w / 100)
		}
		r.paused.WithLabelValues(service).Set(0)
	case evCheckPassed:
		r.checks.WithLabelValues("pass").Inc()
	case evCheckGrace:
		r.checks.WithLabelValues("grace").Inc()
	case evCheckFailed:
		result := "fail"
		if o, _ := details["outcome"].(string); o == "no_data" {
			result = "no_data"
		}
		r.checks.WithLabelValues(result).Inc()
	case evPromoted, evAborted, evRolledBack:
		outcome := map[string]string{evPromoted: OutcomePromoted, evAborted: OutcomeAborted, evRolledBack: OutcomeRolledBack}[name]
		r.rollouts.WithLabelValues(outcome).Inc()
		if name == evAborted {
			r.aborts.WithLabelValues(AbortReason(user, strings_(details["reasons"]))).Inc()
		}
		r.step.WithLabelValues(service).Set(0)
		r.weight.WithLabelValues(service).Set(0)
		r.paused.WithLabelValues(service).Set(0)
	case evModeSwitched:
		// A canary without steps has no canary_step events: its weight is
		// the one nginx serves when the mode switches.
		if mode, _ := details["mode"].(string); mode == "canary" {
			if w, ok := number(details["weight"]); ok {
				r.weight.WithLabelValues(service).Set(w / 100)
			}
		} else {
			r.weight.WithLabelValues(service).Set(0)
			r.step.WithLabelValues(service).Set(0)
		}
	case evPaused:
		r.paused.WithLabelValues(service).Set(1)
	case evResumed:
		r.paused.WithLabelValues(service).Set(0)
	case evNotifyFailed:
		r.webhooks.WithLabelValues("failed").Inc()
	}
}

// AbortReason classes an abort: an operator's (a user made it), else by
// the first reason that names a cause the analysis knows.
func AbortReason(user string, reasons []string) string {
	if user != "" {
		return AbortOperator
	}
	for _, why := range reasons {
		l := strings.ToLower(why)
		switch {
		// Missing figures first: "Error rate unknown: ..." is no data,
		// not a high error rate.
		case strings.Contains(l, "insufficient data"), strings.Contains(l, "unknown"), strings.Contains(l, "no data"),
			strings.Contains(l, "not being scraped"), strings.Contains(l, "scrape failed"), strings.Contains(l, "routed no request"):
			return AbortInsufficientData
		case strings.Contains(l, "error rate"):
			return AbortErrorRate
		case strings.Contains(l, "latency"):
			return AbortLatency
		case strings.Contains(l, "progress deadline"), strings.Contains(l, "progressdeadline"):
			return AbortProgressDeadline
		}
	}
	return AbortOther
}

// number reads a journaled figure (an int in the process, a float64 or
// json.Number once decoded).
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return f, err == nil
	}
	return 0, false
}

// strings_ reads a journaled list of reasons.
func strings_(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, 0, len(l))
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
