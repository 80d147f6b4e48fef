package observe

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/accesslog"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

const (
	revA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	revB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	revS = "5555555555555555555555555555555555555555555555555555555555555555"
)

// line is an access-log line as nginx writes it for a request routed to
// pool's revision that ended with status after rt.
func line(pool, rev string, status int, rt time.Duration) string {
	us, urt, up := fmt.Sprint(status), fmt.Sprintf("%.3f", rt.Seconds()), "172.18.0.5:3000"
	switch {
	case pool == "-":
		us, urt, up = "-", "-", "-"
	case status == 499:
		us = "-"
	}
	return fmt.Sprintf(`172.18.0.1 [2026-12-02T00:44:52+00:00] "GET / HTTP/1.1" %d 92 rt=%.3f urt="%s" us="%s" pool=%s rev=%s upstream="%s" id=x`,
		status, rt.Seconds(), urt, us, pool, rev, up)
}

func feed(t *testing.T, p *Proxy, n int, l string) {
	t.Helper()
	e, err := accesslog.Parse(l)
	if err != nil {
		t.Fatalf("test line does not parse: %v\n%s", err, l)
	}
	for range n {
		p.Observe(&e)
	}
}

func newTestProxy() (*Proxy, *clock) {
	c := &clock{t: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	p := NewProxy(Options{Window: 10 * time.Second, ScrapeInterval: time.Second, Now: c.now})
	p.Following("nginx container demo-nginx")
	return p, c
}

// The figures of one canary revision: requests, 5xx (the app's and
// nginx's own) over routed requests, and a p99 that sits on the right
// side of a bucket-bound threshold.
func TestProxyFigures(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name      string
		lines     map[string]int // line -> count, all for the canary's revision A
		requests  float64
		errorRate float64
		p99Above  float64 // p99 > p99Above
		p99AtMost float64 // p99 <= p99AtMost
	}{
		{"healthy", map[string]int{line(accesslog.PoolCanary, revA, 200, 4*ms): 100}, 100, 0, 3, 4},
		{"nginx's own 502s and 504s count as errors", map[string]int{
			line(accesslog.PoolCanary, revA, 200, 4*ms): 96, line(accesslog.PoolCanary, revA, 502, 0): 2, line(accesslog.PoolCanary, revA, 504, time.Second): 2,
		}, 100, 0.04, 990, 1000},
		{"1% above 500ms: p99 at most 500", map[string]int{line(accesslog.PoolCanary, revA, 200, 100*ms): 99, line(accesslog.PoolCanary, revA, 200, 2*time.Second): 1}, 100, 0, 90, 100},
		{"2% above 500ms: p99 above 500", map[string]int{line(accesslog.PoolCanary, revA, 200, 100*ms): 98, line(accesslog.PoolCanary, revA, 200, 2*time.Second): 2}, 100, 0, 1900, 2000},
		{"exactly 500ms passes 500", map[string]int{line(accesslog.PoolCanary, revA, 200, 500*ms): 100}, 100, 0, 490, 500},
		{"501ms fails 500", map[string]int{line(accesslog.PoolCanary, revA, 200, 501*ms): 100}, 100, 0, 500, 510},
		{"client aborts are requests with their time, not errors", map[string]int{
			line(accesslog.PoolCanary, revA, 200, 4*ms): 90, line(accesslog.PoolCanary, revA, 499, 10*time.Second): 10,
		}, 100, 0, 9900, 10000},
		{"beyond 10 minutes reads as the last bound", map[string]int{line(accesslog.PoolCanary, revA, 504, 20*time.Minute): 50}, 50, 1, 599999, 600000},
		{"requests nginx answered itself and other revisions do not count", map[string]int{
			line(accesslog.PoolCanary, revA, 200, 4*ms): 100, line("-", "-", 403, 0): 50, line(accesslog.PoolCanary, revB, 502, 0): 50, line(accesslog.PoolStable, revS, 500, 0): 50,
		}, 100, 0, 3, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, c := newTestProxy()
			for l, n := range tt.lines {
				feed(t, p, n, l)
			}
			c.advance(time.Second)
			p.Sample()
			st := p.Stats(stack.TrackCanary, revA, 20)
			if st.Outcome != metrics.OK {
				t.Fatalf("outcome %s (%s), want ok", st.Outcome, st.Reason)
			}
			if st.Requests != tt.requests || st.ErrorRate != tt.errorRate {
				t.Errorf("requests %v, error rate %v; want %v and %v", st.Requests, st.ErrorRate, tt.requests, tt.errorRate)
			}
			if !(st.P99Ms > tt.p99Above && st.P99Ms <= tt.p99AtMost) {
				t.Errorf("p99 %v ms, want in (%v, %v]", st.P99Ms, tt.p99Above, tt.p99AtMost)
			}
			if st.ReqPerSec != tt.requests {
				t.Errorf("req/s %v over a 1s span, want %v", st.ReqPerSec, tt.requests)
			}
		})
	}
}

