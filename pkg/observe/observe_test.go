package observe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
)

var t0 = time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)

const interval = 5 * time.Second

var (
	errDeadline = context.DeadlineExceeded
	errRefused  = errors.New("connection refused")
)

// fakeClock is the injected clock; Scrape reads it from its fetch
// goroutines, hence the mutex.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeFetcher answers every URL with counters that grow by 100 requests per
// successful fetch of that URL, all within 100ms, of which errs[url] are
// 5xx. fail[url] makes fetches of url fail instead (and not grow).
type fakeFetcher struct {
	mu    sync.Mutex
	n     map[string]float64
	errs  map[string]float64
	fail  map[string]error
	calls int
}

func newFakeFetcher() *fakeFetcher {
	return &fakeFetcher{n: map[string]float64{}, errs: map[string]float64{}, fail: map[string]error{}}
}

func (f *fakeFetcher) Fetch(_ context.Context, url string) (metrics.Scrape, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := f.fail[url]; err != nil {
		return metrics.Scrape{}, err
	}
	n := f.n[url]
	f.n[url]++
	req := 100 * n
	// The Time is deliberately nonsense: the Observer stamps samples with
	// its own clock.
	return metrics.Scrape{
		Time: time.Unix(0, 0), Requests: req, Errors: f.errs[url] * n,
		Buckets: []metrics.Bucket{{UpperBound: 0.1, Count: req}, {UpperBound: math.Inf(1), Count: req}},
	}, nil
}

func (f *fakeFetcher) setFail(fail map[string]error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = map[string]error{}
	for name, err := range fail {
		f.fail[url(name)] = err
	}
}

func url(name string) string { return "http://" + name + ":3000/metrics" }

func tgt(name, track, revision string) Target {
	return Target{Name: name, Track: track, Revision: revision, URL: url(name)}
}

var (
	c1 = tgt("app-canary-1", "canary", "v3")
	c2 = tgt("app-canary-2", "canary", "v3")
	s1 = tgt("app-stable-1", "stable", "v1")
	// v2 canaries: the revision before c1 and c2.
	old1 = tgt("app-canary-v2-1", "canary", "v2")
	old2 = tgt("app-canary-v2-2", "canary", "v2")
)

// step advances the clock by wait, then, unless targets is nil, calls
// Scrape with the fetches of the targets named in fail failing.
type step struct {
	wait    time.Duration
	targets []Target
	fail    map[string]error
}

// scrapes is n healthy Scrapes of targets, one scrape interval apart.
func scrapes(n int, targets ...Target) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = step{wait: interval, targets: targets}
	}
	return out
}

func failing(fail map[string]error, targets ...Target) step {
	return step{wait: interval, targets: targets, fail: fail}
}

func wait(d time.Duration) step { return step{wait: d} }

func script(parts ...any) []step {
	var out []step
	for _, p := range parts {
		switch p := p.(type) {
		case step:
			out = append(out, p)
		case []step:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("script: %T", p))
		}
	}
	return out
}

type harness struct {
	clock *fakeClock
	fetch *fakeFetcher
	obs   *Observer
}

func newHarness(opts Options) *harness {
	h := &harness{clock: &fakeClock{t: t0}, fetch: newFakeFetcher()}
	if opts.Window == 0 {
		opts.Window = time.Minute
	}
	if opts.ScrapeInterval == 0 {
		opts.ScrapeInterval = interval
	}
	opts.Now = h.clock.Now
	h.obs = New(h.fetch, opts)
	return h
}

// run plays steps and returns the Changes of each step (nil for steps
// without a Scrape).
func (h *harness) run(steps []step) [][]Change {
	out := make([][]Change, len(steps))
	for i, s := range steps {
		h.clock.Add(s.wait)
		if s.targets == nil {
			continue
		}
		h.fetch.setFail(s.fail)
		out[i] = h.obs.Scrape(context.Background(), s.targets)
	}
	return out
}

