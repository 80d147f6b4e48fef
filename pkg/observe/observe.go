// Package observe scrapes the app containers' Prometheus endpoints and keeps
// the SLO windows the canary-safety policy judges, one per track and
// revision, and it keeps track of whether each target's data can be trusted.
//
// Two rules hold here because a promotion depends on them:
//
//   - Figures belong to one revision. A window is keyed by (track,
//     revision), the revision being the container's config-hash label, so a
//     new canary starts from an empty window: v3 is never promoted on v2's
//     traffic.
//   - Missing data is not old data. A target whose last scrape failed, or
//     whose newest sample is older than two scrape intervals, is left out of
//     the figures, and Stats reports metrics.MissingData naming it, so a hung
//     canary cannot pass on the samples it served before it hung.
//
// The window math itself (reset-aware increases, PromQL-style p99) is
// pkg/metrics'.
package observe

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/appclient"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
)

// Defaults for zero Options. DefaultScrapeInterval matches the manifest's
// metrics.scrape_interval default; maxTimeout matches the HTTP client timeout
// the daemon used before this package.
const (
	DefaultScrapeInterval = 5 * time.Second
	maxTimeout            = 2 * time.Second
)

// Target is one app container to scrape.
type Target struct {
	Name     string // container name; targets are told apart by it
	Track    string // "stable" or "canary"
	Revision string // the container's config-hash label
	URL      string // its metrics endpoint
}

// Fetcher reads one target's metrics. It must return once ctx is done: the
// per-target timeout is enforced through ctx.
type Fetcher interface {
	Fetch(ctx context.Context, url string) (metrics.Scrape, error)
}

// HTTPFetcher fetches over HTTP with metrics.Fetch. A nil Client is an
// appclient one, which follows no redirect (a 3xx is an unexpected status:
// an app cannot steer the daemon's scrape elsewhere); the Observer bounds
// each fetch with its own timeout either way.
type HTTPFetcher struct{ Client *http.Client }

// appClient is HTTPFetcher's default client.
var appClient = appclient.New(0)

// Fetch implements Fetcher.
func (f HTTPFetcher) Fetch(ctx context.Context, url string) (metrics.Scrape, error) {
	c := f.Client
	if c == nil {
		c = appClient
	}
	return metrics.Fetch(ctx, c, url)
}

// Options configure an Observer. Zero values take the defaults noted.
type Options struct {
	// Window is how far back the figures look (metrics.window). A window
	// <= 0 covers no time: every Stats is InsufficientData.
	Window time.Duration
	// ScrapeInterval is how often the caller calls Scrape
	// (metrics.scrape_interval), default 5s. A sample older than twice
	// this is stale.
	ScrapeInterval time.Duration
	// Timeout bounds each target's fetch. The default, half the scrape
	// interval capped at 2s, keeps a healthy target from ever looking
	// stale when the caller scrapes on a ticker: from one sample to the
	// next is at most an interval plus a fetch, under 2 intervals.
	Timeout time.Duration
	// Now is the clock, default time.Now. It is called from the fetch
	// goroutines, so it must be safe for concurrent use.
	Now func() time.Time
}

// ChangeKind says which way a target's health changed.
type ChangeKind string

const (
	// Failing: the target's scrape failed after succeeding (or on its
	// first attempt).
	Failing ChangeKind = "failing"
	// Recovered: a scrape of a failing target succeeded.
	Recovered ChangeKind = "recovered"
)

// Change is a health transition reported by Scrape: one per failure streak
// and one when it ends, however many scrapes it lasts, so the caller can log
// at warn level and journal each outage once.
type Change struct {
	Target Target
	Kind   ChangeKind
	// Err is the scrape error (Failing), or the streak's last one
	// (Recovered).
	Err error
	// Failures is the number of failed scrapes in a row: 1 for Failing,
	// the streak's length for Recovered.
	Failures int
	Since    time.Time // when the first scrape of the streak failed
	At       time.Time // when the scrape that made the change ended
}

// Stats are one (track, revision)'s figures. The embedded metrics.Stats
// covers only the targets whose data is current; Missing names the others.
//
// Outcome is metrics.OK only when every target of the revision is current
// and the window has enough data; callers that hand figures to the policy
// should pass them only when Outcome == metrics.OK (and nil otherwise, which
// the canary-safety policy denies), exactly as for metrics.Window.
type Stats struct {
	metrics.Stats
	// Missing lists the revision's targets left out of the figures, by
	// name. When it is not empty the Outcome is metrics.MissingData and
	// Reason joins their reasons with "; ".
	Missing []Missing
}

// Missing is a target left out of the figures, and why, e.g.
// "canary target app-canary-1: scrape failed: context deadline exceeded".
type Missing struct {
	Target string
	Reason string
}

