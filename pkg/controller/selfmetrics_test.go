package controller

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// The daemon's own metrics follow what it journals: a stepped canary
// that takes two steps and is aborted by its analysis, with a webhook
// receiver, reads back from the /metrics handler as two steps, one abort
// for its error rate, a failed check, the weight back at 0, the
// deliveries, and journal appends.
func TestSelfMetricsFollowTheJournal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	h := newHarness(t, fakeManifest("app:1", 2, steppedCanary("app:2", 1, true))+
		"notify:\n  - url: "+srv.URL+"/hook\n    events: [step, aborted]\n")
	h.mustConverge()
	h.analyze(time.Now())
	h.scrape(3)
	h.analyze(h.after(time.Second))
	h.analyze(h.after(2 * time.Second)) // step 2
	mid := readSelfMetrics(t, h.d)
	if w := mid.value(t, "swiftdeploy_canary_weight_ratio", "service", "demo"); w != 0.25 {
		t.Errorf("weight at step 2: %v, want 0.25", w)
	}
	h.app.set(func(a *appMetrics) { a.errRate[stack.TrackCanary] = 0.5 })
	h.scrape(3)
	h.analyze(h.after(time.Second)) // fails 1/1: aborted
	if r := h.running(); r != "stable:app:1×2" {
		t.Fatalf("not aborted: %s", r)
	}
	var m selfMetrics
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		m = readSelfMetrics(t, h.d)
		if m.value(t, "swiftdeploy_webhook_deliveries_total", "result", "delivered") >= 3 || time.Now().After(deadline) {
			break
		}
	}
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"swiftdeploy_canary_steps_total", "service", "demo", 2},
		{"swiftdeploy_canary_step", "service", "demo", 0},
		{"swiftdeploy_canary_weight_ratio", "service", "demo", 0},
		{"swiftdeploy_rollouts_total", "outcome", "aborted", 1},
		{"swiftdeploy_rollouts_total", "outcome", "promoted", 0},
		{"swiftdeploy_canary_aborts_total", "reason", "error_rate", 1},
		{"swiftdeploy_canary_checks_total", "result", "fail", 1},
		{"swiftdeploy_webhook_deliveries_total", "result", "delivered", 3},
		{"swiftdeploy_journal_healthy", "", "", 1},
	} {
		if got := m.value(t, c.name, c.label, c.value); got != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.name, c.label, c.value, got, c.want)
		}
	}
	if got := m.value(t, "swiftdeploy_journal_appends_total", "result", "ok"); got < 5 {
		t.Errorf("journal appends ok = %v, want every journaled record", got)
	}
	if got := m.value(t, "swiftdeploy_policy_decisions_total", "policy", "canary_safety"); got < 2 {
		t.Errorf("canary_safety decisions = %v, want the checks' decisions", got)
	}
}

type selfMetrics map[string]*dto.MetricFamily

func readSelfMetrics(t *testing.T, d *Daemon) selfMetrics {
	t.Helper()
	rec := httptest.NewRecorder()
	d.metrics.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// value sums the series of name whose label has value (all, with no label).
func (m selfMetrics) value(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mf := m[name]
	if mf == nil {
		t.Fatalf("%s not exported", name)
	}
	var sum float64
	for _, s := range mf.GetMetric() {
		match := label == ""
		for _, l := range s.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				match = true
			}
		}
		if !match {
			continue
		}
		switch {
		case s.Counter != nil:
			sum += s.GetCounter().GetValue()
		case s.Gauge != nil:
			sum += s.GetGauge().GetValue()
		}
	}
	return sum
}
