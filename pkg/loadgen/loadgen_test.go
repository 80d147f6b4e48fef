package loadgen

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newServer starts an httptest server for handler and closes it at cleanup.
func newServer(t testing.TB, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv
}

func TestRunCountsOutcomesAndModes(t *testing.T) {
	// Requests are numbered in arrival order: every 4th fails with 500,
	// every 5th is answered by the canary, and every 10th from the 1st
	// carries no mode header.
	var n atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		switch {
		case i%5 == 0:
			w.Header().Set(ModeHeader, "canary")
		case i%10 == 1:
		default:
			w.Header().Set(ModeHeader, "stable")
		}
		if i%4 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})

	res, err := Run(context.Background(), Config{URL: srv.URL, RPS: 400, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Numbers are handed out by the server, so the counts do not depend
	// on the order in which concurrent requests arrive.
	if res.Planned != 40 || res.Total != 40 || n.Load() != 40 {
		t.Fatalf("Planned, Total, served = %d, %d, %d; want 40 each", res.Planned, res.Total, n.Load())
	}
	if want := map[string]int{"HTTP 500": 10}; !maps.Equal(res.Failures, want) {
		t.Errorf("Failures = %v, want %v", res.Failures, want)
	}
	if res.Success != 30 {
		t.Errorf("Success = %d, want 30", res.Success)
	}
	if want := map[string]int{"canary": 8, NoMode: 4, "stable": 28}; !maps.Equal(res.Modes, want) {
		t.Errorf("Modes = %v, want %v", res.Modes, want)
	}
	shares := res.ModeShares()
	if len(shares) != 3 || shares[0].Mode != "stable" || shares[0].Fraction != 0.7 || shares[2].Mode != NoMode || shares[2].Fraction != 0.1 {
		t.Errorf("ModeShares = %+v, want stable 0.7, canary 0.2, %s 0.1", shares, NoMode)
	}
	if res.P50 <= 0 || res.P99 < res.P50 {
		t.Errorf("P50, P99 = %s, %s; want 0 < P50 <= P99", res.P50, res.P99)
	}
	if res.AchievedRPS <= 0 {
		t.Errorf("AchievedRPS = %v, want > 0", res.AchievedRPS)
	}
}

func TestRunClassifiesFailures(t *testing.T) {
	refused := func(t *testing.T) string {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr + "/"
	}
	serve := func(h http.HandlerFunc) func(*testing.T) string {
		return func(t *testing.T) string { return newServer(t, h).URL }
	}
	tests := []struct {
		name    string
		target  func(*testing.T) string
		timeout time.Duration
		want    map[string]int
	}{
		{
			name:   "status 503",
			target: serve(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }),
			want:   map[string]int{"HTTP 503": 5},
		},
		{
			name:   "connection refused",
			target: refused,
			want:   map[string]int{"connection refused": 5},
		},
		{
			name:    "timeout",
			target:  serve(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }),
			timeout: 20 * time.Millisecond,
			want:    map[string]int{"timeout": 5},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), Config{URL: tc.target(t), RPS: 100, Duration: 50 * time.Millisecond, Timeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(res.Failures, tc.want) {
				t.Errorf("Failures = %v, want %v", res.Failures, tc.want)
			}
			if res.Total != 5 || res.Success != 0 {
				t.Errorf("Total, Success = %d, %d; want 5, 0", res.Total, res.Success)
			}
		})
	}
}

