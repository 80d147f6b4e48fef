package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/accesslog"
	"github.com/swiftdeploy/swiftdeploy/pkg/analysis"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// abortedRecord is the journal's aborted event.
func (h *harness) abortedRecord() journal.Record {
	h.t.Helper()
	var ab []journal.Record
	for _, r := range h.records(journal.TypeEvent) {
		if r.Event == journal.EventAborted {
			ab = append(ab, r)
		}
	}
	if len(ab) != 1 {
		h.t.Fatalf("aborted journaled %d times: %v", len(ab), h.events())
	}
	return ab[0]
}

// A canary whose process died and came back (its own /metrics counts
// nothing it did not survive, so it looks healthy) while nginx answered
// its share with 502s: the proxy figures fail every check, and the
// daemon aborts it with nginx's reason. Judged on the app's figures
// alone, this canary passes and is promoted.
func TestCanaryFailedByNginxAlone(t *testing.T) {
	h := steppedHarness(t, 2, true)
	h.app.set(func(a *appMetrics) { a.proxyErrRate[stack.TrackCanary] = 0.3 })
	h.scrape(3)
	h.analyze(h.after(time.Second))
	r := h.rollout()
	if r.Failures != 1 || r.Last.Outcome != analysis.Fail {
		t.Fatalf("after one check: %+v (last %+v), want a failed check", r, r.Last)
	}
	if got := strings.Join(r.Last.Reasons, "; "); got != "Proxy error rate exceeds 1% threshold" {
		t.Errorf("reasons %q, want only nginx's error rate", got)
	}
	if f := r.Last.Figures; f["error_rate"] != 0.0 || f["proxy_error_rate"] != 0.3 || f["proxy_requests"] == nil {
		t.Errorf("check figures %v: want the app's 0 and nginx's 0.3 side by side", f)
	}
	h.scrape(1)
	h.analyze(h.after(2 * time.Second))
	if got := h.running(); got != "stable:app:1×2" {
		t.Fatalf("after 2 failed checks: running %s, want only stable; events %v", got, h.events())
	}
	if ab := h.abortedRecord(); !strings.Contains(ab.Message, "Proxy error rate exceeds 1% threshold") {
		t.Errorf("aborted %q does not name nginx's reason", ab.Message)
	}
	s := h.status()
	if s.Rollout == nil || s.Rollout.Phase != api.PhaseAborted || !strings.Contains(strings.Join(s.Rollout.Aborted.Reasons, " "), "Proxy error rate") {
		t.Fatalf("status after the abort: %+v", s.Rollout)
	}
}

// A hung canary: its /metrics times out (the app side has no data) and
// nginx waits on it (the proxy p99 is over the limit, some requests end
// in 504). The first check already fails, with no grace: nginx's figures
// are evidence, not silence.
func TestHungCanaryFailedByNginx(t *testing.T) {
	h := steppedHarness(t, 2, true)
	h.app.set(func(a *appMetrics) {
		a.fail[stack.TrackCanary] = errors.New("context deadline exceeded")
		a.proxySlow[stack.TrackCanary] = true
		a.proxyErrRate[stack.TrackCanary] = 0.05
	})
	h.scrape(3)
	h.analyze(h.after(time.Second))
	r := h.rollout()
	if r.Failures != 1 || r.Last.Outcome != analysis.Fail {
		t.Fatalf("first check of a hung canary: %+v, want failed (not graced)", r.Last)
	}
	reasons := strings.Join(r.Last.Reasons, "; ")
	for _, want := range []string{"Proxy P99 latency exceeds 500ms", "Proxy error rate exceeds 1% threshold", "Error rate unknown", "scrape failed: context deadline exceeded"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("reasons %q lack %q", reasons, want)
		}
	}
	h.scrape(1)
	h.analyze(h.after(2 * time.Second))
	if got := h.running(); got != "stable:app:1×2" {
		t.Fatalf("a hung canary still runs: %s", got)
	}
	if ab := h.abortedRecord(); !strings.Contains(ab.Message, "Proxy P99 latency exceeds 500ms") {
		t.Errorf("aborted %q does not name nginx's latency", ab.Message)
	}
}

