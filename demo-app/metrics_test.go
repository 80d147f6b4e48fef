package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func TestMetricsAfterTraffic(t *testing.T) {
	tests := []struct {
		mode     string
		wantMode float64
	}{
		{mode: modeStable, wantMode: 0},
		{mode: modeCanary, wantMode: 1},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			s, url := startApp(t, tt.mode)
			s.now = func() time.Time { return s.started.Add(360 * time.Second) }

			for range 7 {
				do(t, http.MethodGet, url+"/", "")
			}
			for range 3 {
				do(t, http.MethodGet, url+"/missing", "")
			}
			do(t, http.MethodPost, url+"/", "")
			// Probes and scrapes must not be counted.
			for range 5 {
				do(t, http.MethodGet, url+"/healthz", "")
				scrape(t, url)
			}
			postChaos(t, url, `{"mode":"error","rate":1}`)
			for range 2 {
				do(t, http.MethodGet, url+"/", "")
			}

			families := scrape(t, url)
			requireMetricNames(t, families)
			counts := []struct {
				labels map[string]string
				want   float64
			}{
				{map[string]string{"method": "GET", "path": "/", "status": "200"}, 7},
				{map[string]string{"method": "GET", "path": "/", "status": "500"}, 2},
				{map[string]string{"method": "GET", "path": "other", "status": "404"}, 3},
				{map[string]string{"method": "POST", "path": "/", "status": "405"}, 1},
				{map[string]string{"method": "POST", "path": "/chaos", "status": "200"}, 1},
				{map[string]string{}, 14}, // nothing else, in particular no /healthz or /metrics
			}
			for _, c := range counts {
				if got := requestCount(families, c.labels); got != c.want {
					t.Errorf("http_requests_total%v = %v, want %v", c.labels, got, c.want)
				}
			}
			for path := range labelValues(families, "http_requests_total", "path") {
				if path == "/healthz" || path == "/metrics" {
					t.Errorf("http_requests_total has a series for %s", path)
				}
			}

			var observed uint64
			for _, m := range families["http_request_duration_seconds"].GetMetric() {
				h := m.GetHistogram()
				observed += h.GetSampleCount()
				bounds := map[float64]bool{}
				for _, b := range h.GetBucket() {
					bounds[b.GetUpperBound()] = true
				}
				if !bounds[0.5] || !bounds[1] {
					t.Errorf("histogram %v lacks the 0.5 or 1 bucket", m.GetLabel())
				}
			}
			if observed != 14 {
				t.Errorf("http_request_duration_seconds observed %d requests, want 14", observed)
			}
			if got := families["http_request_duration_seconds"].GetType(); got != dto.MetricType_HISTOGRAM {
				t.Errorf("http_request_duration_seconds is a %v, want a histogram", got)
			}
			if got := families["http_requests_total"].GetType(); got != dto.MetricType_COUNTER {
				t.Errorf("http_requests_total is a %v, want a counter", got)
			}
			if got := gauge(t, families, "app_mode"); got != tt.wantMode {
				t.Errorf("app_mode = %v, want %v", got, tt.wantMode)
			}
			if got := gauge(t, families, "app_uptime_seconds"); got != 360 {
				t.Errorf("app_uptime_seconds = %v, want 360", got)
			}
			if got := gauge(t, families, "chaos_active"); got != 2 {
				t.Errorf("chaos_active = %v, want 2 (error)", got)
			}
		})
	}
}

func TestUptimeIsComputedAtScrape(t *testing.T) {
	s, url := startApp(t, modeStable)
	for _, elapsed := range []time.Duration{time.Second, 90 * time.Second, time.Hour} {
		s.now = func() time.Time { return s.started.Add(elapsed) }
		if got := gauge(t, scrape(t, url), "app_uptime_seconds"); got != elapsed.Seconds() {
			t.Errorf("app_uptime_seconds = %v after %v, want %v", got, elapsed, elapsed.Seconds())
		}
	}
}

// TestLabelCardinality sends random paths and methods: they must fold into
// one path label and one method label instead of a series each.
func TestLabelCardinality(t *testing.T) {
	_, url := startApp(t, modeStable)
	for i := range 100 {
		do(t, http.MethodGet, fmt.Sprintf("%s/scan/%d/%x", url, i, rand.Uint64()), "")
	}
	for i := range 10 {
		do(t, fmt.Sprintf("BREW%d", i), url+"/", "")
	}

	families := scrape(t, url)
	paths := labelValues(families, "http_requests_total", "path")
	if len(paths) != 2 || !paths["other"] || !paths["/"] {
		t.Errorf("path labels = %v, want just \"other\" and \"/\"", paths)
	}
	if got := requestCount(families, map[string]string{"path": "other", "status": "404"}); got != 100 {
		t.Errorf("requests counted under path=other = %v, want 100", got)
	}
	methods := labelValues(families, "http_requests_total", "method")
	if len(methods) != 2 || !methods["GET"] || !methods["OTHER"] {
		t.Errorf("method labels = %v, want just GET and OTHER", methods)
	}
	if got := requestCount(families, map[string]string{"method": "OTHER", "path": "/", "status": "405"}); got != 10 {
		t.Errorf("requests counted under method=OTHER = %v, want 10", got)
	}
	if got := len(families["http_request_duration_seconds"].GetMetric()); got != 2 {
		t.Errorf("http_request_duration_seconds has %d series, want 2", got)
	}
}

func TestLabelFunctions(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"root path", pathLabel("/"), "/"},
		{"chaos path", pathLabel("/chaos"), "/chaos"},
		{"unknown path", pathLabel("/wp-admin.php"), "other"},
		{"root prefix is not root", pathLabel("/index.html"), "other"},
		{"empty path", pathLabel(""), "other"},
		{"GET", methodLabel("GET"), "GET"},
		{"PATCH", methodLabel("PATCH"), "PATCH"},
		{"lower-case get is not GET", methodLabel("get"), "OTHER"},
		{"made-up method", methodLabel("PROPFIND"), "OTHER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