// TargetHealth is what is known about one target's scrapes.
type TargetHealth struct {
	Target
	LastSuccess time.Time // of its current revision; zero if none yet
	LastError   error     // the latest failed scrape's error, kept after recovery
	LastErrorAt time.Time
	Failures    int  // failed scrapes in a row; 0 when the last one succeeded
	Stale       bool // its newest sample is older than 2 scrape intervals
	// Reason is non-empty exactly when the target is left out of Stats.
	Reason string
}

// Observer scrapes targets and keeps their windows. It is safe for
// concurrent use; concurrent Scrape calls run one after the other.
type Observer struct {
	fetch   Fetcher
	now     func() time.Time
	timeout time.Duration // Options.Timeout; 0 derives it from the interval

	scrapeMu sync.Mutex // serialises Scrape, so results apply in order

	mu       sync.Mutex
	window   time.Duration
	interval time.Duration
	windows  map[key]*metrics.Window
	targets  map[string]*target // by name
}

type key struct{ track, revision string }

type target struct {
	Target
	lastSuccess  time.Time
	lastErr      error
	lastErrAt    time.Time
	failures     int
	failingSince time.Time
}

// New returns an Observer that reads metrics through f.
func New(f Fetcher, opts Options) *Observer {
	o := &Observer{
		fetch: f, now: opts.Now, timeout: opts.Timeout,
		windows: map[key]*metrics.Window{}, targets: map[string]*target{},
	}
	if o.now == nil {
		o.now = time.Now
	}
	o.SetTiming(opts.Window, opts.ScrapeInterval)
	return o
}