func TestStats(t *testing.T) {
	type query struct{ track, revision string }
	canary := query{"canary", "v3"}
	tests := []struct {
		name  string
		opts  Options
		steps []step
		query query
		// want: Reason must contain every string in reasons.
		outcome          metrics.Outcome
		reasons          []string
		requests, errors float64
		targets          int
		missing          []string
	}{
		{
			// 13 scrapes 5s apart: the baseline at now-60s and 12 increases
			// of 100 per target.
			name:    "fresh data is OK",
			steps:   scrapes(13, c1, c2),
			query:   canary,
			outcome: metrics.OK, requests: 2400, targets: 2,
		},
		{
			// app-canary-2's older samples would pass; they must not count.
			name:    "one target's scrape fails",
			steps:   script(scrapes(12, c1, c2), failing(map[string]error{c2.Name: errDeadline}, c1, c2)),
			query:   canary,
			outcome: metrics.MissingData,
			reasons: []string{"canary target app-canary-2: scrape failed: context deadline exceeded"},
			// app-canary-1 alone: 12 increases.
			requests: 1200, targets: 1, missing: []string{c2.Name},
		},
		{
			name:    "new target whose first scrape fails",
			steps:   script(failing(map[string]error{c1.Name: errRefused}, c1)),
			query:   canary,
			outcome: metrics.MissingData,
			reasons: []string{"canary target app-canary-1: scrape failed: connection refused"},
			missing: []string{c1.Name},
		},
		{
			// The scrape loop stopped (hung, or the engine cannot be
			// listed): the last samples are 11s old.
			name:    "data older than two scrape intervals",
			steps:   script(scrapes(13, c1, c2), wait(11*time.Second)),
			query:   canary,
			outcome: metrics.MissingData,
			reasons: []string{
				"canary target app-canary-1: no sample for 11s (scrape interval 5s)",
				"canary target app-canary-2: no sample for 11s (scrape interval 5s)",
			},
			missing: []string{c1.Name, c2.Name},
		},
		{
			// Exactly 2 intervals is still fresh: now = t+75s, the baseline
			// is the t+15s sample, 10 increases per target.
			name:    "data exactly two scrape intervals old is fresh",
			steps:   script(scrapes(13, c1, c2), wait(10*time.Second)),
			query:   canary,
			outcome: metrics.OK, requests: 2000, targets: 2,
		},
		{
			name:    "the staleness limit follows the scrape interval",
			opts:    Options{ScrapeInterval: 10 * time.Second},
			steps:   script(scrapes(13, c1), wait(21*time.Second)),
			query:   canary,
			outcome: metrics.MissingData,
			reasons: []string{"no sample for 21s (scrape interval 10s)"},
			missing: []string{c1.Name},
		},
		{
			// Fails at t+65s, answers at t+70s: its history counts again,
			// and the gap is bridged by the cumulative counter (now t+70s,
			// baseline t+10s = 100, last 1200).
			name:    "recovery after failure",
			steps:   script(scrapes(12, c1), failing(map[string]error{c1.Name: errRefused}, c1), scrapes(1, c1)),
			query:   canary,
			outcome: metrics.OK, requests: 1100, targets: 1,
		},
		{
			name:    "a failing target that disappears is forgotten",
			steps:   script(scrapes(12, c1, c2), failing(map[string]error{c2.Name: errRefused}, c1, c2), scrapes(1, c1)),
			query:   canary,
			outcome: metrics.OK, requests: 1200, targets: 1,
		},
		{
			// v2 served 50% errors for a minute; v3 has only just been
			// scraped once, so it has no figures at all.
			name:    "revision change restarts the window",
			steps:   script(scrapes(13, old1, old2), scrapes(1, c1, c2)),
			query:   canary,
			outcome: metrics.InsufficientData, reasons: []string{"no target has two scrapes"},
		},
		{
			name:    "v3's figures are v3's alone",
			steps:   script(scrapes(13, old1, old2), scrapes(3, c1, c2)),
			query:   canary,
			outcome: metrics.OK, requests: 400, targets: 2,
		},
		{
			name:    "the old revision's window is gone",
			steps:   script(scrapes(13, old1, old2), scrapes(3, c1, c2)),
			query:   query{"canary", "v2"},
			outcome: metrics.InsufficientData, reasons: []string{"no canary target of revision v2 is being scraped"},
		},
		{
			// The same container name under a new revision (the fake's
			// counter keeps growing across the change) starts afresh too.
			name: "same target name, new revision",
			steps: script(scrapes(13, tgt("app-1", "canary", "v2")),
				scrapes(1, tgt("app-1", "canary", "v3"))),
			query:   canary,
			outcome: metrics.InsufficientData, reasons: []string{"no target has two scrapes"},
		},
		{
			name:    "a failing canary leaves stable alone",
			steps:   script(scrapes(12, s1, c1), failing(map[string]error{c1.Name: errRefused}, s1, c1)),
			query:   query{"stable", "v1"},
			outcome: metrics.OK, requests: 1200, targets: 1,
		},
		{
			name:    "unknown revision",
			steps:   scrapes(13, c1),
			query:   query{"canary", "v9"},
			outcome: metrics.InsufficientData, reasons: []string{"no canary target of revision v9 is being scraped"},
		},
		{
			name:    "nothing scraped yet",
			query:   canary,
			outcome: metrics.InsufficientData, reasons: []string{"no canary target of revision v3 is being scraped"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(tt.opts)
			h.fetch.errs[url(old1.Name)], h.fetch.errs[url(old2.Name)] = 50, 50
			h.run(tt.steps)
			got := h.obs.Stats(tt.query.track, tt.query.revision, 20)
			if got.Outcome != tt.outcome {
				t.Errorf("Outcome = %q (%s), want %q", got.Outcome, got.Reason, tt.outcome)
			}
			for _, r := range tt.reasons {
				if !strings.Contains(got.Reason, r) {
					t.Errorf("Reason = %q, want it to contain %q", got.Reason, r)
				}
			}
			if got.Outcome == metrics.OK && got.Reason != "" {
				t.Errorf("Reason = %q on an OK outcome", got.Reason)
			}
			if got.Requests != tt.requests || got.Errors != tt.errors || got.Targets != tt.targets {
				t.Errorf("Requests %v Errors %v Targets %d, want %v %v %d",
					got.Requests, got.Errors, got.Targets, tt.requests, tt.errors, tt.targets)
			}
			var names []string
			for _, m := range got.Missing {
				names = append(names, m.Target)
				if !strings.Contains(got.Reason, m.Reason) || m.Reason == "" {
					t.Errorf("Missing %s: Reason %q is not part of Stats.Reason %q", m.Target, m.Reason, got.Reason)
				}
			}
			if !slices.Equal(names, tt.missing) {
				t.Errorf("Missing = %v, want %v", names, tt.missing)
			}
		})
	}
}

