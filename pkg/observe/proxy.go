package observe

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/accesslog"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
)

// Proxy keeps nginx's view of every (track, revision): the requests nginx
// routed to it, the 5xx it sent back (the app's or its own 502s and 504s)
// and their request times, read from nginx's access log. It is what the
// app cannot report: a crashed or hung canary counts nothing in its own
// /metrics while nginx is answering its clients with errors.
//
// The figures come from the same window math as the app's (a
// metrics.Window per (track, revision), fed a cumulative sample every
// sample interval), and follow the same two rules as Observer:
//
//   - A revision's figures are its own: lines are keyed by the revision
//     nginx logged for the pool that routed them (accesslog.RevisionVar),
//     so a new canary starts from an empty window.
//   - Missing data is not old data: while the log is not being followed,
//     or no sample was taken for two intervals, every Stats is
//     metrics.MissingData. A log that was lost and followed again starts
//     every window afresh: the lines written in between are gone, and
//     figures without them could hide the very failure that broke the
//     stream.
//
// Latency goes into fixed buckets fine enough that the p99 is within one
// bucket of the truth and exact against any threshold that is a bucket
// bound: every whole millisecond below 100 ms, every 10 ms below 1 s, every
// 100 ms below 10 s, every second below 100 s and every 10 s to 10 min
// (above that, +Inf: the p99 reads 600 000 ms). Because a request time is
// put in the smallest bound at or above it, and the quantile interpolates
// inside the bucket the rank falls in, more than 1 % of requests above
// such a threshold always gives a p99 above it, and no more than 1 % never
// does.
//
// It is safe for concurrent use.
type Proxy struct {
	now func() time.Time

	mu         sync.Mutex
	window     time.Duration
	interval   time.Duration
	source     string    // what is followed, "" before the first Following
	lost       error     // why the log is not followed now; nil while it is
	lostSince  time.Time // when it was lost
	lastSample time.Time
	counts     map[key]*proxyCounts
	windows    map[key]*metrics.Window
	totals     ProxyTotals
}

// ProxyTotals count every line since the Proxy was made.
type ProxyTotals struct {
	Lines    uint64 // lines read, parsed or not
	Unparsed uint64 // lines Parse refused
	// Unrouted are requests nginx answered by itself (a refused /chaos, a
	// malformed request): they count for no track.
	Unrouted uint64
	// Unattributed were routed but name no revision (a pool that is not
	// SwiftDeploy's, or a line from a config without the revision map).
	Unattributed uint64
	Follows      uint64 // times the log was (re)followed
}

type proxyCounts struct {
	requests, errors float64
	buckets          []float64 // per latencyBoundsMs, then +Inf; not cumulative
	last             time.Time // when its last line arrived
}

// proxyTarget is the one target of a proxy window: nginx.
const proxyTarget = "nginx"

// latencyBoundsMs are the finite bucket bounds, in milliseconds.
var latencyBoundsMs = func() []int {
	var b []int
	for _, r := range []struct{ from, to, step int }{
		{1, 99, 1}, {100, 990, 10}, {1000, 9900, 100}, {10000, 99000, 1000}, {100000, 600000, 10000},
	} {
		for v := r.from; v <= r.to; v += r.step {
			b = append(b, v)
		}
	}
	return b
}()

// latencyBucket is the index of the smallest bound at or above d, or
// len(latencyBoundsMs) for +Inf.
func latencyBucket(d time.Duration) int {
	ms := int((d + time.Millisecond - 1) / time.Millisecond)
	return sort.SearchInts(latencyBoundsMs, ms)
}

// NewProxy returns a Proxy that has not followed the log yet: its Stats
// are MissingData until Following. Window and ScrapeInterval (the sample
// interval) and Now are read from opts; Timeout is not used.
func NewProxy(opts Options) *Proxy {
	p := &Proxy{now: opts.Now, counts: map[key]*proxyCounts{}, windows: map[key]*metrics.Window{}}
	if p.now == nil {
		p.now = time.Now
	}
	p.SetTiming(opts.Window, opts.ScrapeInterval)
	return p
}

// SetTiming applies a changed window or sample interval; a new window size
// empties every window, as Observer.SetTiming does.
func (p *Proxy) SetTiming(window, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultScrapeInterval
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if window != p.window {
		p.windows = map[key]*metrics.Window{}
		p.counts = map[key]*proxyCounts{}
	}
	p.window, p.interval = window, interval
}

// Following records that the log of source is followed from now on, and
// starts every window afresh.
func (p *Proxy) Following(source string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.source, p.lost, p.lostSince = source, nil, time.Time{}
	p.counts, p.windows = map[key]*proxyCounts{}, map[key]*metrics.Window{}
	p.lastSample = p.now()
	p.totals.Follows++
}