// SetTiming applies a changed metrics.window or metrics.scrape_interval. A
// new window size empties every window (a metrics.Window has a fixed size,
// and the old one was pruned for the old size); a new interval only moves
// the staleness limit and the default timeout. Targets' health is kept.
func (o *Observer) SetTiming(window, scrapeInterval time.Duration) {
	if scrapeInterval <= 0 {
		scrapeInterval = DefaultScrapeInterval
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if window != o.window {
		o.windows = map[key]*metrics.Window{}
	}
	o.window, o.interval = window, scrapeInterval
}

func (o *Observer) fetchTimeout() time.Duration {
	if o.timeout > 0 {
		return o.timeout
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return min(maxTimeout, o.interval/2)
}

type result struct {
	scrape metrics.Scrape
	err    error
	at     time.Time
}

// Scrape fetches every target in parallel, each bounded by the fetch
// timeout, records the results and returns the health changes, sorted by
// target name. targets is the complete current set: a target not in it is
// forgotten (its samples stop counting at once), and a window left without
// targets (an old revision) is dropped. Names must be unique; a repeated
// name is scraped once.
//
// Samples are stamped with the Observer's clock when their fetch returns
// (replacing the Fetcher's Time), so that sample ages and the window are
// measured on one clock. All results are applied together once every fetch
// has returned, so Stats never sees half a scrape.
//
// If ctx is done by the time the fetches return, nothing is recorded and
// Scrape returns nil: failures caused by cancelling (shutdown) say nothing
// about the targets.
func (o *Observer) Scrape(ctx context.Context, targets []Target) []Change {
	o.scrapeMu.Lock()
	defer o.scrapeMu.Unlock()

	var unique []Target
	seen := map[string]bool{}
	for _, t := range targets {
		if !seen[t.Name] {
			seen[t.Name] = true
			unique = append(unique, t)
		}
	}
	timeout := o.fetchTimeout()
	results := make([]result, len(unique))
	var wg sync.WaitGroup
	for i, t := range unique {
		wg.Go(func() {
			fctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			s, err := o.fetch.Fetch(fctx, t.URL)
			results[i] = result{scrape: s, err: err, at: o.now()}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	for name, t := range o.targets {
		if !seen[name] {
			o.forgetLocked(t)
		}
	}
	var changes []Change
	for i, tg := range unique {
		if c, ok := o.applyLocked(tg, results[i]); ok {
			changes = append(changes, c)
		}
	}
	slices.SortFunc(changes, func(a, b Change) int { return strings.Compare(a.Target.Name, b.Target.Name) })
	return changes
}

// applyLocked records one fetch result and reports a health change.
func (o *Observer) applyLocked(tg Target, r result) (Change, bool) {
	t := o.targets[tg.Name]
	switch {
	case t == nil:
		t = &target{Target: tg}
		o.targets[tg.Name] = t
	case t.Track != tg.Track || t.Revision != tg.Revision:
		// A new revision under the same name: its samples go to the new
		// revision's window. The failure streak stays, since the name is
		// what the caller logged.
		o.forgetLocked(t)
		o.targets[tg.Name] = t
		t.lastSuccess = time.Time{}
	}
	t.Target = tg // the URL may have moved

	if r.err != nil {
		t.lastErr, t.lastErrAt = r.err, r.at
		t.failures++
		if t.failures > 1 {
			return Change{}, false
		}
		t.failingSince = r.at
		return Change{Target: tg, Kind: Failing, Err: r.err, Failures: 1, Since: r.at, At: r.at}, true
	}
	k := key{tg.Track, tg.Revision}
	w := o.windows[k]
	if w == nil {
		w = metrics.NewWindow(o.window)
		o.windows[k] = w
	}
	s := r.scrape
	s.Time = r.at
	w.Observe(tg.Name, s)
	t.lastSuccess = r.at
	if t.failures == 0 {
		return Change{}, false
	}
	c := Change{Target: tg, Kind: Recovered, Err: t.lastErr, Failures: t.failures, Since: t.failingSince, At: r.at}
	t.failures, t.failingSince = 0, time.Time{}
	return c, true
}

// forgetLocked drops t and its samples, and its window once no target of
// that revision is left.
func (o *Observer) forgetLocked(t *target) {
	delete(o.targets, t.Name)
	k := key{t.Track, t.Revision}
	w := o.windows[k]
	if w == nil {
		return
	}
	w.Forget(t.Name)
	for _, other := range o.targets {
		if other.Track == t.Track && other.Revision == t.Revision {
			return
		}
	}
	delete(o.windows, k)
}

// Stats computes the figures of track's revision as of now, needing at
// least minRequests requests for an OK outcome (see metrics.Window.Stats).
// A revision with no scraped target is InsufficientData; one with a failing
// or stale target is MissingData, with the other targets' figures filled in
// for display.
func (o *Observer) Stats(track, revision string, minRequests int) Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()

	var st Stats
	excluded := map[string]bool{}
	found := false
	for _, t := range o.sortedLocked() {
		if t.Track != track || t.Revision != revision {
			continue
		}
		found = true
		if reason := o.missingLocked(t, now); reason != "" {
			excluded[t.Name] = true
			st.Missing = append(st.Missing, Missing{Target: t.Name, Reason: reason})
		}
	}
	if !found {
		st.Outcome = metrics.InsufficientData
		st.Reason = fmt.Sprintf("no %s target of revision %s is being scraped", track, revision)
		return st
	}
	w := o.windows[key{track, revision}]
	if w == nil {
		// Every target has failed since it appeared, or SetTiming has
		// just emptied the windows: an empty window says so.
		w = metrics.NewWindow(o.window)
	}
	st.Stats = w.StatsExcluding(now, minRequests, func(name string) bool { return excluded[name] })
	if len(st.Missing) > 0 {
		reasons := make([]string, len(st.Missing))
		for i, m := range st.Missing {
			reasons[i] = m.Reason
		}
		st.Outcome, st.Reason = metrics.MissingData, strings.Join(reasons, "; ")
	}
	return st
}

// missingLocked says why t's data must not count, or "" if it may.
func (o *Observer) missingLocked(t *target, now time.Time) string {
	switch {
	case t.failures > 0:
		return fmt.Sprintf("%s target %s: scrape failed: %v", t.Track, t.Name, t.lastErr)
	case t.lastSuccess.IsZero():
		// Not reached: every recorded result either succeeded or left
		// the target failing. Had it no sample, it would count nothing
		// anyway.
		return ""
	}
	if age := now.Sub(t.lastSuccess); o.staleLocked(age) {
		return fmt.Sprintf("%s target %s: no sample for %v (scrape interval %v)",
			t.Track, t.Name, age.Round(100*time.Millisecond), o.interval)
	}
	return ""
}

// staleLocked: a sample older than two intervals means at least one whole
// scheduled scrape came and went without a result, which a slow but healthy
// scrape (bounded by the timeout) never causes. Exactly two is still fresh.
func (o *Observer) staleLocked(age time.Duration) bool { return age > 2*o.interval }

// Health reports every current target, sorted by name.
func (o *Observer) Health() []TargetHealth {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	var out []TargetHealth
	for _, t := range o.sortedLocked() {
		out = append(out, TargetHealth{
			Target: t.Target, LastSuccess: t.lastSuccess, LastError: t.lastErr, LastErrorAt: t.lastErrAt,
			Failures: t.failures,
			Stale:    !t.lastSuccess.IsZero() && o.staleLocked(now.Sub(t.lastSuccess)),
			Reason:   o.missingLocked(t, now),
		})
	}
	return out
}

func (o *Observer) sortedLocked() []*target {
	ts := make([]*target, 0, len(o.targets))
	for _, t := range o.targets {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b *target) int { return strings.Compare(a.Name, b.Name) })
	return ts
}
