package controller

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/accesslog"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// harness is a daemon over the in-memory engine, driven one reconcile at a
// time, with host load under the test's control.
type harness struct {
	t   testing.TB
	dir string
	fe  *fake.Engine
	d   *Daemon
	app *appMetrics

	mu   sync.Mutex
	load float64 // 1-minute load average on 2 CPUs
}

const (
	idle = 0.1
	busy = 7.8
)

func fakeManifest(image string, replicas int, extra string) string {
	return fmt.Sprintf(`project: demo
services:
  image: %s
  port: 3000
  replicas: %d
%s
nginx:
  image: nginx:latest
  port: 8080
network:
  name: demo-net
metrics:
  scrape_interval: 1s
  window: 10s
policy:
  min_requests: 10
`, image, replicas, extra)
}

func newHarness(t testing.TB, manifest string) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), fe: fake.New(fake.WithSeed(1)), load: idle}
	h.app = newAppMetrics(h.fe)
	h.fe.AddImage("app:1", "app:2", "app:3", "nginx:latest")
	h.write(manifest)
	h.d = h.newDaemon()
	return h
}

// newDaemon starts a daemon on the harness's directory and engine: a
// second one after a "crash" sees what the first left behind.
func (h *harness) newDaemon() *Daemon { return h.newDaemonWith(func(*Config) {}) }

func (h *harness) write(manifest string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.dir, "manifest.yaml"), []byte(manifest), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) setLoad(l float64) {
	h.mu.Lock()
	h.load = l
	h.mu.Unlock()
}

func (h *harness) facts(string) policy.InfraInput {
	h.mu.Lock()
	defer h.mu.Unlock()
	load, disk := h.load, 100.0
	return policy.InfraInput{DiskPath: "/", DiskFreeGB: &disk, CPULoad1: &load, CPUCount: 2}
}

// reconcile runs one reconcile as the loop would.
func (h *harness) reconcile() error {
	h.t.Helper()
	return h.d.reconcileOnce(context.Background())
}

// deploy runs a reconcile the way `swiftctl deploy` waits for one.
func (h *harness) deploy() error {
	h.t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- h.d.wait(context.Background(), nil) }()
	for !h.d.hasWaiters() {
		time.Sleep(time.Millisecond)
	}
	if err := h.d.reconcileOnce(context.Background()); err != nil {
		<-errc
		return err
	}
	return <-errc
}

func (h *harness) mustConverge() {
	h.t.Helper()
	if err := h.reconcile(); err != nil {
		h.t.Fatalf("reconcile: %v", err)
	}
	s := h.status()
	if !s.Converged {
		h.t.Fatalf("not converged after a successful reconcile; pending %v", s.Pending)
	}
}

func (h *harness) status() api.Status { return h.d.Status(context.Background()) }

// running lists running app containers as image×count, e.g. "app:1×2".
func (h *harness) running() string {
	n := map[string]int{}
	var order []string
	for _, c := range h.fe.ByRole(stack.RoleApp) {
		if !c.Running() {
			continue
		}
		key := c.Track + ":" + c.Image
		if n[key] == 0 {
			order = append(order, key)
		}
		n[key]++
	}
	sort.SliceStable(order, func(i, j int) bool { // stable first
		return strings.HasPrefix(order[i], stack.TrackStable) && !strings.HasPrefix(order[j], stack.TrackStable)
	})
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s×%d", k, n[k]))
	}
	return strings.Join(parts, " ")
}

// events returns the journaled event names, in order.
func (h *harness) events() []string {
	h.t.Helper()
	var out []string
	for _, r := range h.records(journal.TypeEvent) {
		out = append(out, r.Event)
	}
	return out
}