func TestScrapeChanges(t *testing.T) {
	fail := map[string]error{c1.Name: errRefused}
	type want struct {
		step     int
		kind     ChangeKind
		failures int // failed scrapes in a row so far
		since    int // step of the first failure
	}
	tests := []struct {
		name  string
		steps []step
		want  []want
	}{
		{
			name: "ten failures then recovery",
			steps: script(scrapes(1, c1), failing(fail, c1), failing(fail, c1), failing(fail, c1),
				failing(fail, c1), failing(fail, c1), failing(fail, c1), failing(fail, c1),
				failing(fail, c1), failing(fail, c1), failing(fail, c1), scrapes(3, c1)),
			want: []want{{step: 1, kind: Failing, failures: 1, since: 1}, {step: 11, kind: Recovered, failures: 10, since: 1}},
		},
		{name: "healthy", steps: scrapes(5, c1)},
		{
			name:  "first scrape fails",
			steps: script(failing(fail, c1)),
			want:  []want{{step: 0, kind: Failing, failures: 1}},
		},
		{
			name:  "flapping",
			steps: script(scrapes(1, c1), failing(fail, c1), scrapes(1, c1), failing(fail, c1)),
			want: []want{{step: 1, kind: Failing, failures: 1, since: 1}, {step: 2, kind: Recovered, failures: 1, since: 1},
				{step: 3, kind: Failing, failures: 1, since: 3}},
		},
		{
			// A forgotten target starts from nothing when it comes back.
			name:  "forgotten while failing, back still failing",
			steps: script(failing(fail, c1), step{wait: interval, targets: []Target{}}, failing(fail, c1)),
			want:  []want{{step: 0, kind: Failing, failures: 1}, {step: 2, kind: Failing, failures: 1, since: 2}},
		},
		{
			// The name is what is logged: a new revision failing the same
			// way is not news.
			name:  "revision change keeps the failure streak",
			steps: script(failing(fail, c1), failing(fail, tgt(c1.Name, "canary", "v4"))),
			want:  []want{{step: 0, kind: Failing, failures: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(Options{})
			perStep := h.run(tt.steps)
			var got []want
			for i, changes := range perStep {
				for _, c := range changes {
					if c.Target.Name != c1.Name {
						t.Errorf("step %d: change for %q, want %q", i, c.Target.Name, c1.Name)
					}
					// Steps are one interval apart, the first after one wait.
					since := int(c.Since.Sub(t0)/interval) - 1
					got = append(got, want{step: i, kind: c.Kind, failures: c.Failures, since: since})
					if at := t0.Add(time.Duration(i+1) * interval); !c.At.Equal(at) {
						t.Errorf("step %d: At = %v, want %v", i, c.At, at)
					}
					if c.Kind == Failing && !errors.Is(c.Err, errRefused) {
						t.Errorf("step %d: Err = %v, want %v", i, c.Err, errRefused)
					}
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("changes = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * interval) }
	tests := []struct {
		name  string
		steps []step
		want  []TargetHealth // Reason compared by substring
	}{
		{
			name:  "healthy",
			steps: scrapes(2, c1),
			want:  []TargetHealth{{Target: c1, LastSuccess: at(2)}},
		},
		{
			name:  "failing",
			steps: script(scrapes(1, c1, c2), failing(map[string]error{c2.Name: errRefused}, c1, c2)),
			want: []TargetHealth{
				{Target: c1, LastSuccess: at(2)},
				{Target: c2, LastSuccess: at(1), LastError: errRefused, LastErrorAt: at(2), Failures: 1,
					Reason: "scrape failed: connection refused"},
			},
		},
		{
			name:  "stale",
			steps: script(scrapes(1, c1), wait(3*interval)),
			want:  []TargetHealth{{Target: c1, LastSuccess: at(1), Stale: true, Reason: "no sample for 15s"}},
		},
		{
			// The last error stays on record; the target is fine again.
			name:  "recovered",
			steps: script(failing(map[string]error{c1.Name: errRefused}, c1), scrapes(1, c1)),
			want:  []TargetHealth{{Target: c1, LastSuccess: at(2), LastError: errRefused, LastErrorAt: at(1)}},
		},
		{
			name:  "forgotten",
			steps: script(scrapes(1, c1, c2), scrapes(1, c2)),
			want:  []TargetHealth{{Target: c2, LastSuccess: at(2)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(Options{})
			h.run(tt.steps)
			got := h.obs.Health()
			if len(got) != len(tt.want) {
				t.Fatalf("Health = %+v, want %+v", got, tt.want)
			}
			for i, g := range got {
				w := tt.want[i]
				if g.Target != w.Target || !g.LastSuccess.Equal(w.LastSuccess) || !errors.Is(g.LastError, w.LastError) ||
					!g.LastErrorAt.Equal(w.LastErrorAt) || g.Failures != w.Failures || g.Stale != w.Stale ||
					!strings.Contains(g.Reason, w.Reason) || (w.Reason == "") != (g.Reason == "") {
					t.Errorf("Health[%d] = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestScrapeTimeout(t *testing.T) {
	// A hung target: the fetch only ends when its context does. The 1ms
	// bound is the point of the test, not a wait for something else.
	clock := &fakeClock{t: t0}
	var deadline bool
	hung := fetchFunc(func(ctx context.Context, _ string) (metrics.Scrape, error) {
		_, deadline = ctx.Deadline()
		<-ctx.Done()
		return metrics.Scrape{}, ctx.Err()
	})
	o := New(hung, Options{Window: time.Minute, ScrapeInterval: interval, Timeout: time.Millisecond, Now: clock.Now})
	changes := o.Scrape(context.Background(), []Target{c1})
	if !deadline {
		t.Errorf("Fetch got a context without a deadline")
	}
	if len(changes) != 1 || changes[0].Kind != Failing || !errors.Is(changes[0].Err, context.DeadlineExceeded) {
		t.Fatalf("changes = %+v, want one Failing with context.DeadlineExceeded", changes)
	}
	st := o.Stats("canary", "v3", 20)
	if want := "canary target app-canary-1: scrape failed: context deadline exceeded"; st.Outcome != metrics.MissingData || st.Reason != want {
		t.Errorf("Stats = %q %q, want %q %q", st.Outcome, st.Reason, metrics.MissingData, want)
	}
}

func TestScrapeCancelled(t *testing.T) {
	// Shutting down cancels the scrape: its errors say nothing about the
	// targets and must not be recorded or reported.
	h := newHarness(Options{})
	h.run(scrapes(2, c1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.fetch.setFail(map[string]error{c1.Name: context.Canceled})
	if changes := h.obs.Scrape(ctx, []Target{c1}); changes != nil {
		t.Errorf("changes = %+v, want none", changes)
	}
	if hs := h.obs.Health(); len(hs) != 1 || hs[0].Failures != 0 || hs[0].LastError != nil {
		t.Errorf("Health = %+v, want c1 untouched", hs)
	}
}

func TestSetTiming(t *testing.T) {
	h := newHarness(Options{})
	h.run(script(scrapes(13, c1), wait(11*time.Second)))
	if st := h.obs.Stats("canary", "v3", 20); st.Outcome != metrics.MissingData {
		t.Fatalf("before: Outcome = %q, want %q", st.Outcome, metrics.MissingData)
	}
	// A longer interval: 11s is within 2 × 10s.
	h.obs.SetTiming(time.Minute, 10*time.Second)
	if st := h.obs.Stats("canary", "v3", 20); st.Outcome != metrics.OK {
		t.Errorf("interval 10s: Outcome = %q (%s), want ok", st.Outcome, st.Reason)
	}
	// Another window size starts every window afresh.
	h.obs.SetTiming(2*time.Minute, 10*time.Second)
	if st := h.obs.Stats("canary", "v3", 20); st.Outcome != metrics.InsufficientData {
		t.Errorf("window 2m: Outcome = %q (%s), want insufficient_data", st.Outcome, st.Reason)
	}
}

func TestTimeoutDefaults(t *testing.T) {
	tests := []struct {
		interval, timeout, want time.Duration
	}{
		{0, 0, 2 * time.Second}, // interval defaults to 5s
		{5 * time.Second, 0, 2 * time.Second},
		{time.Second, 0, 500 * time.Millisecond},
		{5 * time.Second, 3 * time.Second, 3 * time.Second},
	}
	for _, tt := range tests {
		o := New(newFakeFetcher(), Options{ScrapeInterval: tt.interval, Timeout: tt.timeout})
		if got := o.fetchTimeout(); got != tt.want {
			t.Errorf("interval %v timeout %v: fetch timeout %v, want %v", tt.interval, tt.timeout, got, tt.want)
		}
	}
}

func TestOldWindowsDropped(t *testing.T) {
	h := newHarness(Options{})
	h.run(script(scrapes(3, old1, old2, s1), scrapes(1, c1, s1)))
	h.obs.mu.Lock()
	defer h.obs.mu.Unlock()
	var keys []string
	for k := range h.obs.windows {
		keys = append(keys, k.track+"/"+k.revision)
	}
	slices.Sort(keys)
	if want := []string{"canary/v3", "stable/v1"}; !slices.Equal(keys, want) {
		t.Errorf("windows = %v, want %v", keys, want)
	}
}

func TestHTTPFetcher(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, `http_requests_total{status="200"} 7`)
	}))
	defer srv.Close()
	s, err := HTTPFetcher{}.Fetch(context.Background(), srv.URL)
	if err != nil || s.Requests != 7 {
		t.Errorf("Fetch = %+v, %v; want 7 requests", s, err)
	}
}

func TestConcurrent(t *testing.T) {
	// Run with -race: the scrape loop, status and promote at once.
	h := newHarness(Options{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := range 50 {
			h.clock.Add(interval)
			targets := []Target{c1, c2, s1}
			if i%10 == 9 {
				h.fetch.setFail(map[string]error{c2.Name: errRefused})
			} else {
				h.fetch.setFail(nil)
			}
			h.obs.Scrape(context.Background(), targets)
		}
	}()
	go func() {
		defer wg.Done()
		for range 50 {
			_ = h.obs.Stats("canary", "v3", 20)
			_ = h.obs.Health()
		}
	}()
	go func() {
		defer wg.Done()
		for range 50 {
			h.obs.SetTiming(time.Minute, interval)
			_ = h.obs.Stats("stable", "v1", 20)
		}
	}()
	wg.Wait()
	if st := h.obs.Stats("stable", "v1", 20); st.Outcome != metrics.OK {
		t.Errorf("stable after the run: %q (%s), want ok", st.Outcome, st.Reason)
	}
}

type fetchFunc func(ctx context.Context, url string) (metrics.Scrape, error)

func (f fetchFunc) Fetch(ctx context.Context, url string) (metrics.Scrape, error) { return f(ctx, url) }
