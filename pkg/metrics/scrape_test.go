package metrics

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

var t0 = time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)

var inf = math.Inf(1)

func ptr(f float64) *float64 { return &f }

// demoRegistry is a registry shaped like demo-app's, filled with a fixed set
// of requests so that its exposition is deterministic.
//
// Requests: GET / 200×120, 500×5; GET /api/items 200×40;
// POST /api/items 201×10, 503×2; POST /chaos 200×1.
// Total 178, of which 5xx 7.
//
// Latencies: GET / 100×4ms, 20×200ms, 5×700ms; GET /api/items 40×30ms;
// POST /api/items 10×80ms, 2×3s; POST /chaos 1×1ms. Summed cumulative
// buckets (default bounds): ≤.005:101 ≤.01:101 ≤.025:101 ≤.05:141 ≤.1:151
// ≤.25:171 ≤.5:171 ≤1:176 ≤2.5:176 ≤5:178 ≤10:178 +Inf:178.
func demoRegistry(t testing.TB) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: RequestsMetric, Help: "HTTP requests by method, path and status.",
	}, []string{"method", "path", "status"})
	durations := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: DurationMetric, Help: "HTTP request latency.", Buckets: prometheus.DefBuckets,
	}, []string{"method", "path"})
	uptime := prometheus.NewGauge(prometheus.GaugeOpts{Name: UptimeMetric, Help: "Seconds since start."})
	mode := prometheus.NewGauge(prometheus.GaugeOpts{Name: ModeMetric, Help: "0 stable, 1 canary."})
	chaos := prometheus.NewGauge(prometheus.GaugeOpts{Name: ChaosMetric, Help: "Active chaos mode."})
	reg.MustRegister(requests, durations, uptime, mode, chaos)

	for _, r := range []struct {
		method, path, status string
		n                    int
	}{
		{"GET", "/", "200", 120}, {"GET", "/", "500", 5},
		{"GET", "/api/items", "200", 40},
		{"POST", "/api/items", "201", 10}, {"POST", "/api/items", "503", 2},
		{"POST", "/chaos", "200", 1},
	} {
		requests.WithLabelValues(r.method, r.path, r.status).Add(float64(r.n))
	}
	for _, o := range []struct {
		method, path string
		n            int
		seconds      float64
	}{
		{"GET", "/", 100, 0.004}, {"GET", "/", 20, 0.2}, {"GET", "/", 5, 0.7},
		{"GET", "/api/items", 40, 0.03},
		{"POST", "/api/items", 10, 0.08}, {"POST", "/api/items", 2, 3},
		{"POST", "/chaos", 1, 0.001},
	} {
		for range o.n {
			durations.WithLabelValues(o.method, o.path).Observe(o.seconds)
		}
	}
	uptime.Set(360)
	mode.Set(1)
	return reg
}

// demoBuckets is demoRegistry's histogram, summed by bound.
var demoBuckets = []Bucket{
	{0.005, 101}, {0.01, 101}, {0.025, 101}, {0.05, 141}, {0.1, 151}, {0.25, 171},
	{0.5, 171}, {1, 176}, {2.5, 176}, {5, 178}, {10, 178}, {inf, 178},
}