func (h *harness) records(typ string) []journal.Record {
	h.t.Helper()
	if err := h.d.jr.Flush(); err != nil {
		h.t.Fatal(err)
	}
	var out []journal.Record
	err := journal.Read(filepath.Join(h.dir, "history.jsonl"), journal.Filter{Types: []string{typ}}, func(r journal.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func count(events []string, name string) int {
	n := 0
	for _, e := range events {
		if e == name {
			n++
		}
	}
	return n
}

func (h *harness) state() State {
	h.t.Helper()
	s, err := loadState(filepath.Join(h.dir, ".swiftdeploy"))
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// appMetrics stands in for the app's /metrics on the project network: each
// scrape of a container reports 100 more requests, with the track's error
// rate and latency; a track can be made to fail its scrapes.
type appMetrics struct {
	fe *fake.Engine
	mu sync.Mutex
	n  map[string]int
	// per track
	errRate map[string]float64
	slow    map[string]bool
	fail    map[string]error
	// nginx's view, per track: by default what the app reports (its
	// error rate, its slowness); proxyErrRate overrides the error rate,
	// proxySlow the latency, and proxyOff sends no access-log lines.
	proxyErrRate map[string]float64
	proxySlow    map[string]bool
	proxyOff     map[string]bool
	// svcErrRate, keyed "service/track", overrides both views' error
	// rate of one named service's track (several canaries at once).
	svcErrRate map[string]float64
}

func newAppMetrics(fe *fake.Engine) *appMetrics {
	return &appMetrics{fe: fe, n: map[string]int{}, errRate: map[string]float64{}, slow: map[string]bool{}, fail: map[string]error{},
		proxyErrRate: map[string]float64{}, proxySlow: map[string]bool{}, proxyOff: map[string]bool{}, svcErrRate: map[string]float64{}}
}

func (a *appMetrics) set(f func(a *appMetrics)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

func (a *appMetrics) Fetch(ctx context.Context, rawURL string) (metrics.Scrape, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return metrics.Scrape{}, err
	}
	var c *fake.ContainerInfo
	for _, ci := range a.fe.Snapshot() {
		if ci.IP == u.Hostname() && ci.Running() {
			c = &ci
			break
		}
	}
	if c == nil {
		return metrics.Scrape{}, fmt.Errorf("dial tcp %s: no route to host", u.Host)
	}
	a.mu.Lock()
	if err := a.fail[c.Track]; err != nil {
		a.mu.Unlock()
		return metrics.Scrape{}, err
	}
	a.n[c.Name]++
	k, rate, slow := a.n[c.Name], a.errRate[c.Track], a.slow[c.Track]
	if r, ok := a.svcErrRate[c.Service+"/"+c.Track]; ok {
		rate = r
	}
	a.mu.Unlock()
	total := 100 * k
	errs := int(float64(total) * rate)
	fast, late := total, 0
	if slow {
		fast, late = 0, total
	}
	text := fmt.Sprintf(`http_requests_total{method="GET",path="/",status="200"} %d
http_requests_total{method="GET",path="/",status="500"} %d
http_request_duration_seconds_bucket{method="GET",path="/",le="0.05"} %d
http_request_duration_seconds_bucket{method="GET",path="/",le="1"} %d
http_request_duration_seconds_bucket{method="GET",path="/",le="+Inf"} %d
http_request_duration_seconds_sum{method="GET",path="/"} %d
http_request_duration_seconds_count{method="GET",path="/"} %d
`, total-errs, errs, fast, fast+late, total, late, total)
	return metrics.Parse(strings.NewReader(text), time.Now())
}

// scrape runs n scrapes, spaced so the window covers a span; before each,
// nginx logs 100 requests per running app container (accessLog).
func (h *harness) scrape(n int) {
	h.t.Helper()
	for i := 0; i < n; i++ {
		if i > 0 {
			time.Sleep(60 * time.Millisecond)
		}
		for _, l := range h.app.accessLog() {
			h.d.proxyLine(new(accesslog.Entry), l, "demo-nginx", new(bool))
		}
		h.d.scrapeOnce(context.Background(), h.d.manifestNow())
	}
}

// accessLog is what nginx logs while each running app container serves
// 100 requests: 5xx at the track's proxy error rate, 20 ms each or 800 ms
// when slow, attributed to the container's revision as nginx.conf's map
// does.
func (a *appMetrics) accessLog() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var lines []string
	for _, c := range a.fe.ByRole(stack.RoleApp) {
		if !c.Running() || a.proxyOff[c.Track] {
			continue
		}
		rate, ok := a.proxyErrRate[c.Track]
		if !ok {
			rate = a.errRate[c.Track]
		}
		if r, ok := a.svcErrRate[c.Service+"/"+c.Track]; ok {
			rate = r
		}
		slow, ok := a.proxySlow[c.Track]
		if !ok {
			slow = a.slow[c.Track]
		}
		pool := accesslog.PoolStable
		if c.Track == stack.TrackCanary {
			pool = accesslog.PoolCanary
		}
		rt := 20 * time.Millisecond
		if slow {
			rt = 800 * time.Millisecond
		}
		errs := int(100 * rate)
		for i := range 100 {
			status := 200
			if i < errs {
				status = 502
			}
			e := accesslog.Entry{RemoteAddr: "10.0.0.1", Time: time.Now(), Request: "GET / HTTP/1.1", Status: status, BodyBytes: 90, RequestTime: rt,
				Tries: []accesslog.Try{{Addr: c.IP + ":3000", Status: status, Time: rt}}, Pool: pool, Revision: c.Hash, ID: "x"}
			lines = append(lines, e.String())
		}
	}
	return lines
}

func engineSpec(name, image, project, role string) engine.Spec {
	return engine.Spec{Name: name, Image: image, Labels: map[string]string{stack.LabelProject: project, stack.LabelRole: role}}
}

// errCrashed is what the operations frozen by freezeAt fail with once
// thawed: the crash they stand for.
var errCrashed = errors.New("crashed")

// freezeAt runs transition and freezes the daemon at the first apply
// operation op at point ("before" or "after" it): from there on every
// operation (removals run in parallel) stops, as a crash would stop them
// all. It returns once the freeze is reached, failing the test if the
// transition ends first or never reaches it (a freeze that never fired
// proves nothing). What the frozen daemon left on disk is then the
// crash's; the test starts a new daemon on it. thaw lets the frozen
// operations fail with errCrashed and returns the transition's error.
func (h *harness) freezeAt(point string, op reconciler.OpKind, transition func() error) (thaw func() error) {
	h.t.Helper()
	frozen, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	fired := false
	h.d.rec.Hook = func(p string, o reconciler.Op) error {
		mu.Lock()
		if !fired && (p != point || o.Kind != op) {
			mu.Unlock()
			return nil
		}
		if !fired {
			fired = true
			close(frozen)
		}
		mu.Unlock()
		<-release
		return errCrashed
	}
	var once sync.Once
	unfreeze := func() { once.Do(func() { close(release) }) }
	// A test that stops early does not leave the transition frozen.
	h.t.Cleanup(unfreeze)
	done := make(chan error, 1)
	go func() { done <- transition() }()
	select {
	case <-frozen:
	case err := <-done:
		h.t.Fatalf("the transition ended (%v) without reaching %s %s", err, point, op)
	case <-time.After(10 * time.Second):
		h.t.Fatalf("never reached %s %s", point, op)
	}
	return func() error {
		unfreeze()
		return <-done
	}
}