// Lost records that the log is not followed any more (or could not be),
// and why. It reports whether this starts a streak, so that the caller
// logs each outage once.
func (p *Proxy) Lost(err error) bool {
	if err == nil {
		err = fmt.Errorf("stream ended")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.lost == nil
	if first {
		p.lostSince = p.now()
	}
	p.lost = err
	return first
}

// Observe counts one line. Requests nginx answered by itself count for no
// track; a 5xx counts as an error whoever generated it; a 499 (the client
// gave up) counts as a request and its time as latency, not as an error.
func (p *Proxy) Observe(e *accesslog.Entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.totals.Lines++
	if p.lost != nil {
		return // a line read after the stream was declared lost
	}
	track := e.Track()
	switch {
	case e.Pool == "":
		p.totals.Unrouted++
		return
	case track == "" || e.Revision == "":
		p.totals.Unattributed++
		return
	}
	k := key{track, e.Revision}
	c := p.counts[k]
	now := p.now()
	if c == nil {
		c = &proxyCounts{buckets: make([]float64, len(latencyBoundsMs)+1)}
		p.counts[k] = c
		// A zero sample now, so that the first Sample already spans the
		// first lines.
		p.windowLocked(k).Observe(proxyTarget, metrics.Scrape{Time: now})
	}
	c.requests++
	if e.ServerError() {
		c.errors++
	}
	c.buckets[latencyBucket(e.RequestTime)]++
	c.last = now
}

// Unparsed counts a line that did not parse.
func (p *Proxy) Unparsed() {
	p.mu.Lock()
	p.totals.Lines++
	p.totals.Unparsed++
	p.mu.Unlock()
}

func (p *Proxy) windowLocked(k key) *metrics.Window {
	w := p.windows[k]
	if w == nil {
		w = metrics.NewWindow(p.window)
		p.windows[k] = w
	}
	return w
}

// Sample adds the cumulative counts of every (track, revision) to its
// window, as of now. The caller calls it every sample interval. A
// revision with no line for two window lengths is dropped. While the log
// is lost nothing is sampled.
func (p *Proxy) Sample() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lost != nil || p.source == "" {
		return
	}
	now := p.now()
	p.lastSample = now
	for k, c := range p.counts {
		if now.Sub(c.last) > 2*p.window {
			delete(p.counts, k)
			delete(p.windows, k)
			continue
		}
		s := metrics.Scrape{Time: now, Requests: c.requests, Errors: c.errors, Buckets: make([]metrics.Bucket, len(c.buckets))}
		var cum float64
		for i, n := range c.buckets {
			cum += n
			bound := math.Inf(1)
			if i < len(latencyBoundsMs) {
				bound = float64(latencyBoundsMs[i]) / 1000
			}
			s.Buckets[i] = metrics.Bucket{UpperBound: bound, Count: cum}
		}
		p.windowLocked(k).Observe(proxyTarget, s)
	}
}

// Stats are nginx's figures for track's revision as of now, needing at
// least minRequests routed requests for an OK outcome. Targets is 1 when
// nginx's window has two samples.
func (p *Proxy) Stats(track, revision string, minRequests int) metrics.Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	switch {
	case p.source == "" && p.lost == nil:
		return metrics.Stats{Outcome: metrics.MissingData, Reason: track + " proxy figures: nginx's access log is not followed yet"}
	case p.lost != nil:
		return metrics.Stats{Outcome: metrics.MissingData, Reason: fmt.Sprintf("%s proxy figures: nginx's access log not followed for %v: %v",
			track, now.Sub(p.lostSince).Round(100*time.Millisecond), p.lost)}
	case now.Sub(p.lastSample) > 2*p.interval:
		return metrics.Stats{Outcome: metrics.MissingData, Reason: fmt.Sprintf("%s proxy figures: no access-log sample for %v (sample interval %v)",
			track, now.Sub(p.lastSample).Round(100*time.Millisecond), p.interval)}
	}
	w := p.windows[key{track, revision}]
	if w == nil {
		return metrics.Stats{Outcome: metrics.InsufficientData, Reason: fmt.Sprintf("nginx routed no request to %s revision %s in the window", track, short(revision))}
	}
	st := w.Stats(now, minRequests)
	if st.Outcome != metrics.OK && st.Targets == 0 {
		st.Reason = fmt.Sprintf("nginx's figures for %s revision %s span less than one sample", track, short(revision))
	}
	return st
}

// Totals returns the line counts so far.
func (p *Proxy) Totals() ProxyTotals {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.totals
}

// State reports what is followed, and why not (nil while it is).
func (p *Proxy) State() (source string, lost error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.source, p.lost
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
