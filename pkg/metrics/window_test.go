package metrics

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// at is t0 plus sec seconds.
func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// fast is a scrape at sec seconds where every one of req requests took at
// most 100ms.
func fast(sec int, req, errs float64) Scrape {
	return Scrape{Time: at(sec), Requests: req, Errors: errs, Buckets: []Bucket{{0.1, req}, {inf, req}}}
}

func withUptime(s Scrape, uptime float64) Scrape {
	s.Uptime = &uptime
	return s
}

func mustParse(t *testing.T, sec int, exposition []byte) Scrape {
	t.Helper()
	s, err := Parse(bytes.NewReader(exposition), at(sec))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

type observation struct {
	target string
	scrape Scrape
}

func TestWindowStats(t *testing.T) {
	tests := []struct {
		name        string
		obs         []observation
		now         int // seconds after t0
		minRequests int
		want        Stats
	}{
		{
			// From an empty app to the article's exposition in 60s: 125
			// requests, 5 errors = 4%; rank 0.99×125 = 123.75 is past the
			// le=1 bucket (110), so p99 is the highest finite bound: 1000ms.
			name: "article exposition",
			obs: []observation{
				{"a", withUptime(Scrape{Time: at(0)}, 300)},
				{"a", mustParse(t, 60, readFixture(t, "article.prom"))},
			},
			now: 60, minRequests: 20,
			want: Stats{Outcome: OK, Requests: 125, Errors: 5, ReqPerSec: 125.0 / 60, ErrorRate: 0.04,
				P99Ms: 1000, Span: 60 * time.Second, Targets: 1},
		},
		{
			// 1200-1000 = 200 requests, 12-10 = 2 errors: exactly 1%.
			// p99: rank 198 of 200, all ≤ 0.1s: 0.1×198/200 = 99ms.
			name: "exactly 1% errors",
			obs:  []observation{{"a", fast(0, 1000, 10)}, {"a", fast(60, 1200, 12)}},
			now:  60, minRequests: 20,
			want: Stats{Outcome: OK, Requests: 200, Errors: 2, ReqPerSec: 200.0 / 60, ErrorRate: 0.01,
				P99Ms: 99, Span: 60 * time.Second, Targets: 1},
		},
		{
			// 100 requests all in (0.5,1]: 0.5 + 0.5×99/100 = 0.995s.
			name: "all requests slower than 500ms",
			obs: []observation{
				{"a", Scrape{Time: at(0), Buckets: []Bucket{{0.5, 0}, {1, 0}, {inf, 0}}}},
				{"a", Scrape{Time: at(30), Requests: 50, Buckets: []Bucket{{0.5, 0}, {1, 50}, {inf, 50}}}},
				{"a", Scrape{Time: at(60), Requests: 100, Buckets: []Bucket{{0.5, 0}, {1, 100}, {inf, 100}}}},
			},
			now: 60, minRequests: 20,
			want: Stats{Outcome: OK, Requests: 100, ReqPerSec: 100.0 / 60, P99Ms: 995,
				Span: 60 * time.Second, Targets: 1},
		},
		{
			// 100→150 (+50), restart to 30 (+30), 30→80 (+50) = 130.
			// Errors 0→1 (+1), restart at 1 (+1), 1→3 (+2) = 4.
			name: "counter reset mid-window",
			obs: []observation{
				{"a", fast(0, 100, 0)}, {"a", fast(20, 150, 1)},
				{"a", fast(40, 30, 1)}, {"a", fast(60, 80, 3)},
			},
			now: 60, minRequests: 20,
			want: Stats{Outcome: OK, Requests: 130, Errors: 4, ReqPerSec: 130.0 / 60, ErrorRate: 4.0 / 130,
				P99Ms: 99, Span: 60 * time.Second, Targets: 1},
		},
		{
			// Uptime 120→15 marks a restart although requests grew
			// 150→200: +50, +200 (all new), +60 = 310, not 160.
			name: "restart detected by uptime",
			obs: []observation{
				{"a", withUptime(fast(0, 100, 0), 100)}, {"a", withUptime(fast(20, 150, 0), 120)},
				{"a", withUptime(fast(40, 200, 0), 15)}, {"a", withUptime(fast(60, 260, 0), 35)},
			},
			now: 60, minRequests: 20,
			want: Stats{Outcome: OK, Requests: 310, ReqPerSec: 310.0 / 60, P99Ms: 99,
				Span: 60 * time.Second, Targets: 1},
		},
		{
			// a: 0→100 over the whole window; b: 0→40 (4 errors), then
			// gone; c: appears at 500 and reaches 520 (+20).
			// 160 requests, 4 errors over t0..t60.
			name: "targets appearing and disappearing",
			obs: []observation{
				{"a", fast(0, 0, 0)}, {"b", fast(0, 0, 0)},
				{"a", fast(30, 50, 0)}, {"b", fast(30, 40, 4)}, {"c", fast(30, 500, 0)},
				{"a", fast(60, 100, 0)}, {"c", fast(60, 520, 0)},
			},
			now: 60, minRequests: 20,
			want: Stats{Outcome: OK, Requests: 160, Errors: 4, ReqPerSec: 160.0 / 60, ErrorRate: 0.025,
				P99Ms: 99, Span: 60 * time.Second, Targets: 3},
		},
		{
			// The baseline is the last sample at or before now-60s = t40:
			// t0. The span stretches to 100s.
			name: "sparse scrapes stretch the span",
			obs:  []observation{{"a", fast(0, 0, 0)}, {"a", fast(50, 50, 0)}, {"a", fast(100, 100, 0)}},
			now:  100, minRequests: 20,
			want: Stats{Outcome: OK, Requests: 100, ReqPerSec: 1, P99Ms: 99,
				Span: 100 * time.Second, Targets: 1},
		},
		{
			name: "insufficient requests",
			obs:  []observation{{"a", fast(0, 0, 0)}, {"a", fast(60, 10, 1)}},
			now:  60, minRequests: 20,
			want: Stats{Outcome: InsufficientData, Reason: "10 requests in the window, need at least 20",
				Requests: 10, Errors: 1, ReqPerSec: 10.0 / 60, ErrorRate: 0.1, P99Ms: 99,
				Span: 60 * time.Second, Targets: 1},
		},
		{
			name: "single scrape",
			obs:  []observation{{"a", fast(60, 100, 0)}},
			now:  60, minRequests: 20,
			want: Stats{Outcome: InsufficientData, Reason: "no target has two scrapes"},
		},
		{
			// minRequests 0 still needs one request: no traffic is no
			// evidence.
			name: "no traffic with minRequests 0",
			obs:  []observation{{"a", fast(0, 0, 0)}, {"a", fast(60, 0, 0)}},
			now:  60, minRequests: 0,
			want: Stats{Outcome: InsufficientData, Reason: "0 requests in the window, need at least 1",
				Span: 60 * time.Second, Targets: 1},
		},
		{
			name: "requests without latency histogram",
			obs: []observation{
				{"a", Scrape{Time: at(0)}}, {"a", Scrape{Time: at(60), Requests: 100}},
			},
			now: 60, minRequests: 20,
			want: Stats{Outcome: InsufficientData, Reason: "no request latency observations",
				Requests: 100, ReqPerSec: 100.0 / 60, Span: 60 * time.Second, Targets: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWindow(time.Minute)
			for _, o := range tt.obs {
				w.Observe(o.target, o.scrape)
			}
			checkStats(t, w.Stats(at(tt.now), tt.minRequests), tt.want)
		})
	}
}

func TestWindowZeroSize(t *testing.T) {
	// A window covering no time never has a sample after its baseline.
	w := NewWindow(0)
	w.Observe("a", fast(0, 0, 0))
	w.Observe("a", fast(60, 100, 0))
	checkStats(t, w.Stats(at(60), 20), Stats{Outcome: InsufficientData, Reason: "no target has two scrapes"})
}

func TestWindowExactErrorRate(t *testing.T) {
	// The canary policy compares error_rate > 0.01: exactly 1% must come
	// out as the float 0.01, not a hair above it.
	w := NewWindow(time.Minute)
	w.Observe("a", fast(0, 1000, 10))
	w.Observe("a", fast(60, 1200, 12))
	if got := w.Stats(at(60), 20).ErrorRate; got != 0.01 {
		t.Errorf("ErrorRate = %v, want exactly 0.01", got)
	}
}

func TestWindowSliding(t *testing.T) {
	// Steady 10 requests/s, scraped every 10s for two minutes.
	w := NewWindow(time.Minute)
	for sec := 0; sec <= 120; sec += 10 {
		w.Observe("a", fast(sec, float64(10*sec), 0))
		got := w.Stats(at(sec), 1)
		// Until a minute has passed the window reaches back to t0; after
		// that it holds exactly the last minute: 600 requests.
		wantSpan := time.Duration(min(sec, 60)) * time.Second
		want := Stats{Outcome: OK, Requests: float64(10 * min(sec, 60)), ReqPerSec: 10, P99Ms: 99, Span: wantSpan, Targets: 1}
		if sec == 0 {
			want = Stats{Outcome: InsufficientData, Reason: "no target has two scrapes"}
		}
		t.Run(fmt.Sprintf("t+%ds", sec), func(t *testing.T) { checkStats(t, got, want) })
	}
	// t60..t120: the baseline and six newer samples; older ones are gone.
	if n := len(w.targets["a"]); n != 7 {
		t.Errorf("window holds %d samples of a, want 7", n)
	}

	// A target not scraped for a window length no longer contributes, but
	// is kept for a second window length in case a late scrape arrives.
	w.Observe("b", fast(200, 0, 0))
	if _, ok := w.targets["a"]; !ok {
		t.Errorf("target a dropped only 80s after its last sample")
	}
	checkStats(t, w.Stats(at(200), 1), Stats{Outcome: InsufficientData, Reason: "no target has two scrapes"})

	// After two window lengths without a scrape it is gone.
	w.Observe("b", fast(300, 0, 0))
	if _, ok := w.targets["a"]; ok {
		t.Errorf("stale target a still held after its last sample left the window")
	}
}

func TestWindowOutOfOrder(t *testing.T) {
	inOrder := NewWindow(time.Minute)
	for _, s := range []Scrape{fast(0, 0, 0), fast(30, 30, 1), fast(60, 90, 2)} {
		inOrder.Observe("a", s)
	}
	shuffled := NewWindow(time.Minute)
	// A late scrape, and a repeat of t30 whose value replaces the first.
	for _, s := range []Scrape{fast(60, 90, 2), fast(30, 999, 0), fast(0, 0, 0), fast(30, 30, 1)} {
		shuffled.Observe("a", s)
	}
	want := inOrder.Stats(at(60), 20)
	if want.Requests != 90 {
		t.Fatalf("in-order Requests = %v, want 90", want.Requests)
	}
	checkStats(t, shuffled.Stats(at(60), 20), want)
}

func TestWindowForgetAndLatest(t *testing.T) {
	w := NewWindow(time.Minute)
	w.Observe("a", fast(0, 0, 0))
	w.Observe("a", fast(60, 100, 0))
	w.Observe("b", fast(0, 0, 0))
	w.Observe("b", fast(60, 50, 50))

	if got := w.Stats(at(60), 20); got.Requests != 150 || got.Targets != 2 {
		t.Fatalf("before Forget: Requests %v Targets %d, want 150 and 2", got.Requests, got.Targets)
	}
	w.Forget("b")
	checkStats(t, w.Stats(at(60), 20), Stats{Outcome: OK, Requests: 100, ReqPerSec: 100.0 / 60, P99Ms: 99,
		Span: 60 * time.Second, Targets: 1})

	if _, ok := w.Latest("b"); ok {
		t.Errorf("Latest(b) found a forgotten target")
	}
	got, ok := w.Latest("a")
	if !ok || !got.Time.Equal(at(60)) || got.Requests != 100 {
		t.Fatalf("Latest(a) = %+v, %v; want the t+60s scrape", got, ok)
	}
	got.Buckets[0].Count = -1 // must not reach the window's copy
	if again, _ := w.Latest("a"); again.Buckets[0].Count != 100 {
		t.Errorf("modifying Latest's result changed the window: %v", again.Buckets)
	}
}

func TestWindowStatsExcluding(t *testing.T) {
	w := NewWindow(time.Minute)
	w.Observe("a", fast(0, 0, 0))
	w.Observe("a", fast(60, 100, 0))
	w.Observe("b", fast(0, 0, 0))
	w.Observe("b", fast(60, 50, 50)) // all errors: must vanish with b
	tests := []struct {
		name    string
		exclude func(string) bool
		want    Stats
	}{
		{
			name: "nil excludes nothing",
			want: Stats{Outcome: OK, Requests: 150, Errors: 50, ReqPerSec: 150.0 / 60, ErrorRate: 50.0 / 150,
				P99Ms: 99, Span: 60 * time.Second, Targets: 2},
		},
		{
			name:    "excluded target's samples do not count",
			exclude: func(target string) bool { return target == "b" },
			want: Stats{Outcome: OK, Requests: 100, ReqPerSec: 100.0 / 60, P99Ms: 99,
				Span: 60 * time.Second, Targets: 1},
		},
		{
			name:    "everything excluded",
			exclude: func(string) bool { return true },
			want:    Stats{Outcome: InsufficientData, Reason: "no target has two scrapes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkStats(t, w.StatsExcluding(at(60), 20, tt.exclude), tt.want)
		})
	}
	// Excluding is a view: the samples are still there for the next call.
	checkStats(t, w.Stats(at(60), 20), tests[0].want)
}

func TestWindowConcurrent(t *testing.T) {
	// Run with -race: scrapers observing while status reads Stats.
	w := NewWindow(time.Minute)
	const targets, samples = 4, 50
	var wg sync.WaitGroup
	for i := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sec := range samples {
				w.Observe(fmt.Sprintf("t%d", i), fast(sec, float64(sec), 0))
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range samples {
			_ = w.Stats(at(samples-1), 1)
		}
	}()
	wg.Wait()
	// Each target grew by 49 between t0 and t49.
	if got := w.Stats(at(samples-1), 1); got.Requests != targets*(samples-1) || got.Targets != targets {
		t.Errorf("Requests %v Targets %d, want %d and %d", got.Requests, got.Targets, targets*(samples-1), targets)
	}
}

// checkStats compares Stats, floats with a rounding tolerance and Reason by
// substring.
func checkStats(t *testing.T, got, want Stats) {
	t.Helper()
	if got.Outcome != want.Outcome || got.Span != want.Span || got.Targets != want.Targets {
		t.Errorf("Outcome %q Span %v Targets %d, want %q %v %d", got.Outcome, got.Span, got.Targets,
			want.Outcome, want.Span, want.Targets)
	}
	if want.Reason == "" && got.Reason != "" || !strings.Contains(got.Reason, want.Reason) {
		t.Errorf("Reason %q, want %q", got.Reason, want.Reason)
	}
	for _, f := range []struct {
		name      string
		got, want float64
	}{
		{"Requests", got.Requests, want.Requests},
		{"Errors", got.Errors, want.Errors},
		{"ReqPerSec", got.ReqPerSec, want.ReqPerSec},
		{"ErrorRate", got.ErrorRate, want.ErrorRate},
		{"P99Ms", got.P99Ms, want.P99Ms},
	} {
		if !sameFloat(f.got, f.want) {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
}
