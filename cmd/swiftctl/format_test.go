package main

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

func TestWriteDashboard(t *testing.T) {
	infraPass := api.Decision{Policy: "infrastructure", Allowed: true}
	tests := []struct {
		name   string
		status api.Status
		want   string
	}{
		{
			name: "the article's canary",
			status: api.Status{
				Project: "shop", Mode: "canary", StableImage: "shop:1.0", CanaryImage: "shop:2.0", CanaryWeight: 20,
				NginxPort: 8080, Converged: true,
				Tracks: []api.TrackStats{
					{Track: "stable", Outcome: "ok", Requests: 3600, ReqPerSec: 60, ErrorRate: 0, P99Ms: 45.4, Targets: 2},
					{Track: "canary", Outcome: "ok", Requests: 900, ReqPerSec: 15, ErrorRate: 0.03, P99Ms: 620.4, Targets: 1},
				},
				Policies: []api.Decision{infraPass, {Policy: "canary_safety", Reasons: []string{"P99 latency exceeds 500ms"}}},
				Containers: []api.Container{
					{Name: "shop-nginx", Role: "nginx", Image: "nginx:latest", State: "running", IP: "172.18.0.2"},
					{Name: "shop-stable-1a2b3c4d-1", Role: "app", Track: "stable", Image: "shop:1.0", State: "running", IP: "172.18.0.3"},
					{Name: "shop-canary-5e6f7a8b-1", Role: "app", Track: "canary", Image: "shop:2.0", State: "running", IP: "172.18.0.4"},
				},
			},
			want: `Mode: canary
Requests/sec: 15
P99 latency: 620ms
Error rate: 3%

Policy Status:
  • Infrastructure: PASS
  • Canary Safety: FAIL (latency too high)

Project: shop (nginx on port 8080, converged)
Stable: shop:1.0
Canary: shop:2.0 (20% of traffic)

Tracks:
  TRACK   REQ/S  P99    ERROR RATE  REQUESTS  TARGETS  DATA
  stable  60     45ms   0%          3600      2        ok
  canary  15     620ms  3%          900       1        ok

Containers:
  NAME                    ROLE   TRACK   IMAGE         STATE    IP
  shop-nginx              nginx  -       nginx:latest  running  172.18.0.2
  shop-stable-1a2b3c4d-1  app    stable  shop:1.0      running  172.18.0.3
  shop-canary-5e6f7a8b-1  app    canary  shop:2.0      running  172.18.0.4
`,
		},
		{
			name: "stable with fractional figures",
			status: api.Status{
				Project: "shop", Mode: "stable", StableImage: "shop:1.0", NginxPort: 8080, Converged: true,
				Tracks:   []api.TrackStats{{Track: "stable", Outcome: "ok", Requests: 750, ReqPerSec: 12.46, ErrorRate: 0.0125, P99Ms: 7.25, Targets: 1}},
				Policies: []api.Decision{infraPass},
			},
			want: `Mode: stable
Requests/sec: 12.5
P99 latency: 7.3ms
Error rate: 1.25%

Policy Status:
  • Infrastructure: PASS
  • Canary Safety: n/a

Project: shop (nginx on port 8080, converged)
Stable: shop:1.0

Tracks:
  TRACK   REQ/S  P99    ERROR RATE  REQUESTS  TARGETS  DATA
  stable  12.5   7.3ms  1.25%       750       1        ok

Containers:
  none
`,
		},
		{
			name: "canary without enough data",
			status: api.Status{
				Project: "shop", Mode: "canary", StableImage: "shop:1.0", CanaryImage: "shop:2.0", CanaryWeight: 10, NginxPort: 8080,
				Tracks: []api.TrackStats{{Track: "canary", Outcome: "insufficient_data", Requests: 4, ReqPerSec: 0.07}},
				Policies: []api.Decision{infraPass, {Policy: "canary_safety", Reasons: []string{
					"Error rate unknown: no error metrics for the canary",
					"Insufficient data: 4 requests in window, need at least 20",
					"P99 latency unknown: no latency metrics for the canary",
				}}},
			},
			want: `Mode: canary
Requests/sec: 0.1
P99 latency: n/a (insufficient data)
Error rate: n/a (insufficient data)

Policy Status:
  • Infrastructure: PASS
  • Canary Safety: FAIL (insufficient data)

Project: shop (nginx on port 8080, converging)
Stable: shop:1.0
Canary: shop:2.0 (10% of traffic)

Tracks:
  TRACK   REQ/S  P99  ERROR RATE  REQUESTS  TARGETS  DATA
  canary  0.1    n/a  n/a         4         0        insufficient data

Containers:
  none
`,
		},
		{
			name: "a hung canary: its metrics silent, nginx's view failing",
			status: api.Status{
				Project: "shop", Mode: "canary", StableImage: "shop:1.0", CanaryImage: "shop:2.0", CanaryWeight: 10, NginxPort: 8080, Converged: true,
				Tracks: []api.TrackStats{
					{Track: "stable", Outcome: "ok", Requests: 1800, ReqPerSec: 30, P99Ms: 12, Targets: 2,
						Proxy: &api.ProxyStats{Outcome: "ok", Requests: 1802, ReqPerSec: 30, P99Ms: 14}},
					{Track: "canary", Outcome: "missing_data", Reason: "canary target shop-canary-5e6f7a8b-1: scrape failed: context deadline exceeded", Requests: 0,
						Proxy: &api.ProxyStats{Outcome: "ok", Requests: 200, ReqPerSec: 3.3, ErrorRate: 0.085, P99Ms: 1000}},
				},
				Policies: []api.Decision{infraPass, {Policy: "canary_safety", Reasons: []string{
					"Error rate unknown: no error metrics for the canary",
					"P99 latency unknown: no latency metrics for the canary",
					"Proxy P99 latency exceeds 500ms",
					"Proxy error rate exceeds 1% threshold",
					"canary target shop-canary-5e6f7a8b-1: scrape failed: context deadline exceeded",
				}}},
			},
			want: `Mode: canary
Requests/sec: 0
P99 latency: n/a (insufficient data)
Error rate: n/a (insufficient data)
Proxy P99 latency: 1000ms
Proxy error rate: 8.5%

Policy Status:
  • Infrastructure: PASS
  • Canary Safety: FAIL (insufficient data, proxy latency too high, proxy error rate too high, canary target shop-canary-5e6f7a8b-1: scrape failed: context deadline exceeded)

Project: shop (nginx on port 8080, converged)
Stable: shop:1.0
Canary: shop:2.0 (10% of traffic)

Tracks:
  TRACK   REQ/S  P99   ERROR RATE  REQUESTS  TARGETS  DATA
  stable  30     12ms  0%          1800      2        ok
  canary  0      n/a   n/a         0         0        missing data

Proxy (nginx's access log):
  TRACK   REQ/S  P99     ERROR RATE  REQUESTS  DATA
  stable  30     14ms    0%          1802      ok
  canary  3.3    1000ms  8.5%        200       ok

Containers:
  none
`,
		},
		{
			name: "nginx's log not followed",
			status: api.Status{
				Project: "shop", Mode: "stable", StableImage: "shop:1.0", NginxPort: 8080, Converged: true,
				Tracks: []api.TrackStats{{Track: "stable", Outcome: "ok", Requests: 750, ReqPerSec: 12.5, P99Ms: 7, Targets: 1,
					Proxy: &api.ProxyStats{Outcome: "missing_data", Reason: "stable proxy figures: nginx's access log not followed for 3s: unexpected EOF"}}},
				Policies: []api.Decision{infraPass},
			},
			want: `Mode: stable
Requests/sec: 12.5
P99 latency: 7ms
Error rate: 0%
Proxy P99 latency: n/a (missing data)
Proxy error rate: n/a (missing data)

Policy Status:
  • Infrastructure: PASS
  • Canary Safety: n/a

Project: shop (nginx on port 8080, converged)
Stable: shop:1.0

Tracks:
  TRACK   REQ/S  P99  ERROR RATE  REQUESTS  TARGETS  DATA
  stable  12.5   7ms  0%          750       1        ok

Proxy (nginx's access log):
  TRACK   REQ/S  P99  ERROR RATE  REQUESTS  DATA
  stable  0      n/a  n/a         0         missing data
  stable proxy figures: nginx's access log not followed for 3s: unexpected EOF

Containers:
  none
`,
		},
		{
			name: "nothing known yet, with every problem",
			status: api.Status{
				ManifestErrors: []string{"services.port: must be between 1 and 65535, got 0 (line 3)", "nginx.image: required"},
				LastReconcile: &api.ReconcileInfo{
					Started: time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC), Duration: "1.2s", Error: "create container shop-nginx: port is already allocated",
				},
				EngineError: "Cannot connect to the Docker daemon",
				Denial:      &api.Decision{Policy: "infrastructure", Reasons: []string{"CPU load above 2.0", "Disk space below 10GB"}},
				Policies: []api.Decision{{Policy: "infrastructure", Reasons: []string{
					"CPU load above 2.0", "Disk space below 10GB", "policy evaluation failed: boom",
				}}},
			},
			want: `Mode: n/a
Requests/sec: n/a
P99 latency: n/a
Error rate: n/a

Policy Status:
  • Infrastructure: FAIL (CPU load high, disk space low, policy evaluation failed: boom)
  • Canary Safety: n/a

Project: - (nginx on port 0, converging)
Stable: -

Containers:
  none

Manifest rejected (the last good manifest stays in force):
  • services.port: must be between 1 and 65535, got 0 (line 3)
  • nginx.image: required

Last reconcile failed (started 2026-05-06 12:00:00 UTC, took 1.2s): create container shop-nginx: port is already allocated

Docker engine unreachable: Cannot connect to the Docker daemon

Last change denied by the infrastructure policy:
  DENIED: CPU load above 2.0
  DENIED: Disk space below 10GB
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := writeDashboard(&b, tc.status); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("dashboard:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestShortReason(t *testing.T) {
	tests := []struct{ reason, want string }{
		{"P99 latency exceeds 500ms", "latency too high"},
		{"Error rate exceeds 1% threshold", "error rate too high"},
		{"Proxy P99 latency exceeds 500ms", "proxy latency too high"},
		{"Proxy error rate exceeds 1% threshold", "proxy error rate too high"},
		{"Proxy error rate unknown: no access-log figures for the canary", "insufficient data"},
		{"Insufficient data: nginx routed 3 requests to the canary in window, need at least 20", "insufficient data"},
		{"Disk space below 10GB", "disk space low"},
		{"CPU load 3.9 per core (7.8 on 2 CPUs) above 2.0", "CPU load high"},
		{"CPU load above 2.0", "CPU load high"}, // a daemon before per-core load
		{"CPU load unknown: no load average reading", "insufficient data"},
		{"CPU count unknown: no CPU count reading", "insufficient data"},
		{"Insufficient data: 3 requests in window, need at least 20", "insufficient data"},
		{"Disk space unknown: no free-space reading for /var/lib/docker", "insufficient data"},
		{"policy canary_safety returned no decision (undefined)", "policy canary_safety returned no decision (undefined)"},
	}
	for _, tc := range tests {
		t.Run(tc.reason, func(t *testing.T) {
			if got := shortReason(tc.reason); got != tc.want {
				t.Errorf("shortReason(%q) = %q, want %q", tc.reason, got, tc.want)
			}
		})
	}
}

func TestSparkline(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name   string
		values []float64
		width  int
		want   string
	}{
		{"empty", nil, 10, ""},
		{"all zero", []float64{0, 0, 0}, 10, "▁▁▁"},
		{"ramp", []float64{0, 1, 2, 3, 4, 5, 6, 7}, 10, "▁▂▃▄▅▆▇█"},
		{"gap for missing data", []float64{7, nan, 0}, 10, "█ ▁"},
		{"keeps the latest width values", []float64{100, 0, 1, 2}, 3, "▁▅█"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sparkline(tc.values, tc.width); got != tc.want {
				t.Errorf("sparkline(%v, %d) = %q, want %q", tc.values, tc.width, got, tc.want)
			}
		})
	}
}

func TestHistoryKeepsChartSpan(t *testing.T) {
	h := newHistory(time.Minute) // 5 samples in chartSpan
	for i := range 8 {
		h.add(sample{rps: float64(i)})
	}
	got := h.series(func(s sample) float64 { return s.rps })
	if want := []float64{3, 4, 5, 6, 7}; !equalFloats(got, want) {
		t.Errorf("series = %v, want %v", got, want)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWriteChecks(t *testing.T) {
	tests := []struct {
		name   string
		checks []api.Check
		want   string
	}{
		{
			name:   "the article's checks",
			checks: []api.Check{{Name: "Manifest valid", OK: true}, {Name: "Docker image found", OK: true}, {Name: "Nginx config valid", OK: true}},
			want:   "✓ Manifest valid\n✓ Docker image found\n✓ Nginx config valid\n",
		},
		{
			name: "a failing check",
			checks: []api.Check{
				{Name: "Manifest valid", OK: true},
				{Name: "Docker image found", Detail: "not found locally: shop:2.0"},
				{Name: "Nginx config valid"},
			},
			want: "✓ Manifest valid\n✗ Docker image found: not found locally: shop:2.0\n✗ Nginx config valid\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := writeChecks(&b, api.Validation{Checks: tc.checks}); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestWriteDiff(t *testing.T) {
	tests := []struct {
		name string
		diff api.Diff
		want string
	}{
		{"no changes", api.Diff{Plan: []string{}}, "No changes: the running stack matches the manifest.\n"},
		{"plan", api.Diff{Plan: []string{"create shop-canary-5e6f7a8b-1", "reload nginx"}}, "create shop-canary-5e6f7a8b-1\nreload nginx\n"},
		{"blocked", api.Diff{Blocked: "port 8080 is taken", Plan: []string{}}, "Blocked: port 8080 is taken\nNo changes: the running stack matches the manifest.\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := writeDiff(&b, tc.diff); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestWriteHistory(t *testing.T) {
	at := time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)
	denied := journal.NewDecision("canary_safety", false, []string{"Error rate exceeds 1% threshold", "P99 latency exceeds 500ms"}, nil)
	denied.Timestamp, denied.User = at.Add(3*time.Second), "alice"
	allowed := journal.NewDecision("infrastructure", true, nil, nil)
	allowed.Timestamp = at.Add(4 * time.Second)
	streak := journal.NewEvent(journal.EventDeployDenied, "DENIED: CPU load 2.4 per core (4.8 on 2 CPUs) above 2.0")
	streak.Timestamp, streak.Count, streak.FirstSeen, streak.LastSeen = at.Add(10*time.Minute), 32, at.Add(5*time.Second), at.Add(9*time.Minute)
	recs := []journal.Record{
		{Type: journal.TypeEvent, Timestamp: at, Event: "deploy_started", Message: "deploy\nrequested", User: "alice"},
		{Type: journal.TypeSnapshot, Timestamp: at.Add(time.Second), Mode: "canary", Track: "canary", Policy: "FAIL",
			ReqPerSec: journal.Float(15), P99Latency: journal.Float(620), ErrorRate: journal.Float(0.03)},
		{Type: journal.TypeSnapshot, Timestamp: at.Add(2 * time.Second), Mode: "canary", Track: "stable", Policy: "NO_DATA"},
		denied,
		allowed,
		streak,
	}
	want := `2026-05-06 12:00:00Z  event     deploy_started        deploy requested (by alice)
2026-05-06 12:00:01Z  snapshot  canary                15 req/s, p99 620ms, errors 3%, policy FAIL
2026-05-06 12:00:02Z  snapshot  stable (mode canary)  n/a req/s, p99 n/a, errors n/a, policy NO_DATA
2026-05-06 12:00:03Z  decision  canary_safety         DENIED: Error rate exceeds 1% threshold; DENIED: P99 latency exceeds 500ms (by alice)
2026-05-06 12:00:04Z  decision  infrastructure        allowed
2026-05-06 12:10:00Z  event     deploy_denied         DENIED: CPU load 2.4 per core (4.8 on 2 CPUs) above 2.0 (32 times from 12:00:05 to 12:09:00)
`
	var b strings.Builder
	if err := writeHistory(&b, recs); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestFinalProgress(t *testing.T) {
	tests := []struct {
		name       string
		final      api.Progress
		wantStdout string
		wantCode   int
		wantErr    string
	}{
		{"success", api.Progress{Done: true}, "", exitOK, ""},
		{
			name:       "denied",
			final:      api.Progress{Done: true, Error: "promotion denied by canary-safety policy", Denied: []string{"Error rate exceeds 1% threshold", "P99 latency exceeds 500ms"}},
			wantStdout: "DENIED: Error rate exceeds 1% threshold\nDENIED: P99 latency exceeds 500ms\n",
			wantCode:   exitFailure,
		},
		{
			name:     "failed",
			final:    api.Progress{Done: true, Error: "health check of shop-stable-1 timed out"},
			wantCode: exitFailure,
			wantErr:  "swiftctl: promote failed: health check of shop-stable-1 timed out\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			a := &app{stdout: &out, stderr: &errOut}
			err := a.finalProgress("promote", tc.final)
			code := exitCode(&errOut, err)
			if out.String() != tc.wantStdout || code != tc.wantCode || errOut.String() != tc.wantErr {
				t.Errorf("stdout %q, exit %d, stderr %q; want %q, %d, %q", out.String(), code, errOut.String(), tc.wantStdout, tc.wantCode, tc.wantErr)
			}
			var ee *exitError
			if tc.wantCode != exitOK && !errors.As(err, &ee) {
				t.Errorf("error %v is not an exitError", err)
			}
		})
	}
}

// The --watch charts of a stepped canary walking 10 → 25 → 50 → promoted,
// with a refresh that could not reach the daemon: the canary-weight row
// draws the weight nginx had loaded at each refresh on a 0-100% scale.
func TestWatchChartsGolden(t *testing.T) {
	status := func(mode string, weight int, rps, p99, errRate float64) api.Status {
		track := "stable"
		if mode == "canary" {
			track = "canary"
		}
		return api.Status{Mode: mode, CanaryWeight: weight,
			Tracks: []api.TrackStats{{Track: track, Outcome: "ok", ReqPerSec: rps, P99Ms: p99, ErrorRate: errRate}}}
	}
	h := newHistory(5 * time.Second) // 60 marks in chartSpan
	add := func(n int, s api.Status) {
		for range n {
			h.add(sampleOf(s))
		}
	}
	add(3, status("stable", 0, 200, 4.9, 0))
	add(4, status("canary", 10, 20, 5.1, 0))
	h.add(unknown) // the daemon did not answer
	add(4, status("canary", 25, 50, 5.3, 0.001))
	add(4, status("canary", 50, 100, 5.2, 0))
	add(2, status("", 0, 0, 0, 0)) // nothing serves: no weight to show
	add(3, status("stable", 0, 200, 4.8, 0))
	var b strings.Builder
	writeCharts(&b, h, 5*time.Second, 40)
	golden(t, "watch_charts.txt", []byte(b.String()))
	weights := h.series(func(s sample) float64 { return s.weight })
	if got := sparklineTo(weights, 40, 100); got != "▁▁▁▂▂▂▂ ▃▃▃▃▅▅▅▅  ▁▁▁" {
		t.Errorf("weight chart %q", got)
	}
}

func TestWriteTLS(t *testing.T) {
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	var b strings.Builder
	writeTLS(&b, &api.TLSStatus{
		Hosts: []string{"shop.example.com"}, Served: "aaaa", Cert: "aaaa", Source: "acme",
		NotAfter: now.Add(12 * 24 * time.Hour), DaysLeft: 12,
		LastError: "acme order for shop.example.com: connection refused", Failures: 3, NextRetry: now.Add(2 * time.Minute),
	}, now)
	want := `HTTPS: shop.example.com (acme certificate, 12 days left, until 2026-12-19 03:00 UTC)
  Certificate renewal failing (3 attempt(s), next try in 2m0s): acme order for shop.example.com: connection refused
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
