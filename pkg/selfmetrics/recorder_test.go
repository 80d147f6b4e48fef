package selfmetrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// walk feeds r the events of a stepped canary that walks two steps and
// is promoted, then a second one that is aborted by its analysis.
func walk(r *Recorder) {
	r.Event("shop", evCanaryStep, "", map[string]any{"image": "app:2", "step": 1, "steps": 2, "weight": 10})
	r.Event("shop", evCheckGrace, "", map[string]any{"outcome": "grace"})
	r.Event("shop", evCheckPassed, "", map[string]any{"outcome": "pass"})
	r.Event("shop", evCanaryStep, "alice", map[string]any{"image": "app:2", "step": 2, "steps": 2, "weight": 50.0})
	r.Event("shop", evCheckPassed, "", map[string]any{"outcome": "pass"})
	r.Event("shop", evPromoted, "alice", map[string]any{"image": "app:2", "weight": 100})
	r.Event("shop", evCanaryStep, "", map[string]any{"image": "app:3", "step": 1, "steps": 2, "weight": 10})
	r.Event("shop", evRolloutPausedForTest, "bob", nil)
	r.Event("shop", evCheckFailed, "", map[string]any{"outcome": "fail", "reasons": []any{"Error rate exceeds 1% threshold"}})
	r.Event("shop", evCheckFailed, "", map[string]any{"outcome": "no_data"})
	r.Event("shop", evAborted, "", map[string]any{"image": "app:3", "reasons": []any{"2 of 2 allowed failed checks reached", "Error rate exceeds 1% threshold"}, "weight": 0})
	r.Event("shop", evNotifyFailed, "", map[string]any{"url": "https://hooks.example/…"})
	r.WebhookDelivered()
	r.Decision("canary_safety", true)
	r.Decision("canary_safety", false)
	r.Decision("infrastructure", true)
	r.JournalAppend(nil)
}

const evRolloutPausedForTest = evPaused

func TestEventsDeriveMetrics(t *testing.T) {
	r := New()
	walk(r)
	for _, c := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"steps", r.steps.WithLabelValues("shop"), 3},
		{"step after abort", r.step.WithLabelValues("shop"), 0},
		{"weight after abort", r.weight.WithLabelValues("shop"), 0},
		{"paused after abort", r.paused.WithLabelValues("shop"), 0},
		{"promoted", r.rollouts.WithLabelValues(OutcomePromoted), 1},
		{"aborted", r.rollouts.WithLabelValues(OutcomeAborted), 1},
		{"rolled back", r.rollouts.WithLabelValues(OutcomeRolledBack), 0},
		{"abort reason", r.aborts.WithLabelValues(AbortErrorRate), 1},
		{"abort other", r.aborts.WithLabelValues(AbortOther), 0},
		{"checks pass", r.checks.WithLabelValues("pass"), 2},
		{"checks fail", r.checks.WithLabelValues("fail"), 1},
		{"checks no data", r.checks.WithLabelValues("no_data"), 1},
		{"checks grace", r.checks.WithLabelValues("grace"), 1},
		{"webhook delivered", r.webhooks.WithLabelValues("delivered"), 1},
		{"webhook failed", r.webhooks.WithLabelValues("failed"), 1},
		{"decisions allow", r.decisions.WithLabelValues("canary_safety", "allow"), 1},
		{"decisions deny", r.decisions.WithLabelValues("canary_safety", "deny"), 1},
		{"journal ok", r.journalAppends.WithLabelValues("ok"), 1},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
}

// The gauges follow the rollout as it is journaled: a step's weight, a
// pause, a fixed-weight canary's mode switch.
func TestGaugesFollowTheRollout(t *testing.T) {
	r := New()
	w := func() float64 { return testutil.ToFloat64(r.weight.WithLabelValues("shop")) }
	r.Event("shop", evCanaryStep, "", map[string]any{"step": 2, "weight": 25})
	if got, s := w(), testutil.ToFloat64(r.step.WithLabelValues("shop")); got != 0.25 || s != 2 {
		t.Errorf("after step 2 at 25%%: weight %v step %v", got, s)
	}
	r.Event("shop", evPaused, "bob", nil)
	if p := testutil.ToFloat64(r.paused.WithLabelValues("shop")); p != 1 {
		t.Errorf("paused = %v after rollout_paused", p)
	}
	r.Event("shop", evResumed, "bob", nil)
	if p := testutil.ToFloat64(r.paused.WithLabelValues("shop")); p != 0 {
		t.Errorf("paused = %v after rollout_resumed", p)
	}
	r.Event("shop", evRolledBack, "bob", map[string]any{"image": "app:2"})
	if got := w(); got != 0 {
		t.Errorf("weight %v after rolled_back", got)
	}
	r.Event("shop", evModeSwitched, "", map[string]any{"mode": "canary", "weight": 20})
	if got := w(); got != 0.2 {
		t.Errorf("weight %v after a switch to a 20%% canary", got)
	}
	r.Event("shop", evModeSwitched, "", map[string]any{"mode": "stable"})
	if got := w(); got != 0 {
		t.Errorf("weight %v after a switch to stable", got)
	}
}

