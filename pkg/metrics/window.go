package metrics

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"
)

// Outcome says whether Stats had enough data to be judged.
type Outcome string

const (
	// OK means the figures cover enough requests to be judged.
	OK Outcome = "ok"
	// InsufficientData means the window holds too little to judge; a policy
	// must treat it as "not yet", never as a pass.
	InsufficientData Outcome = "insufficient_data"
	// MissingData means a target that should have contributed did not: its
	// last scrape failed or its newest sample is too old. A Window cannot
	// tell (it only sees the scrapes that succeeded); pkg/observe, which
	// knows the targets, returns it. Like InsufficientData it is never a
	// pass, but it is kept apart because it calls for a look at the
	// target, not for more traffic or patience.
	MissingData Outcome = "missing_data"
)

// Stats are the figures of one track over the window.
type Stats struct {
	Outcome Outcome
	// Reason explains an outcome other than OK; empty when OK.
	Reason    string
	Requests  float64 // requests counted in the window
	Errors    float64 // of which answered 5xx
	ReqPerSec float64 // Requests / Span; 0 when Span is 0
	ErrorRate float64 // Errors / Requests; 0 when Requests is 0
	// P99Ms is the 0.99 quantile of request latency in milliseconds,
	// estimated like PromQL's histogram_quantile over the window's bucket
	// increases. It is 0 when the window holds no latency observations
	// (the Outcome is then InsufficientData), never NaN, so it can be
	// encoded as JSON.
	P99Ms float64
	// Span is the time covered by the samples used: from the earliest
	// baseline to the latest sample. It can exceed the window size by up
	// to one scrape interval because of the baseline sample.
	Span    time.Duration
	Targets int // targets with at least two samples in the window
}

// Window keeps a sliding window of scrapes per target (one Window per track)
// and derives Stats from it. It is safe for concurrent use.
//
// Observe and Stats expect time to move forward: samples are pruned relative
// to the newest observation, so Stats for an instant long before it may lack
// data.
type Window struct {
	size time.Duration

	mu      sync.Mutex
	latest  time.Time           // newest sample time observed
	targets map[string][]Scrape // per target, ordered by Time
}

// NewWindow returns an empty window covering size. A size <= 0 covers no
// time at all, so its Stats are always InsufficientData.
func NewWindow(size time.Duration) *Window {
	return &Window{size: size, targets: map[string][]Scrape{}}
}

// Observe records a scrape of target. The window keeps s (and its Buckets)
// as given, so the caller must not modify them afterwards.
func (w *Window) Observe(target string, s Scrape) {
	w.mu.Lock()
	defer w.mu.Unlock()

	samples := w.targets[target]
	// Scrapes normally arrive in order; a late one is slotted in place, and
	// one with an existing timestamp replaces that sample.
	i := sort.Search(len(samples), func(i int) bool { return !samples[i].Time.Before(s.Time) })
	if i < len(samples) && samples[i].Time.Equal(s.Time) {
		samples[i] = s
	} else {
		samples = slices.Insert(samples, i, s)
	}
	w.targets[target] = samples
	if s.Time.After(w.latest) {
		w.latest = s.Time
	}
	w.prune()
}

// prune drops samples that can no longer matter: everything before the
// newest baseline candidate (the last sample at or before the window start).
// A target not observed for two window lengths is dropped as gone, so that
// containers the caller never Forgets do not pile up; one window length is
// not enough, as its last sample may still serve as the baseline of a late
// scrape.
func (w *Window) prune() {
	start := w.latest.Add(-w.size)
	gone := w.latest.Add(-2 * w.size)
	for target, samples := range w.targets {
		if !samples[len(samples)-1].Time.After(gone) {
			delete(w.targets, target)
			continue
		}
		if b := baselineIndex(samples, start); b > 0 {
			w.targets[target] = slices.Delete(samples, 0, b)
		}
	}
}

// Forget drops a target at once, e.g. when its container is removed; its
// samples stop contributing to Stats immediately.
func (w *Window) Forget(target string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.targets, target)
}

// Latest returns the newest scrape of target, if any.
func (w *Window) Latest(target string) (Scrape, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	samples := w.targets[target]
	if len(samples) == 0 {
		return Scrape{}, false
	}
	s := samples[len(samples)-1]
	s.Buckets = slices.Clone(s.Buckets)
	return s, true
}

// Stats computes the window's figures as of now. At least minRequests
// requests (and at least one) must fall in the window, with latency
// observations, for the Outcome to be OK.
//
// For each target the increase runs from its baseline (the last sample at or
// before now-size, or its first sample if it appeared later) to its last
// sample at or before now, with PromQL-style counter-reset handling; the
// increases of all targets are summed. A target seen only once contributes
// nothing. Unlike PromQL's increase, nothing is extrapolated to the window
// edges.
func (w *Window) Stats(now time.Time, minRequests int) Stats {
	return w.StatsExcluding(now, minRequests, nil)
}

