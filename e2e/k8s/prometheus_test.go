package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/swiftdeploy/swiftdeploy/internal/testproc"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
)

// defaultPrometheus is where task k8s:build puts the Prometheus server.
const defaultPrometheus = "../../.cache/prometheus/bin/prometheus"

// fakeCanary serves a canary's metrics as the app exports them, the
// request counter moving by itself; errPermille of the requests are 500s.
type fakeCanary struct {
	mu          sync.Mutex
	ok, failed  float64
	errPermille atomic.Int64
}

func (f *fakeCanary) tick() {
	f.mu.Lock()
	defer f.mu.Unlock()
	bad := float64(f.errPermille.Load()) / 1000 * 20
	f.ok += 20 - bad
	f.failed += bad
}

func (f *fakeCanary) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	total := f.ok + f.failed
	fmt.Fprintf(w, "# TYPE http_requests_total counter\nhttp_requests_total{status=\"200\"} %g\nhttp_requests_total{status=\"500\"} %g\n", f.ok, f.failed)
	fmt.Fprintf(w, "# TYPE http_request_duration_seconds histogram\n")
	fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=\"0.01\"} %g\nhttp_request_duration_seconds_bucket{le=\"0.05\"} %g\nhttp_request_duration_seconds_bucket{le=\"+Inf\"} %g\n", total*0.9, total, total)
	fmt.Fprintf(w, "http_request_duration_seconds_sum %g\nhttp_request_duration_seconds_count %g\n", total*0.01, total)
}