func TestRunSkipsBeyondMaxInFlight(t *testing.T) {
	// The first request holds the only slot until every other one has been
	// scheduled: 20 requests at MaxRPS are scheduled within 2ms, far inside
	// the hold.
	release := make(chan struct{})
	var arrived atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, _ *http.Request) {
		if arrived.Add(1) == 1 {
			<-release
		}
	})
	time.AfterFunc(time.Second, func() { close(release) })

	res, err := Run(context.Background(), Config{URL: srv.URL, RPS: MaxRPS, Duration: 2 * time.Millisecond, MaxInFlight: 1, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{FailureSkipped: 19}
	if res.Total != 20 || res.Success != 1 || !maps.Equal(res.Failures, want) {
		t.Errorf("Total, Success, Failures = %d, %d, %v; want 20, 1, %v", res.Total, res.Success, res.Failures, want)
	}
}

func TestRunDoesNotFollowRedirects(t *testing.T) {
	var elsewhere atomic.Int64
	other := newServer(t, func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) })
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL, http.StatusFound)
	})

	res, err := Run(context.Background(), Config{URL: srv.URL, RPS: 100, Duration: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if elsewhere.Load() != 0 {
		t.Errorf("%d requests reached the redirect target; want none", elsewhere.Load())
	}
	if res.Success != 3 {
		t.Errorf("Success = %d, want 3 (a 302 is an answer, not a failure)", res.Success)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := newServer(t, func(http.ResponseWriter, *http.Request) { cancel() })

	res, err := Run(ctx, Config{URL: srv.URL, RPS: 10, Duration: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	if res.Planned != 600 || res.Total < 1 || res.Total > 2 {
		t.Errorf("Planned, Total = %d, %d; want 600 and 1 or 2 (stopped after the first request)", res.Planned, res.Total)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{URL: "http://localhost:8080/", RPS: 10, Duration: time.Second}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string // substring; "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no url", func(c *Config) { c.URL = "" }, "url: required"},
		{"bad url", func(c *Config) { c.URL = "http://[::1" }, `url: "http://[::1" is not a URL`},
		{"ftp scheme", func(c *Config) { c.URL = "ftp://localhost/" }, "url: \"ftp://localhost/\" must start with http://"},
		{"no host", func(c *Config) { c.URL = "http:///path" }, "has no host"},
		{"zero rps", func(c *Config) { c.RPS = 0 }, "rps: must be more than 0, got 0"},
		{"NaN rps", func(c *Config) { c.RPS = math.NaN() }, "rps: must be more than 0, got NaN"},
		{"rps too high", func(c *Config) { c.RPS = MaxRPS + 1 }, "rps: at most 10000"},
		{"zero duration", func(c *Config) { c.Duration = 0 }, "duration: must be more than 0"},
		{"duration too long", func(c *Config) { c.Duration = 2 * time.Hour }, "duration: at most 1h0m0s"},
		{"too many requests", func(c *Config) { c.RPS, c.Duration = 5000, 10*time.Minute }, "3000000 requests exceeds the limit"},
		{"no request", func(c *Config) { c.RPS, c.Duration = 0.5, time.Second }, "sends no request"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "timeout: must not be negative"},
		{"negative in-flight", func(c *Config) { c.MaxInFlight = -1 }, "max in flight: must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate() = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestWriteText(t *testing.T) {
	tests := []struct {
		name string
		res  Result
		want string
	}{
		{
			name: "mixed",
			res: Result{
				URL: "http://localhost:8080/", Planned: 300, Total: 300, Success: 270,
				Failures: map[string]int{"HTTP 500": 20, "timeout": 10},
				Modes:    map[string]int{"stable": 232, "canary": 58},
				Elapsed:  10*time.Second + 12345*time.Microsecond, AchievedRPS: 29.96,
				P50: 4321 * time.Microsecond, P99: 623456 * time.Microsecond,
			},
			want: `Target:     http://localhost:8080/
Requests:   300 of 300 planned in 10.012s (30.0 req/s achieved)
Success:    270 (90.0%)
Failures:   30 (10.0%)
  HTTP 500  20
  timeout   10
Latency:    p50 4.32ms, p99 623ms
Answered by X-App-Mode:
  stable  80.0% (232)
  canary  20.0% (58)
`,
		},
		{
			name: "nothing answered",
			res: Result{
				URL: "http://localhost:9/", Planned: 5, Total: 5,
				Failures: map[string]int{"connection refused": 5}, Modes: map[string]int{},
				Elapsed: 400 * time.Millisecond, AchievedRPS: 12.5,
			},
			want: `Target:               http://localhost:9/
Requests:             5 of 5 planned in 400ms (12.5 req/s achieved)
Success:              0 (0.0%)
Failures:             5 (100.0%)
  connection refused  5
Latency:              n/a (no response)
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := tc.res.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("WriteText:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"one", ms(7), 0.5, 7 * time.Millisecond},
		{"median of four", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 0.50, 50 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("percentile(%v) = %s, want %s", tc.p, got, tc.want)
			}
		})
	}
}

// BenchmarkRun measures what the generator sustains against a trivial
// local server on this machine (which runs the server too): the achieved
// rate, the share of requests answered rather than skipped for lack of a
// slot, and the p99 latency seen.
func BenchmarkRun(b *testing.B) {
	for _, rps := range []float64{1000, MaxRPS} {
		b.Run(fmt.Sprintf("rps=%v", rps), func(b *testing.B) {
			srv := newServer(b, func(http.ResponseWriter, *http.Request) {})
			var res Result
			for b.Loop() {
				var err error
				res, err = Run(context.Background(), Config{URL: srv.URL, RPS: rps, Duration: 200 * time.Millisecond})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(res.AchievedRPS, "req/s")
			b.ReportMetric(100*float64(res.Success)/float64(res.Planned), "%answered")
			b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
		})
	}
}