// A revision's figures never borrow another's, and the stable track's
// are apart from the canary's.
func TestProxyRevisionsApart(t *testing.T) {
	p, c := newTestProxy()
	feed(t, p, 100, line(accesslog.PoolCanary, revA, 502, 0))
	c.advance(time.Second)
	p.Sample()
	feed(t, p, 100, line(accesslog.PoolCanary, revB, 200, time.Millisecond))
	feed(t, p, 100, line(accesslog.PoolStable, revS, 200, time.Millisecond))
	c.advance(time.Second)
	p.Sample()
	b := p.Stats(stack.TrackCanary, revB, 20)
	if b.Outcome != metrics.OK || b.Requests != 100 || b.ErrorRate != 0 {
		t.Errorf("revision B: %+v; want 100 requests, none failed (A's 502s are A's)", b)
	}
	if a := p.Stats(stack.TrackCanary, revA, 20); a.Requests != 100 || a.ErrorRate != 1 {
		t.Errorf("revision A: %+v; want its 100 failures", a)
	}
	if s := p.Stats(stack.TrackStable, revS, 20); s.Requests != 100 || s.ErrorRate != 0 {
		t.Errorf("stable: %+v", s)
	}
	// The canary revision under the stable track's name is not the canary.
	if s := p.Stats(stack.TrackStable, revA, 20); s.Outcome != metrics.InsufficientData || !strings.Contains(s.Reason, "routed no request") {
		t.Errorf("stable track of revision A: %+v", s)
	}
	tot := p.Totals()
	if tot.Lines != 300 || tot.Unrouted != 0 {
		t.Errorf("totals %+v", tot)
	}
}

// No data is its own outcome: before the log is followed, while it is
// lost, and when sampling stops; a log followed again starts afresh.
func TestProxyMissingData(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	p := NewProxy(Options{Window: 10 * time.Second, ScrapeInterval: time.Second, Now: c.now})
	if st := p.Stats(stack.TrackCanary, revA, 1); st.Outcome != metrics.MissingData || !strings.Contains(st.Reason, "not followed yet") {
		t.Fatalf("before following: %+v", st)
	}
	p.Following("nginx container demo-nginx")
	feed(t, p, 100, line(accesslog.PoolCanary, revA, 200, time.Millisecond))
	c.advance(time.Second)
	p.Sample()
	if st := p.Stats(stack.TrackCanary, revA, 20); st.Outcome != metrics.OK {
		t.Fatalf("following: %+v", st)
	}

	// The stream breaks: missing data at once, however good the window.
	if !p.Lost(errors.New("unexpected EOF")) {
		t.Error("the first Lost of a streak did not say so")
	}
	if p.Lost(errors.New("connection refused")) {
		t.Error("a second Lost in the streak reported a new streak")
	}
	c.advance(1500 * time.Millisecond)
	st := p.Stats(stack.TrackCanary, revA, 20)
	if st.Outcome != metrics.MissingData || st.Reason != "canary proxy figures: nginx's access log not followed for 1.5s: connection refused" {
		t.Errorf("lost: %+v", st)
	}
	feed(t, p, 10, line(accesslog.PoolCanary, revA, 502, 0)) // read after the loss: not counted
	p.Sample()

	// Followed again: the old figures are gone, the new ones build up.
	p.Following("nginx container demo-nginx")
	if st := p.Stats(stack.TrackCanary, revA, 20); st.Outcome != metrics.InsufficientData {
		t.Errorf("just followed again: %+v; want insufficient data, not the figures from before the gap", st)
	}
	feed(t, p, 30, line(accesslog.PoolCanary, revA, 200, time.Millisecond))
	c.advance(time.Second)
	p.Sample()
	if st := p.Stats(stack.TrackCanary, revA, 20); st.Outcome != metrics.OK || st.Requests != 30 || st.ErrorRate != 0 {
		t.Errorf("after following again: %+v; want only the 30 new requests", st)
	}

	// Sampling stops (a stuck loop): stale after two intervals.
	c.advance(2 * time.Second)
	if st := p.Stats(stack.TrackCanary, revA, 20); st.Outcome != metrics.OK {
		t.Errorf("two intervals after the last sample: %+v; want still fresh", st)
	}
	c.advance(100 * time.Millisecond)
	if st := p.Stats(stack.TrackCanary, revA, 20); st.Outcome != metrics.MissingData || !strings.Contains(st.Reason, "no access-log sample for 2.1s") {
		t.Errorf("stale: %+v", st)
	}
}