// startPrometheus runs the real Prometheus server on loopback, scraping
// the targets a file_sd file lists every second; it returns its URL and
// the file to write targets to.
func startPrometheus(t *testing.T) (string, string) {
	t.Helper()
	bin := os.Getenv("SWIFTDEPLOY_PROMETHEUS")
	if bin == "" {
		bin = defaultPrometheus
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no Prometheus server at %s (task k8s:build builds it): %v", bin, err)
	}
	dir := t.TempDir()
	targets := filepath.Join(dir, "targets.json")
	if err := os.WriteFile(targets, []byte("[]"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: canary\n  file_sd_configs:\n  - files: [%q]\n    refresh_interval: 1s\n", targets)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	testproc.Start(t, "prometheus", cmd, filepath.Join(dir, "prometheus.log"))
	url := "http://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	eventually(ctx, t, "prometheus ready", func() (bool, string) {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return url, targets
}

// promCanary is the set-up of the tests judged on Prometheus's figures: a
// namespace, a real Prometheus reading its targets from a file, and a fake
// canary whose requests fail errPermille in 1,000.
type promCanary struct {
	c                          *cluster
	ns, promURL, targets, host string
	canary                     *fakeCanary
}

func newPromCanary(t *testing.T, name string, errPermille int64) *promCanary {
	t.Helper()
	p := &promCanary{c: connect(t)}
	p.promURL, p.targets = startPrometheus(t)
	p.ns = p.c.namespace(t, name)
	p.canary, p.host = startFakeCanary(t)
	p.canary.errPermille.Store(errPermille)
	return p
}

// metricsYAML is the manifest's metrics section on this Prometheus, and
// the policy's thresholds too when withPolicy.
func (p *promCanary) metricsYAML(withPolicy bool) string {
	y := fmt.Sprintf("metrics:\n  prometheus: %s\n  scrape_interval: 1s\n  window: 5s\n", p.promURL)
	if withPolicy {
		y += "policy:\n  max_error_rate: 0.01\n  max_p99_ms: 500\n  min_requests: 20\n"
	}
	return y
}

// scrape has Prometheus scrape the fake canary as the pods of deployment's
// current revision and returns that revision's pod-template hash.
func (p *promCanary) scrape(ctx context.Context, t *testing.T, deployment string) string {
	t.Helper()
	hash := p.c.podTemplateHash(ctx, t, p.ns, deployment)
	writeTargets(t, p.targets, p.host, p.ns, hash)
	return hash
}

// TestPrometheusGatesPromotion: the real Prometheus scrapes a loopback
// target standing in for the canary's pods, labelled as Kubernetes pod
// discovery labels them. With no series the promotion is denied (no
// data); with half the requests failing it is denied for the error rate;
// with none failing it is allowed, and the promotion commits when the API
// shows the stable Deployment rolled out on the canary's image, the route
// at stable 100 and the canary deleted, journaled once.
func TestPrometheusGatesPromotion(t *testing.T) {
	pc := newPromCanary(t, "promote", 500)
	c, ns, promURL, canary := pc.c, pc.ns, pc.promURL, pc.canary
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	k := startDaemon(t, c, ns, manifestYAML("app:1", 2, "0.1", canaryYAML("app:2", 25, 1), pc.metricsYAML(true)), daemonOpts{})
	c.waitRolledOut(ctx, t, ns, "shop-canary", 1, "app:2")
	eventually(ctx, t, "canary routed", func() (bool, string) {
		w := c.routeWeights(ctx, t, ns, "shop")
		return w == "shop-canary=25 shop-stable=75", w
	})

	// No series yet: no data is its own outcome, and it denies.
	p := k.call(ctx, api.PathPromote, nil)
	denied := strings.Join(p.Denied, "; ")
	if len(p.Denied) == 0 || !strings.Contains(denied, "Prometheus has no data") {
		t.Fatalf("promotion with no series: %+v, want denied for no data", p)
	}

	// The target, labelled as the canary's current pods.
	hash := pc.scrape(ctx, t, "shop-canary")
	prom := kubetarget.Prometheus{URL: promURL}
	q := kubetarget.QueriesFor(kubetarget.TrackSelector(ns, "shop", "canary", hash), 5*time.Second)
	waitErrorRate := func(want func(float64) bool, what string) {
		t.Helper()
		eventually(ctx, t, what, func() (bool, string) {
			v, ok, why, err := prom.Query(ctx, q.ErrorRate)
			n, nok, _, _ := prom.Query(ctx, q.Requests)
			return err == nil && ok && nok && n >= 20 && want(v), fmt.Sprintf("error rate %v ok %v (%s) requests %v err %v", v, ok, why, n, err)
		})
	}
	waitErrorRate(func(v float64) bool { return v > 0.4 }, "Prometheus sees the failing canary")
	p = k.call(ctx, api.PathPromote, nil)
	if !strings.Contains(strings.Join(p.Denied, "; "), "Error rate exceeds") {
		t.Fatalf("promotion of a failing canary: %+v, want denied for the error rate", p)
	}
	if d, _ := c.deployment(ctx, t, ns, "shop-stable"); d.Spec.Template.Spec.Containers[0].Image != "app:1" {
		t.Fatal("a denied promotion changed stable")
	}
	s := k.status(ctx)
	if len(s.Tracks) != 2 || s.Tracks[1].Track != "canary" || s.Tracks[1].ErrorRate < 0.4 || s.Tracks[1].Revision != hash {
		t.Fatalf("status tracks %+v, want the canary's figures from Prometheus", s.Tracks)
	}

	canary.errPermille.Store(0)
	waitErrorRate(func(v float64) bool { return v == 0 }, "Prometheus sees the healthy canary")
	// Every change of the stable Service's endpoints is recorded: until
	// the route switches to the promoted image, they hold app:1 alone.
	eps := watchStableEndpoints(ctx, t, c, ns, "shop-stable", "shop", "app:1")
	start := time.Now()
	committedAt := make(chan time.Time, 1)
	go func() {
		for ctx.Err() == nil {
			if w := c.routeWeightsOf(ctx, ns, "shop"); w != nil && w["shop-stable"] == 0 {
				committedAt <- time.Now()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	p = k.call(ctx, api.PathPromote, nil)
	if p.Error != "" {
		t.Fatalf("promotion of a healthy canary: %+v", p)
	}
	t.Logf("promotion, from the request to converged (stable rolled out on the canary's image, canary deleted): %.2fs", time.Since(start).Seconds())
	select {
	case at := <-committedAt:
		t.Logf("promotion, from the request to committed (the route sends every request to the promoted image): %.2fs", at.Sub(start).Seconds())
	default:
	}
	changes, violations, switched := eps.stop()
	if len(violations) > 0 || !switched {
		t.Fatalf("stable Service endpoints over %d changes: switched %v, pods of the unpromoted image serving stable traffic before the switch: %q", changes, switched, violations)
	}
	t.Logf("stable Service's EndpointSlices: %d changes watched, every Ready endpoint app:1 until the switch", changes)
	// Committed means observed: all of it is true when the call returns.
	if d, _ := c.deployment(ctx, t, ns, "shop-stable"); d.Spec.Template.Spec.Containers[0].Image != "app:2" {
		t.Fatalf("promoted, but stable runs %s", d.Spec.Template.Spec.Containers[0].Image)
	}
	c.waitRolledOut(ctx, t, ns, "shop-stable", 2, "app:2")
	if w := c.routeWeights(ctx, t, ns, "shop"); w != "shop-stable=100" {
		t.Fatalf("promoted, route %s", w)
	}
	if c.exists(ctx, t, "/apis/apps/v1/namespaces/"+ns+"/deployments/shop-canary") {
		t.Fatal("promoted, the canary Deployment is still there")
	}
	time.Sleep(k.resync + time.Second)
	if n := len(k.events(journal.EventPromoted)); n != 1 {
		t.Fatalf("%d promoted events, want 1", n)
	}
	if n := len(k.events(journal.EventPromoteDenied)); n != 2 {
		t.Fatalf("%d promote_denied events, want 2 (no data, error rate)", n)
	}
	if s := k.status(ctx); s.Mode != "stable" || s.StableImage != "app:2" || !s.Converged {
		t.Fatalf("after promotion: mode %q stable %q converged %v pending %q", s.Mode, s.StableImage, s.Converged, s.Pending)
	}
}

// startFakeCanary serves a canary's metrics on loopback, its counters
// moving by themselves until the test ends; host is its address.
func startFakeCanary(t *testing.T) (*fakeCanary, string) {
	t.Helper()
	canary := &fakeCanary{}
	srv := httptest.NewServer(canary)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); srv.Close() })
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				canary.tick()
			}
		}
	}()
	return canary, strings.TrimPrefix(srv.URL, "http://")
}