// TestDemoExpositionGolden keeps testdata/demo-app.prom equal to what the
// real client library renders for demoRegistry, so the fixture used by the
// Parse tests and benchmark stays realistic.
func TestDemoExpositionGolden(t *testing.T) {
	families, err := demoRegistry(t).Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode %s: %v", mf.GetName(), err)
		}
	}
	golden := filepath.Join("testdata", "demo-app.prom")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s is out of date; run go test ./pkg/metrics -run TestDemoExpositionGolden -update\n got:\n%s", golden, buf.String())
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Scrape
	}{
		{
			// The article's example: 120 + 5 = 125 requests, 5 of them 500.
			name:  "article example",
			input: string(readFixture(t, "article.prom")),
			want: Scrape{
				Requests: 125, Errors: 5,
				Buckets: []Bucket{{0.5, 100}, {1, 110}, {inf, 125}},
				Uptime:  ptr(360), Mode: ptr(1), Chaos: ptr(2),
			},
		},
		{
			// See demoRegistry for the hand-summed figures.
			name:  "client library exposition",
			input: string(readFixture(t, "demo-app.prom")),
			want: Scrape{
				Requests: 178, Errors: 7, Buckets: demoBuckets,
				Uptime: ptr(360), Mode: ptr(1), Chaos: ptr(0),
			},
		},
		{
			// A fresh app exports no labelled series yet: zero requests.
			name:  "fresh app without requests",
			input: "# TYPE app_uptime_seconds gauge\napp_uptime_seconds 1.5\n",
			want:  Scrape{Uptime: ptr(1.5)},
		},
		{
			// No +Inf bucket: _count (7 + 3 = 10) stands in for it.
			name: "count instead of +Inf bucket",
			input: `http_requests_total{status="200"} 10
http_request_duration_seconds_bucket{path="/a",le="0.1"} 6
http_request_duration_seconds_bucket{path="/b",le="0.1"} 2
http_request_duration_seconds_count{path="/a"} 7
http_request_duration_seconds_count{path="/b"} 3
`,
			want: Scrape{Requests: 10, Buckets: []Bucket{{0.1, 8}, {inf, 10}}},
		},
		{
			// Only three-character statuses starting with 5 are errors:
			// 503 (4) and the class label 5xx (2); "50" and 404 are not.
			name: "status classes",
			input: `http_requests_total{status="503"} 4
http_requests_total{status="5xx"} 2
http_requests_total{status="50"} 1
http_requests_total{status="404"} 8
http_requests_total 16
`,
			want: Scrape{Requests: 31, Errors: 6},
		},
		{
			name: "timestamps and comments are accepted",
			input: `# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{status="200"} 3 1715000000000
# a free comment
`,
			want: Scrape{Requests: 3},
		},
		{
			// Buckets written out of order, with two label sets, come back
			// summed by bound and sorted.
			name: "buckets sorted and summed",
			input: `# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{path="/a",le="+Inf"} 5
http_request_duration_seconds_bucket{path="/a",le="1"} 4
http_request_duration_seconds_bucket{path="/a",le="0.5"} 1
http_request_duration_seconds_count{path="/a"} 5
http_request_duration_seconds_bucket{path="/b",le="0.5"} 2
http_request_duration_seconds_bucket{path="/b",le="1"} 2
http_request_duration_seconds_bucket{path="/b",le="+Inf"} 3
http_request_duration_seconds_count{path="/b"} 3
http_requests_total 8
`,
			want: Scrape{Requests: 8, Buckets: []Bucket{{0.5, 3}, {1, 6}, {inf, 8}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.input), t0)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.want.Time = t0
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse:\n got  %s\n want %s", fmtScrape(got), fmtScrape(tt.want))
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string // substring of the error
	}{
		{"empty", "", "no http_requests_total"},
		{"other metrics only", "go_goroutines 7\n", "no http_requests_total"},
		{"not an exposition", "this is not metrics\n", "parse metrics"},
		{"missing value", "http_requests_total{status=\"200\"}\n", "parse metrics"},
		{"unterminated labels", "http_requests_total{status=\"200\" 5\n", "parse metrics"},
		{"negative counter", "http_requests_total{status=\"200\"} -1\n", "http_requests_total: count -1"},
		{"NaN counter", "http_requests_total NaN\n", "http_requests_total: count NaN"},
		{"infinite counter", "http_requests_total +Inf\n", "http_requests_total: count +Inf"},
		{"sum overflows", "http_requests_total{a=\"1\"} 1e308\nhttp_requests_total{a=\"2\"} 1e308\n", "http_requests_total (sum)"},
		{"requests as histogram", "# TYPE http_requests_total histogram\nhttp_requests_total_count 1\n", "expected a counter or gauge"},
		{"duration as counter", "http_requests_total 1\n# TYPE http_request_duration_seconds counter\nhttp_request_duration_seconds 1\n", "expected a histogram"},
		{"bad le", "http_requests_total 1\nhttp_request_duration_seconds_bucket{le=\"fast\"} 1\n", `invalid le "fast"`},
		{"missing le", "http_requests_total 1\nhttp_request_duration_seconds_bucket 1\n", `invalid le ""`},
		{"NaN le", "http_requests_total 1\nhttp_request_duration_seconds_bucket{le=\"NaN\"} 1\n", "invalid bucket bound le=NaN"},
		{"negative le", "http_requests_total 1\nhttp_request_duration_seconds_bucket{le=\"-1\"} 1\nhttp_request_duration_seconds_bucket{le=\"+Inf\"} 1\n", "invalid bucket bound le=-1"},
		{"negative bucket", "http_requests_total 1\nhttp_request_duration_seconds_bucket{le=\"1\"} -2\nhttp_request_duration_seconds_bucket{le=\"+Inf\"} 1\n", `_bucket{le="1"}: count -2`},
		{"no +Inf and no count", "http_requests_total 1\nhttp_request_duration_seconds_bucket{le=\"1\"} 1\n", "no +Inf bucket and no _count"},
		{"NaN mode", "http_requests_total 1\napp_mode NaN\n", "app_mode: value NaN is not finite"},
		{"negative uptime", "http_requests_total 1\napp_uptime_seconds -3\n", "app_uptime_seconds: value -3 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.input), t0)
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseMissingRequestsIsSentinel(t *testing.T) {
	_, err := Parse(strings.NewReader("app_mode 1\n"), t0)
	if !errors.Is(err, ErrMissingRequests) {
		t.Errorf("Parse error = %v, want ErrMissingRequests", err)
	}
}

func TestFetch(t *testing.T) {
	srv := httptest.NewServer(promhttp.HandlerFor(demoRegistry(t), promhttp.HandlerOpts{}))
	defer srv.Close()

	before := time.Now()
	got, err := Fetch(context.Background(), srv.Client(), srv.URL+"/metrics")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got.Time.Before(before) || got.Time.After(time.Now()) {
		t.Errorf("Time = %v, want the moment of the response", got.Time)
	}
	got.Time = time.Time{}
	want := Scrape{Requests: 178, Errors: 7, Buckets: demoBuckets, Uptime: ptr(360), Mode: ptr(1), Chaos: ptr(0)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Fetch:\n got  %s\n want %s", fmtScrape(got), fmtScrape(want))
	}
}

func TestFetchErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr string
	}{
		{
			name: "status not OK",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "nope", http.StatusServiceUnavailable)
			},
			wantErr: "unexpected status 503",
		},
		{
			name: "body too large",
			handler: func(w http.ResponseWriter, r *http.Request) {
				// Valid comment lines, so only the size can be the problem.
				line := []byte("# padding padding padding padding padding padding padding\n")
				for written := 0; written <= MaxBodySize; written += len(line) {
					if _, err := w.Write(line); err != nil {
						return
					}
				}
			},
			wantErr: "response larger than",
		},
		{
			name: "malformed body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte("<html>not metrics</html>\n"))
			},
			wantErr: "parse metrics",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			_, err := Fetch(context.Background(), srv.Client(), srv.URL)
			if err == nil {
				t.Fatalf("Fetch succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), srv.URL) {
				t.Errorf("Fetch error = %q, want it to name %s and contain %q", err, srv.URL, tt.wantErr)
			}
		})
	}
}

func TestFetchCanceled(t *testing.T) {
	srv := httptest.NewServer(promhttp.HandlerFor(demoRegistry(t), promhttp.HandlerOpts{}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Fetch(ctx, srv.Client(), srv.URL)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch error = %v, want context.Canceled", err)
	}
}

// fmtScrape shows a Scrape with its pointers dereferenced.
func fmtScrape(s Scrape) string {
	deref := func(p *float64) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("{Time:%v Requests:%v Errors:%v Buckets:%v Uptime:%s Mode:%s Chaos:%s}",
		s.Time, s.Requests, s.Errors, s.Buckets, deref(s.Uptime), deref(s.Mode), deref(s.Chaos))
}