// The window slides: failures older than the window stop counting, and a
// revision nobody routes to is dropped after two windows.
func TestProxyWindowSlides(t *testing.T) {
	p, c := newTestProxy()
	feed(t, p, 50, line(accesslog.PoolCanary, revA, 502, 0))
	for range 12 {
		feed(t, p, 10, line(accesslog.PoolCanary, revA, 200, time.Millisecond))
		c.advance(time.Second)
		p.Sample()
	}
	st := p.Stats(stack.TrackCanary, revA, 20)
	if st.Outcome != metrics.OK || st.ErrorRate != 0 || st.Requests != 100 {
		t.Errorf("12s after the failures, with a 10s window: %+v; want 100 requests, no errors", st)
	}
	for range 21 {
		c.advance(time.Second)
		p.Sample()
	}
	if st := p.Stats(stack.TrackCanary, revA, 1); st.Outcome != metrics.InsufficientData || !strings.Contains(st.Reason, "routed no request") {
		t.Errorf("two windows without a request: %+v; want the revision dropped", st)
	}
}

func TestProxyInsufficientData(t *testing.T) {
	p, c := newTestProxy()
	feed(t, p, 5, line(accesslog.PoolCanary, revA, 200, time.Millisecond))
	if st := p.Stats(stack.TrackCanary, revA, 1); st.Outcome != metrics.InsufficientData || !strings.Contains(st.Reason, "less than one sample") {
		t.Errorf("before the first sample: %+v", st)
	}
	c.advance(time.Second)
	p.Sample()
	if st := p.Stats(stack.TrackCanary, revA, 20); st.Outcome != metrics.InsufficientData || st.Requests != 5 || !strings.Contains(st.Reason, "need at least 20") {
		t.Errorf("5 requests, 20 needed: %+v", st)
	}
}

func TestLatencyBuckets(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int // bound in ms, 0 for +Inf
	}{
		{0, 1}, {time.Millisecond, 1}, {1500 * time.Microsecond, 2}, {99 * time.Millisecond, 99}, {100 * time.Millisecond, 100},
		{101 * time.Millisecond, 110}, {500 * time.Millisecond, 500}, {501 * time.Millisecond, 510}, {time.Second, 1000},
		{1001 * time.Millisecond, 1100}, {10 * time.Minute, 600000}, {10*time.Minute + time.Millisecond, 0},
	} {
		i := latencyBucket(c.d)
		got := 0
		if i < len(latencyBoundsMs) {
			got = latencyBoundsMs[i]
		}
		if got != c.want {
			t.Errorf("latencyBucket(%v) = bound %d ms, want %d", c.d, got, c.want)
		}
	}
	if n := len(latencyBoundsMs); n != 420 {
		t.Errorf("%d bounds, want 420", n)
	}
}