// Without nginx's figures a canary cannot pass on the app's alone: the
// first check is graced, the next ones fail as no data, and the step
// never advances.
func TestNoProxyFiguresIsNoData(t *testing.T) {
	h := steppedHarness(t, 3, true)
	h.d.proxy.Lost(errors.New("unexpected EOF"))
	h.scrape(3)
	h.analyze(h.after(time.Second))
	if r := h.rollout(); r.Last.Outcome != analysis.Grace {
		t.Fatalf("first check without nginx's figures: %+v", r.Last)
	}
	h.scrape(1)
	h.analyze(h.after(3 * time.Second)) // the pause is over
	r := h.rollout()
	if r.Last.Outcome != analysis.NoData || r.Failures != 1 || h.weight() != 10 {
		t.Fatalf("second check: %+v, weight %d; want a failed no-data check at 10%%", r.Last, h.weight())
	}
	if got := strings.Join(r.Last.Reasons, "; "); !strings.Contains(got, "nginx's access log not followed") || !strings.Contains(got, "unexpected EOF") {
		t.Errorf("reasons %q do not say nginx's log is not followed", got)
	}
	// A manual promotion is refused too.
	if err := h.d.promote(context.Background(), "alice", "", func(string) {}); err == nil || !strings.Contains(err.Error(), "Proxy error rate unknown") {
		t.Errorf("promote without nginx's figures: %v", err)
	}
}

// Status carries both views per track, and the canary-safety verdict
// names nginx's reason.
func TestStatusShowsBothViews(t *testing.T) {
	h := canaryHarness(t)
	h.app.set(func(a *appMetrics) { a.proxyErrRate[stack.TrackCanary] = 0.1 })
	h.scrape(3)
	s := h.status()
	if len(s.Tracks) != 2 {
		t.Fatalf("tracks %+v", s.Tracks)
	}
	for _, tr := range s.Tracks {
		p := tr.Proxy
		if p == nil || p.Outcome != string(metrics.OK) || p.Requests != tr.Requests || p.P99Ms <= 0 {
			t.Errorf("%s: app %+v, proxy %+v; want nginx's figures beside the app's", tr.Track, tr, p)
			continue
		}
		// The canary's window holds the harness's earlier, clean
		// scrapes too: its proxy error rate is between them and 10%.
		if tr.ErrorRate != 0 || (tr.Track == stack.TrackCanary) != (p.ErrorRate > 0.01) || p.ErrorRate > 0.1 {
			t.Errorf("%s: app error rate %v, proxy %v; want 0 and (canary only) over 1%%", tr.Track, tr.ErrorRate, p.ErrorRate)
		}
	}
	var cs *api.Decision
	for i := range s.Policies {
		if s.Policies[i].Policy == policy.CanarySafety {
			cs = &s.Policies[i]
		}
	}
	if cs == nil || cs.Allowed || !strings.Contains(strings.Join(cs.Reasons, " "), "Proxy error rate exceeds 1% threshold") {
		t.Errorf("canary safety in status: %+v", cs)
	}
}

// --- the follower, over the fake engine's log stream ---

// follow starts accessLogLoop on the harness's daemon, with short
// retries, and waits until it follows the running nginx.
func (h *harness) follow() (stop func()) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.d.accessLogLoop(ctx) }()
	stop = func() { cancel(); <-done }
	h.t.Cleanup(stop)
	h.waitFollowing()
	return stop
}

