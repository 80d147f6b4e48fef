package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testproc"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// prometheusBin is the server `task prometheus:build` (and k8s:build)
// puts into the shared cache.
const prometheusBin = "../.cache/prometheus/bin/prometheus"

// startPrometheus runs the real Prometheus on loopback, scraping target
// (host:port) every second at /metrics; it returns its URL.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin, err := filepath.Abs(prometheusBin)
	if err != nil {
		t.Fatal(err)
	}
	// As in e2e/k8s: $SWIFTDEPLOY_PROMETHEUS names another build.
	if env := os.Getenv("SWIFTDEPLOY_PROMETHEUS"); env != "" {
		bin = env
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Prometheus server at %s (task prometheus:build builds it): %v", bin, err)
		}
		t.Skipf("no Prometheus server at %s (task prometheus:build builds it): %v", bin, err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: swiftdeployd\n  static_configs:\n  - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	testproc.Start(t, "prometheus", cmd, filepath.Join(dir, "prometheus.log"))
	u := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(u + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return u
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promQuery is the value of an instant query's single sample; ok false
// when the result has no sample.
func promQuery(promURL, q string) (float64, bool, error) {
	resp, err := http.Get(promURL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, false, err
	}
	if body.Status != "success" {
		return 0, false, fmt.Errorf("%s: %s", q, body.Error)
	}
	switch len(body.Data.Result) {
	case 0:
		return 0, false, nil
	case 1:
	default:
		return 0, false, fmt.Errorf("%s: %d samples, want one", q, len(body.Data.Result))
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil, err
}

// A real Prometheus scrapes swiftdeployd --metrics-listen while a stepped
// canary walks two steps to its promotion under load, and a second one is
// aborted by its analysis (errors injected at its first step): one query
// per documented family returns what happened.
func TestPrometheusScrapesTheDaemon(t *testing.T) {
	e := newEnv(t)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e.daemonArgs = []string{"--metrics-listen", metricsAddr}
	promURL := startPrometheus(t, metricsAddr)
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hook.Close()

	// As in the steps tests: the walk must not fail on a loaded host's
	// sampling or request times; the abort is errors, judged at 1%.
	base := strings.Replace(e.manifest(images.AppImage, 2, ""), "  min_disk_gb: 0.1\n", "  min_disk_gb: 0.1\n  min_requests: 10\n  max_p99_ms: 3000\n", 1) +
		"notify:\n  - url: " + hook.URL + "/hook\n    events: [step, aborted, promoted]\n"
	e.writeManifest(base)
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})
	l := startTimedLoad(e.url("/"), 5*time.Millisecond)
	defer l.finish()

	steps := "      - {weight: 10, pause: 5s}\n      - {weight: 50, pause: 5s}\n"
	e.writeManifest(withSteps(base, images.AppImageV2, steps, "{interval: 1s, failure_limit: 3, auto_promote: true}"))
	e.waitFor(150*time.Second, "promoted by the analysis", func() (bool, string) {
		s := e.status()
		return s.Rollout == nil && s.Mode == "stable" && s.StableImage == images.AppImageV2, fmt.Sprintf("%s %s %+v", s.Mode, s.StableImage, s.Rollout)
	})
	e.converged(map[string]int{images.AppImageV2: 2})

	// The second rollout: v2 is stable, v1 the canary, failing at step 1
	// (whose pause outlasts the test).
	base2 := strings.Replace(base, "  image: "+images.AppImage+"\n", "  image: "+images.AppImageV2+"\n", 1)
	steps2 := "      - {weight: 10, pause: 10m}\n      - {weight: 50, pause: 5s}\n"
	e.writeManifest(withSteps(base2, images.AppImage, steps2, "{interval: 1s, failure_limit: 3, auto_promote: true}"))
	e.waitFor(90*time.Second, "step 1 of the second canary", func() (bool, string) {
		s := e.status()
		return s.Rollout != nil && s.Rollout.StepPasses > 0, fmt.Sprintf("%+v", s.Rollout)
	})
	e.chaos(api.ChaosRequest{Mode: "error", Rate: 1})
	e.waitFor(60*time.Second, "aborted", func() (bool, string) {
		s := e.status()
		return s.Rollout != nil && s.Rollout.Phase == "aborted" && s.Mode == "stable", fmt.Sprintf("%s %+v", s.Mode, s.Rollout)
	})

	if n := len(e.events(journal.EventCanaryStep)); n != 3 {
		t.Fatalf("%d canary_step events journaled, want 3", n)
	}
	svc := fmt.Sprintf("{service=%q}", e.project)
	eq := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	atLeast := func(min float64) func(float64) bool { return func(v float64) bool { return v >= min } }
	queries := []struct {
		q    string
		want func(float64) bool
		what string
	}{
		{"swiftdeploy_canary_steps_total" + svc, eq(3), "3 (two steps, then one)"},
		{"max_over_time(swiftdeploy_canary_weight_ratio" + svc + "[10m])", eq(0.5), "0.5 at the walk's last step"},
		{"max_over_time(swiftdeploy_canary_step" + svc + "[10m])", eq(2), "2 at the walk's last step"},
		{"swiftdeploy_canary_weight_ratio" + svc, eq(0), "0 after the abort"},
		{"swiftdeploy_canary_step" + svc, eq(0), "0 after the abort"},
		{"max_over_time(swiftdeploy_canary_paused" + svc + "[10m])", eq(0), "0 (never paused)"},
		{`swiftdeploy_rollouts_total{outcome="promoted"}`, eq(1), "one promotion"},
		{`swiftdeploy_rollouts_total{outcome="aborted"}`, eq(1), "one abort"},
		{`swiftdeploy_rollouts_total{outcome="rolled_back"}`, eq(0), "no rollback"},
		{`swiftdeploy_canary_aborts_total{reason="error_rate"}`, eq(1), "one abort for the error rate"},
		{`sum(swiftdeploy_canary_aborts_total)`, eq(1), "one abort in all"},
		{`swiftdeploy_canary_checks_total{result="pass"}`, atLeast(4), "the passing checks of both rollouts"},
		{`swiftdeploy_canary_checks_total{result="fail"}`, atLeast(1), "the failed checks before the abort"},
		{`swiftdeploy_policy_decisions_total{policy="canary_safety",result="allow"}`, atLeast(4), "allowed checks and promotion"},
		{`swiftdeploy_policy_decisions_total{policy="canary_safety",result="deny"}`, atLeast(1), "the failed checks' denials"},
		{`swiftdeploy_policy_decisions_total{policy="infrastructure",result="allow"}`, atLeast(2), "the deploys' gates"},
		{`swiftdeploy_reconciles_total{result="ok"}`, atLeast(3), "the reconciles"},
		{`swiftdeploy_reconcile_duration_seconds_count`, atLeast(3), "one duration per reconcile"},
		{`swiftdeploy_convergence_seconds_count`, atLeast(2), "the two canary edits (and the first deploy) converged"},
		{`swiftdeploy_journal_appends_total{result="ok"}`, atLeast(10), "the journaled records"},
		{`swiftdeploy_journal_appends_total{result="error"}`, eq(0), "no failed append"},
		{`swiftdeploy_journal_healthy`, eq(1), "a healthy journal"},
		{`swiftdeploy_webhook_deliveries_total{result="delivered"}`, atLeast(5), "steps, promotion and abort delivered"},
		{`swiftdeploy_webhook_deliveries_total{result="failed"}`, eq(0), "no failed delivery"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The last scrape may predate the abort by up to a second.
	for _, q := range queries {
		var v float64
		var ok bool
		var err error
		for {
			v, ok, err = promQuery(promURL, q.q)
			if err == nil && ok && q.want(v) || ctx.Err() != nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		switch {
		case err != nil:
			t.Errorf("%s: %v", q.q, err)
		case !ok:
			t.Errorf("%s: no sample, want %s", q.q, q.what)
		case !q.want(v):
			t.Errorf("%s = %v, want %s", q.q, v, q.what)
		default:
			t.Logf("%s = %v", q.q, v)
		}
	}
}