func TestAbortReason(t *testing.T) {
	for _, c := range []struct {
		user    string
		reasons []string
		want    string
	}{
		{"alice", []string{"Error rate exceeds 1% threshold"}, AbortOperator},
		{"", []string{"3 of 3 allowed failed checks reached", "Error rate exceeds 1% threshold"}, AbortErrorRate},
		{"", []string{"3 of 3 allowed failed checks reached", "Proxy P99 latency exceeds 500ms"}, AbortLatency},
		{"", []string{"3 of 3 allowed failed checks reached", "Error rate unknown: no error metrics for the canary"}, AbortInsufficientData},
		{"", []string{"3 of 3 allowed failed checks reached", "Insufficient data: 3 requests in window, need at least 20"}, AbortInsufficientData},
		{"", []string{"canary target app-canary-1: scrape failed: context deadline exceeded"}, AbortInsufficientData},
		{"", []string{"Deployment shop-canary exceeded its progress deadline"}, AbortProgressDeadline},
		{"", []string{"3 of 3 allowed failed checks reached"}, AbortOther},
		{"", nil, AbortOther},
	} {
		if got := AbortReason(c.user, c.reasons); got != c.want {
			t.Errorf("AbortReason(%q, %q) = %s, want %s", c.user, c.reasons, got, c.want)
		}
	}
}

// Time to converge counts from the first edit a reconcile acted on, across
// failed reconciles, and is observed once.
func TestConvergenceFromFirstEdit(t *testing.T) {
	r := New()
	count := func() uint64 {
		m := &dtoHist{}
		m.read(t, r, "swiftdeploy_convergence_seconds")
		return m.count
	}
	r.Reconciled(time.Millisecond, nil) // no edit: not observed
	if n := count(); n != 0 {
		t.Fatalf("a reconcile without an edit observed %d", n)
	}
	edit := time.Now().Add(-3 * time.Second)
	r.ManifestEdited(edit)
	r.Reconciled(time.Millisecond, errors.New("denied"))
	r.ManifestEdited(time.Now()) // a later edit does not restart the clock
	if n := count(); n != 0 {
		t.Fatalf("a failed reconcile observed %d", n)
	}
	r.Reconciled(time.Millisecond, nil)
	r.Reconciled(time.Millisecond, nil)
	m := &dtoHist{}
	m.read(t, r, "swiftdeploy_convergence_seconds")
	if m.count != 1 || m.sum < 3 {
		t.Errorf("convergence: %d observations, sum %.2fs; want 1 of at least 3s", m.count, m.sum)
	}
	if f := r.ReconcileFailures(); f != 1 {
		t.Errorf("ReconcileFailures = %d", f)
	}
}

type dtoHist struct {
	count uint64
	sum   float64
}

func (h *dtoHist) read(t *testing.T, r *Recorder, name string) {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			hist := mf.GetMetric()[0].GetHistogram()
			h.count, h.sum = hist.GetSampleCount(), hist.GetSampleSum()
		}
	}
}

// No label carries what is unbounded: images, users, reasons' text, URLs.
func TestLabelsAreBounded(t *testing.T) {
	r := New()
	walk(r)
	r.TLSCertificateExpiresIn("shop.example", 30*24*time.Hour)
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"shop": true, "shop.example": true}
	for _, v := range []string{"ok", "error", "allow", "deny", "canary_safety", "infrastructure", "pass", "fail", "no_data", "grace", "delivered", "failed",
		OutcomePromoted, OutcomeAborted, OutcomeRolledBack, AbortOperator, AbortErrorRate, AbortLatency, AbortInsufficientData, AbortProgressDeadline, AbortOther} {
		allowed[v] = true
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "swiftdeploy_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !allowed[l.GetValue()] {
					t.Errorf("%s{%s=%q}: a label value outside the fixed sets", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// exposition is what the listener serves after a walk.
func exposition(t *testing.T) []byte {
	t.Helper()
	r := New()
	walk(r)
	r.ManifestEdited(time.Now().Add(-time.Second))
	r.Reconciled(200*time.Millisecond, nil)
	r.TLSCertificateExpiresIn("shop.example", 30*24*time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr, _, err := Serve(ctx, "127.0.0.1:0", r.Handler())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	for _, want := range []string{"swiftdeploy_canary_steps_total{service=\"shop\"} 3", "swiftdeploy_rollouts_total{outcome=\"aborted\"} 1", "swiftdeploy_convergence_seconds_count 1"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the listener's output lacks %q", want)
		}
	}
	return b
}

// The client library's linter (the rules promtool applies) finds nothing.
func TestExpositionLintClean(t *testing.T) {
	problems, err := promlint.New(bytes.NewReader(exposition(t))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "swiftdeploy_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// promtoolPath is where `task prometheus:build` builds promtool.
const promtoolPath = "../../.cache/prometheus/bin/promtool"

// `promtool check metrics` on the listener's output is clean. promtool
// is built by `task prometheus:build` (.ci/run does); under CI a
// missing promtool fails this test.
func TestPromtoolCheckMetrics(t *testing.T) {
	bin, err := filepath.Abs(promtoolPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool missing (%v): run `task prometheus:build`", err)
		}
		t.Skipf("promtool missing (%v): run `task prometheus:build`", err)
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition(t))
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestCheckAddr(t *testing.T) {
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:9464", true},
		{"[::1]:9464", true},
		{"10.1.2.3:9464", true},
		{"192.168.1.5:0", true},
		{"localhost:9464", true},
		{":9464", false},
		{"0.0.0.0:9464", false},
		{"[::]:9464", false},
		{"8.8.8.8:9464", false},
		{"127.0.0.1", false},
		{"127.0.0.1:notaport", false},
	} {
		err := CheckAddr(context.Background(), c.addr)
		if (err == nil) != c.ok {
			t.Errorf("CheckAddr(%q) = %v, want ok=%v", c.addr, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--metrics-listen") {
			t.Errorf("CheckAddr(%q): %v does not name the flag", c.addr, err)
		}
	}
}
