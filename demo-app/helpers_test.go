package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// testClient bounds every test request so a hang fails the test instead of
// stalling the run; the bound is far above any delay the tests inject.
var testClient = &http.Client{Timeout: 20 * time.Second}

// startApp serves a fresh app over real HTTP and returns it with its base URL.
func startApp(t *testing.T, mode string) (*server, string) {
	t.Helper()
	s := newServer(mode, "1.2.3-test", "test-host")
	ts := httptest.NewServer(s.handler())
	t.Cleanup(ts.Close)
	return s, ts.URL
}

// do sends one request and returns the response with its body read.
func do(t testing.TB, method, url, body string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatalf("build %s %s: %v", method, url, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body of %s %s: %v", method, url, err)
	}
	return resp, b
}

// decodeJSON unmarshals body into a T, failing t if it is not valid JSON.
func decodeJSON[T any](t testing.TB, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("body %q is not the expected JSON: %v", body, err)
	}
	return v
}

// postChaos posts body to /chaos and requires a 200.
func postChaos(t testing.TB, baseURL, body string) chaosState {
	t.Helper()
	resp, b := do(t, http.MethodPost, baseURL+"/chaos", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /chaos %s: status %d, body %s", body, resp.StatusCode, b)
	}
	return decodeJSON[chaosState](t, b)
}

// scrape fetches and parses baseURL/metrics.
func scrape(t testing.TB, baseURL string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := do(t, http.MethodGet, baseURL+"/metrics", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, body %s", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return families
}

// metricNames are the series the daemon and the article rely on.
var metricNames = []string{
	"http_requests_total",
	"http_request_duration_seconds",
	"app_uptime_seconds",
	"app_mode",
	"chaos_active",
}

func requireMetricNames(t testing.TB, families map[string]*dto.MetricFamily) {
	t.Helper()
	for _, name := range metricNames {
		if _, ok := families[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// gauge returns the value of an unlabelled gauge.
func gauge(t testing.TB, families map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f, ok := families[name]
	if !ok || len(f.GetMetric()) != 1 || f.GetType() != dto.MetricType_GAUGE {
		t.Fatalf("want one gauge %s, got %v", name, f)
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

// requestCount sums http_requests_total over the series whose labels
// include every pair in match.
func requestCount(families map[string]*dto.MetricFamily, match map[string]string) float64 {
	var sum float64
	for _, m := range families["http_requests_total"].GetMetric() {
		if labelsMatch(m, match) {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func labelsMatch(m *dto.Metric, match map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range match {
		if have[k] != v {
			return false
		}
	}
	return true
}

// labelValues returns the distinct values of label across a family's series.
func labelValues(families map[string]*dto.MetricFamily, name, label string) map[string]bool {
	values := map[string]bool{}
	for _, m := range families[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				values[l.GetValue()] = true
			}
		}
	}
	return values
}