// waitFollowing waits until the daemon follows the log of the running
// nginx container, and returns the container's name.
func (h *harness) waitFollowing() string {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, c := range h.fe.ByRole(stack.RoleNginx) {
			if c.Running() && h.fe.Followers(c.ID) > 0 {
				if src, lost := h.d.proxy.State(); lost == nil && strings.HasSuffix(src, c.Name) {
					return c.Name
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	src, lost := h.d.proxy.State()
	h.t.Fatalf("the daemon does not follow nginx's log: source %q, lost %v; calls %v", src, lost, h.fe.CallsTo(fake.OpFollowLogs))
	return ""
}

// nginxLog writes lines to the running nginx's output and waits until the
// daemon has read them.
func (h *harness) nginxLog(lines ...string) {
	h.t.Helper()
	before := h.d.proxy.Totals().Lines
	var name string
	for _, c := range h.fe.ByRole(stack.RoleNginx) {
		if c.Running() {
			name = c.Name
		}
	}
	if err := h.fe.Log(name, lines...); err != nil {
		h.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.d.proxy.Totals().Lines < before+uint64(len(lines)) {
		if time.Now().After(deadline) {
			h.t.Fatalf("the daemon read %d of %d lines", h.d.proxy.Totals().Lines-before, len(lines))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Lines nginx writes reach the proxy figures of the revision they name;
// what nginx answered by itself and what does not parse count for no
// track. A log followed again after a break starts afresh.
func TestFollowerFeedsProxyFigures(t *testing.T) {
	h := canaryHarness(t)
	h.d.proxy.Lost(errors.New("not started")) // the harness's own feed is off
	h.follow()
	canary := h.fe.ByTrack(stack.TrackCanary)[0]
	var lines []string
	for i := range 40 {
		status := 200
		if i < 4 {
			status = 504
		}
		e := accesslog.Entry{RemoteAddr: "10.0.0.1", Time: time.Now(), Request: "GET / HTTP/1.1", Status: status, RequestTime: 30 * time.Millisecond,
			Tries: []accesslog.Try{{Addr: canary.IP + ":3000", Status: status, Time: 30 * time.Millisecond}}, Pool: accesslog.PoolCanary, Revision: canary.Hash}
		lines = append(lines, e.String())
	}
	lines = append(lines,
		`10.0.0.1 [2026-12-02T00:44:21+00:00] "GET /chaos HTTP/1.1" 403 146 rt=0.000 urt="-" us="-" pool=- rev=- upstream="-" id=1f11`,
		"nginx: [warn] something nginx said on stdout",
		strings.Repeat("x", maxAccessLogLine+10),
	)
	h.nginxLog(lines...)
	h.d.scrapeOnce(context.Background(), h.d.manifestNow())
	st := h.d.proxy.Stats(stack.TrackCanary, canary.Hash, 10)
	if st.Outcome != metrics.OK || st.Requests != 40 || st.ErrorRate != 0.1 {
		t.Fatalf("canary figures from the stream: %+v", st)
	}
	tot := h.d.proxy.Totals()
	if tot.Unrouted != 1 || tot.Unparsed != 2 {
		t.Errorf("totals %+v: want the 403 unrouted and two lines unparsed", tot)
	}

	// The stream breaks (the engine connection was cut): missing data,
	// then the daemon follows again and the figures start afresh.
	h.fe.BreakLogs("demo-nginx", errors.New("unexpected EOF"))
	h.waitFollowing()
	if n := h.d.proxy.Totals().Follows; n < 2 {
		t.Errorf("followed %d times, want again after the break", n)
	}
	if st := h.d.proxy.Stats(stack.TrackCanary, canary.Hash, 10); st.Outcome == metrics.OK {
		t.Errorf("after the break the figures from before it still count: %+v", st)
	}
}

// nginx recreated: the stream of the old container ends and the daemon
// follows the new one.
func TestFollowerFollowsRecreatedNginx(t *testing.T) {
	h := canaryHarness(t)
	h.follow()
	old := h.fe.ByRole(stack.RoleNginx)[0]
	if err := h.fe.Kill(old.ID); err != nil {
		t.Fatal(err)
	}
	h.mustConverge() // the reconciler restores nginx
	h.waitFollowing()
	now := h.fe.ByRole(stack.RoleNginx)
	if len(now) != 1 || now[0].ID == old.ID || !now[0].Running() {
		t.Fatalf("nginx after the restore: %+v", now)
	}
	if h.fe.Followers(now[0].ID) != 1 {
		t.Errorf("the new nginx has %d followers, want 1", h.fe.Followers(now[0].ID))
	}
}

// Opening the stream is bounded by the call timeout: an engine that never
// answers leaves the figures missing, with the reason, and the daemon
// follows once it answers.
func TestFollowerOpenIsBounded(t *testing.T) {
	h := canaryHarness(t)
	h.d.eng = withTimeouts(h.fe, Timeouts{Call: 100 * time.Millisecond})
	h.fe.Hang(fake.OpFollowLogs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	followed, err := h.d.followAccessLog(ctx)
	if followed || err == nil || !strings.Contains(err.Error(), "did not answer follow logs") {
		t.Fatalf("follow against a hung engine: followed=%v err=%v", followed, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s against a 100ms call timeout", took)
	}
	h.fe.Clear()
	h.follow()
}

// silentLogs is an engine whose log streams never deliver and never end
// on their own, like a connection to an engine that went quiet.
type silentLogs struct {
	*fake.Engine
	mu      sync.Mutex
	streams int
}

func (s *silentLogs) FollowLogs(ctx context.Context, id string, since time.Time) (io.ReadCloser, error) {
	s.mu.Lock()
	s.streams++
	s.mu.Unlock()
	pr, pw := io.Pipe()
	go func() { <-ctx.Done(); pw.CloseWithError(ctx.Err()) }()
	return pr, nil
}

// A stream that goes quiet while nginx is replaced does not keep the
// daemon following the old container: the watchdog sees the new nginx
// and ends it.
func TestFollowerWatchdogSeesReplacedNginx(t *testing.T) {
	h := canaryHarness(t)
	eng := &silentLogs{Engine: h.fe}
	h.d.eng = withTimeouts(eng, Timeouts{Call: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.d.accessLogLoop(ctx) }()
	defer func() { cancel(); <-done }()
	old := h.fe.ByRole(stack.RoleNginx)[0]
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				src, lost := h.d.proxy.State()
				t.Fatalf("timed out waiting for %s: source %q lost %v", what, src, lost)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("following the first nginx", func() bool { src, lost := h.d.proxy.State(); return lost == nil && strings.HasSuffix(src, old.Name) })
	if err := h.fe.Kill(old.ID); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	waitFor("a second stream", func() bool { eng.mu.Lock(); defer eng.mu.Unlock(); return eng.streams >= 2 })
	if n := h.d.proxy.Totals().Follows; n < 2 {
		t.Errorf("followed %d times", n)
	}
}

func TestTimedFollowLogsPassesThrough(t *testing.T) {
	fe := fake.New()
	fe.AddImage("app:1")
	id, err := fe.Run(context.Background(), engineSpec("c1", "app:1", "demo", stack.RoleNginx))
	if err != nil {
		t.Fatal(err)
	}
	e := withTimeouts(fe, Timeouts{Call: 50 * time.Millisecond})
	rc, err := e.FollowLogs(context.Background(), id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // longer than the call timeout: the stream lives on
	if err := fe.Log("c1", "one", "two"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, err := io.ReadFull(rc, buf)
	if err != nil || string(buf[:n]) != "one\ntwo\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	rc.Close()
	if got := fmt.Sprint(fe.Followers("c1")); got != "0" {
		t.Errorf("followers after Close: %s", got)
	}
}

// The follower does not wait out its backoff when nginx starts: the
// container's start event wakes it, so nginx's first lines are read.
func TestFollowerWokenByNginxStart(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.d.logRetry = time.Hour // without the wake it would not look again
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	// The manifest is read as the loop would, so that the follower and
	// the event watcher know the project before nginx exists.
	if h.d.readManifest() == nil {
		t.Fatal("manifest not read")
	}
	wg.Go(func() { h.d.accessLogLoop(ctx) })
	wg.Go(func() { h.d.target.Watch(ctx, h.d.Enqueue) })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, lost := h.d.proxy.State(); lost != nil {
			break // it looked, found no nginx, and waits
		}
		if time.Now().After(deadline) {
			t.Fatal("the follower did not look for nginx")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.mustConverge()
	h.waitFollowing()
}