// writeTargets points Prometheus's file discovery at host, labelled as
// Kubernetes pod discovery labels the canary's current pods.
func writeTargets(t *testing.T, targets, host, ns, hash string) {
	t.Helper()
	writeServiceTargets(t, targets, host, ns, hash, "")
}

// writeServiceTargets is writeTargets for named service service's canary
// pods (their service label too, which the daemon selects a service's
// figures by, the primary's excepted); "" leaves the label out.
func writeServiceTargets(t *testing.T, targets, host, ns, hash, service string) {
	t.Helper()
	labels := map[string]string{"namespace": ns, "io_swiftdeploy_project": "shop", "io_swiftdeploy_track": "canary", "pod_template_hash": hash}
	if service != "" {
		labels["io_swiftdeploy_service"] = service
	}
	sd, _ := json.Marshal([]map[string]any{{"targets": []string{host}, "labels": labels}})
	if err := os.WriteFile(targets+".tmp", sd, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(targets+".tmp", targets); err != nil {
		t.Fatal(err)
	}
}

// waitCanaryData waits until Prometheus has the canary's figures over
// window with an error rate want accepts.
func waitCanaryData(ctx context.Context, t *testing.T, promURL, ns, hash string, window time.Duration, want func(float64) bool, what string) {
	t.Helper()
	prom := kubetarget.Prometheus{URL: promURL}
	q := kubetarget.QueriesFor(kubetarget.TrackSelector(ns, "shop", "canary", hash), window)
	eventually(ctx, t, what, func() (bool, string) {
		v, ok, why, err := prom.Query(ctx, q.ErrorRate)
		n, nok, _, _ := prom.Query(ctx, q.Requests)
		return err == nil && ok && nok && n >= 20 && want(v), fmt.Sprintf("error rate %v ok %v (%s) requests %v err %v", v, ok, why, n, err)
	})
}

// TestPromotionThatCannotRollOutIsAborted: the canary passes canary
// safety and the cluster gate allows the promotion, but every node is
// then tainted NoSchedule (the cluster policy does not judge taints). The
// promotion's first stage scales the canary to the stable's two replicas
// before any request moves; the new canary pod is never scheduled and
// never available. At the progress deadline the transaction is dropped
// (promote_failed, never promoted), the loop puts the canary back to its
// size, the stable Deployment was never touched, and the canary split
// kept serving throughout.
func TestPromotionThatCannotRollOutIsAborted(t *testing.T) {
	pc := newPromCanary(t, "abortpromo", 0)
	c, ns := pc.c, pc.ns
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	k := startDaemon(t, c, ns, manifestYAML("app:1", 2, "0.1", canaryYAML("app:2", 25, 1), pc.metricsYAML(false)), daemonOpts{deadline: 5 * time.Second})
	c.waitRolledOut(ctx, t, ns, "shop-canary", 1, "app:2")
	eventually(ctx, t, "canary routed", func() (bool, string) {
		w := c.routeWeights(ctx, t, ns, "shop")
		return w == "shop-canary=25 shop-stable=75", w
	})
	hash := pc.scrape(ctx, t, "shop-canary")
	waitCanaryData(ctx, t, pc.promURL, ns, hash, 5*time.Second, func(v float64) bool { return v == 0 }, "Prometheus sees the healthy canary")

	var nl corev1.NodeList
	if err := c.get(ctx, "/api/v1/nodes", &nl); err != nil {
		t.Fatal(err)
	}
	untaint := func() {
		for _, n := range nl.Items {
			_, _, _ = c.do(context.Background(), http.MethodPatch, "/api/v1/nodes/"+n.Name, []byte(`{"spec":{"taints":null}}`), "application/merge-patch+json")
		}
	}
	t.Cleanup(untaint)
	for _, n := range nl.Items {
		if len(n.Spec.Taints) > 0 {
			t.Fatalf("node %s already has taints %v: the test would remove them", n.Name, n.Spec.Taints)
		}
		if _, _, err := c.do(ctx, http.MethodPatch, "/api/v1/nodes/"+n.Name, []byte(`{"spec":{"taints":[{"key":"e2e-block","effect":"NoSchedule"}]}}`), "application/merge-patch+json"); err != nil {
			t.Fatal(err)
		}
	}

	p := k.call(ctx, api.PathPromote, nil)
	// A scale-up makes no new ReplicaSet, so the Deployment controller
	// never reports ProgressDeadlineExceeded for it: the transaction's own
	// deadline (the progress deadline and 10s) ends it.
	if p.Error == "" || !strings.Contains(p.Error, "did not take effect") || !strings.Contains(p.Error, "not rolled out within 5s") {
		t.Fatalf("promotion that cannot roll out: %+v, want it aborted at the progress deadline", p)
	}
	if n := len(k.events(journal.EventPromoteFailed)); n != 1 {
		t.Fatalf("%d promote_failed, want 1", n)
	}
	// The stable Deployment was never changed, and the old state comes
	// back: the canary at its size, its share.
	if d, _ := c.deployment(ctx, t, ns, "shop-stable"); d.Spec.Template.Spec.Containers[0].Image != "app:1" || d.Generation != 1 {
		t.Fatalf("the aborted promotion changed the stable Deployment: image %s generation %d", d.Spec.Template.Spec.Containers[0].Image, d.Generation)
	}
	c.waitRolledOut(ctx, t, ns, "shop-stable", 2, "app:1")
	if w := c.routeWeights(ctx, t, ns, "shop"); w != "shop-canary=25 shop-stable=75" {
		t.Fatalf("after the aborted promotion the route is %s", w)
	}
	c.waitRolledOut(ctx, t, ns, "shop-canary", 1, "app:2")
	untaint()
	time.Sleep(k.resync + time.Second)
	if n := len(k.events(journal.EventPromoted)); n != 0 {
		t.Fatalf("%d promoted events for a promotion that never took effect", n)
	}
	if s := k.status(ctx); s.StableImage != "app:1" || s.Mode != "canary" {
		t.Fatalf("status after the aborted promotion: stable %q mode %q", s.StableImage, s.Mode)
	}
}