// StatsExcluding is Stats computed as if the targets for which exclude
// returns true had never been observed; a nil exclude excludes nothing. The
// samples stay in the window: a target whose scrape failed once is excluded
// while it fails, and its history counts again as soon as it recovers
// (counters are cumulative, so the increase across the gap is still right).
// exclude is called with the window locked and must not call back into it.
func (w *Window) StatsExcluding(now time.Time, minRequests int, exclude func(target string) bool) Stats {
	w.mu.Lock()
	defer w.mu.Unlock()

	start := now.Add(-w.size)
	// Sorted so that float sums are the same from call to call.
	names := make([]string, 0, len(w.targets))
	for name := range w.targets {
		if exclude != nil && exclude(name) {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)

	var (
		st         Stats
		first      time.Time
		last       time.Time
		bucketIncr = map[float64]float64{}
	)
	for _, name := range names {
		samples := w.targets[name]
		end := sort.Search(len(samples), func(i int) bool { return samples[i].Time.After(now) })
		b := baselineIndex(samples, start)
		if end-1 <= b {
			continue
		}
		used := samples[b:end]
		req, errs := increase(used, bucketIncr)
		st.Requests += req
		st.Errors += errs
		st.Targets++
		if t := used[0].Time; st.Targets == 1 || t.Before(first) {
			first = t
		}
		if t := used[len(used)-1].Time; st.Targets == 1 || t.After(last) {
			last = t
		}
	}
	if st.Targets > 0 {
		st.Span = last.Sub(first)
	}
	if st.Span > 0 {
		st.ReqPerSec = st.Requests / st.Span.Seconds()
	}
	if st.Requests > 0 {
		st.ErrorRate = st.Errors / st.Requests
	}
	p99 := bucketQuantile(0.99, sortedBuckets(bucketIncr)) * 1000
	latencyKnown := finite(p99)
	if latencyKnown {
		st.P99Ms = p99
	}

	need := max(minRequests, 1)
	switch {
	case !finite(st.Requests) || !finite(st.Errors) || !finite(st.ReqPerSec) || !finite(st.ErrorRate):
		// Only absurd counter values get here; zero the figures so that
		// they still encode as JSON.
		st = Stats{Outcome: InsufficientData, Reason: "counter values out of range", Targets: st.Targets, Span: st.Span}
	case st.Targets == 0 || st.Span <= 0:
		st.Outcome, st.Reason = InsufficientData, "no target has two scrapes in the window"
	case st.Requests < float64(need):
		st.Outcome, st.Reason = InsufficientData, fmt.Sprintf("%g requests in the window, need at least %d", st.Requests, need)
	case !latencyKnown:
		st.Outcome, st.Reason = InsufficientData, "no request latency observations in the window"
	default:
		st.Outcome = OK
	}
	return st
}

// baselineIndex is the index of the last sample at or before start, or 0
// when every sample is later.
func baselineIndex(samples []Scrape, start time.Time) int {
	after := sort.Search(len(samples), func(i int) bool { return samples[i].Time.After(start) })
	return max(after-1, 0)
}

// increase sums the growth of a target's counters across consecutive samples
// and adds each bucket's growth to bucketIncr. Like PromQL's increase, a drop
// means the counter restarted from zero, so the post-reset value is the
// growth. A restart is decided for the whole sample pair (any counter
// dropping, or app_uptime_seconds going back), because a process restart
// resets every counter at once, even one that has already grown past its old
// value.
func increase(samples []Scrape, bucketIncr map[float64]float64) (requests, errs float64) {
	for i := 1; i < len(samples); i++ {
		prev, cur := &samples[i-1], &samples[i]
		if restarted(prev, cur) {
			requests += cur.Requests
			errs += cur.Errors
			for _, b := range cur.Buckets {
				bucketIncr[b.UpperBound] += b.Count
			}
			continue
		}
		requests += cur.Requests - prev.Requests
		errs += cur.Errors - prev.Errors
		for _, b := range cur.Buckets {
			bucketIncr[b.UpperBound] += b.Count - bucketCount(prev.Buckets, b.UpperBound)
		}
	}
	return requests, errs
}

// restarted reports whether the target's counters were reset between prev
// and cur.
func restarted(prev, cur *Scrape) bool {
	if prev.Uptime != nil && cur.Uptime != nil && *cur.Uptime < *prev.Uptime {
		return true
	}
	if cur.Requests < prev.Requests || cur.Errors < prev.Errors {
		return true
	}
	for _, b := range prev.Buckets {
		// A bucket that vanished is a restart too: the histogram only
		// reappears once the new process observes a request.
		if c, ok := findBucket(cur.Buckets, b.UpperBound); !ok || c < b.Count {
			return true
		}
	}
	return false
}

func bucketCount(buckets []Bucket, bound float64) float64 {
	c, _ := findBucket(buckets, bound)
	return c
}

// findBucket looks bound up in buckets sorted by UpperBound.
func findBucket(buckets []Bucket, bound float64) (float64, bool) {
	i := sort.Search(len(buckets), func(i int) bool { return buckets[i].UpperBound >= bound })
	if i < len(buckets) && buckets[i].UpperBound == bound {
		return buckets[i].Count, true
	}
	return 0, false
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func sortedBuckets(byBound map[float64]float64) []Bucket {
	out := make([]Bucket, 0, len(byBound))
	for bound, c := range byBound {
		out = append(out, Bucket{UpperBound: bound, Count: c})
	}
	slices.SortFunc(out, func(a, b Bucket) int { return compareFloat(a.UpperBound, b.UpperBound) })
	return out
}
