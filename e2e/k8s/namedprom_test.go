package k8s

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// namedRoute is the HTTPRoute of web's host in threeServices.
const namedRoute = "shop-shop.example.com"

// namedPromCanary is newPromCanary's set-up for the named form: the
// daemon converges threeServices (web, a worker, db) judged on this
// Prometheus, without a canary first, so that the worker's Deployment,
// db's StatefulSet and web's stable Deployment are known as they were
// before web's canary.
type namedPromCanary struct {
	*promCanary
	k      *kubeDaemon
	worker appsv1.Deployment
	db     appsv1.StatefulSet
	web    appsv1.Deployment
}

func newNamedPromCanary(ctx context.Context, t *testing.T, name string, errPermille int64) *namedPromCanary {
	t.Helper()
	n := &namedPromCanary{promCanary: newPromCanary(t, name, errPermille)}
	c, ns := n.c, n.ns
	// db's claim bound from the start: web and the worker depend on it.
	c.persistentVolume(t, ns, "pgdata-shop-db-0")
	n.k = startDaemon(t, c, ns, n.manifest(""), daemonOpts{})
	c.waitRolledOut(ctx, t, ns, "shop-web", 2, "web:1")
	c.waitRolledOut(ctx, t, ns, "shop-worker", 1, "worker:1")
	eventually(ctx, t, "converged without a canary", func() (bool, string) {
		s := n.k.status(ctx)
		w := c.routeWeights(ctx, t, ns, namedRoute)
		return s.Converged && s.Mode == "stable" && s.StableImage == "web:1" && w == "web=100", fmt.Sprintf("converged %v mode %q stable %q route %s pending %q", s.Converged, s.Mode, s.StableImage, w, s.Pending)
	})
	n.worker, _ = c.deployment(ctx, t, ns, "shop-worker")
	n.web, _ = c.deployment(ctx, t, ns, "shop-web")
	n.db = c.statefulSet(ctx, t, ns, "shop-db")
	return n
}

// manifest is threeServices with web at web:1, its canary (YAML at the
// service's level) when canary is set, judged on this Prometheus.
func (n *namedPromCanary) manifest(canary string) string {
	return threeServicesCanary("web:1", canary) + n.metricsYAML(true)
}

// declareCanary writes web's canary into the manifest and waits until
// its Deployment has rolled out image and web's rule has weights; it
// returns the canary's pod-template hash, Prometheus scraping the fake
// canary as its pods.
func (n *namedPromCanary) declareCanary(ctx context.Context, t *testing.T, canary, image, weights string) string {
	t.Helper()
	c, ns := n.c, n.ns
	n.k.write(n.manifest(canary))
	c.waitRolledOut(ctx, t, ns, "shop-web-canary", 1, image)
	eventually(ctx, t, "web's canary routed", func() (bool, string) {
		w := c.routeWeights(ctx, t, ns, namedRoute)
		return w == weights, w
	})
	// The canary's objects are web's alone: one canary Deployment, its
	// Service selecting web's canary pods.
	if got := n.canaryDeployments(ctx, t); got != "shop-web-canary" {
		t.Fatalf("canary Deployments %q, want shop-web-canary alone", got)
	}
	var svc corev1.Service
	if err := c.get(ctx, "/api/v1/namespaces/"+ns+"/services/shop-web-canary", &svc); err != nil {
		t.Fatalf("web's canary Service: %v", err)
	}
	if sel := svc.Spec.Selector; sel["io.swiftdeploy.service"] != "web" || sel["io.swiftdeploy.track"] != "canary" {
		t.Fatalf("web's canary Service selects %v, want web's canary pods", sel)
	}
	n.untouched(ctx, t, "web's canary")
	return n.scrape(ctx, t, "shop-web-canary")
}

// canaryDeployments are the names of the canary track's Deployments.
func (n *namedPromCanary) canaryDeployments(ctx context.Context, t *testing.T) string {
	t.Helper()
	var dl appsv1.DeploymentList
	if err := n.c.get(ctx, "/apis/apps/v1/namespaces/"+n.ns+"/deployments?labelSelector="+url.QueryEscape("io.swiftdeploy.track=canary"), &dl); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range dl.Items {
		names = append(names, d.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// untouched: the worker's Deployment and db's StatefulSet are the ones
// that ran before web's canary, never changed since.
func (n *namedPromCanary) untouched(ctx context.Context, t *testing.T, by string) {
	t.Helper()
	if w, _ := n.c.deployment(ctx, t, n.ns, "shop-worker"); w.UID != n.worker.UID || w.Generation != n.worker.Generation || w.Spec.Template.Spec.Containers[0].Image != "worker:1" {
		t.Errorf("%s touched the worker's Deployment: UID %s → %s, generation %d → %d, image %s", by, n.worker.UID, w.UID, n.worker.Generation, w.Generation, w.Spec.Template.Spec.Containers[0].Image)
	}
	if s := n.c.statefulSet(ctx, t, n.ns, "shop-db"); s.UID != n.db.UID || s.Generation != n.db.Generation {
		t.Errorf("%s touched db's StatefulSet: UID %s → %s, generation %d → %d", by, n.db.UID, s.UID, n.db.Generation, s.Generation)
	}
}

// canaryGone: web's canary Deployment and Service are deleted and the
// route sends all of web's requests to its stable Service.
func (n *namedPromCanary) canaryGone(ctx context.Context, t *testing.T) (bool, string) {
	t.Helper()
	w := n.c.routeWeights(ctx, t, n.ns, namedRoute)
	dep := n.c.exists(ctx, t, "/apis/apps/v1/namespaces/"+n.ns+"/deployments/shop-web-canary")
	svc := n.c.exists(ctx, t, "/api/v1/namespaces/"+n.ns+"/services/shop-web-canary")
	return w == "web=100" && !dep && !svc, fmt.Sprintf("route %s, canary Deployment %v, Service %v", w, dep, svc)
}

// TestNamedCanaryPromotedOnPrometheus: in the named form (web, a worker,
// db), web's canary at weight 25 is judged on the real Prometheus's
// figures. Its Deployment, Service and its share on web's rule are web's
// alone; a failing canary's promotion is denied for the error rate; a
// healthy one's commits (every request of web on its canary, scaled to
// web's size), then web's stable Deployment runs the canary's image, the
// route is back on web alone and the canary deleted, journaled once. The
// worker's Deployment and db's StatefulSet are never touched.
func TestNamedCanaryPromotedOnPrometheus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := newNamedPromCanary(ctx, t, "named-promote", 500)
	c, ns, k := n.c, n.ns, n.k
	hash := n.declareCanary(ctx, t, "    canary: {image: web:2, weight: 25, replicas: 1}\n", "web:2", "shop-web-canary=25 web=75")
	if s := k.status(ctx); s.Mode != "canary" || s.CanaryImage != "web:2" || s.CanaryWeight != 25 || s.StableImage != "web:1" {
		t.Fatalf("status with web's canary: mode %q canary %q@%d stable %q", s.Mode, s.CanaryImage, s.CanaryWeight, s.StableImage)
	}

	waitCanaryData(ctx, t, n.promURL, ns, hash, 5*time.Second, func(v float64) bool { return v > 0.4 }, "Prometheus sees web's failing canary")
	p := k.call(ctx, api.PathPromote, nil)
	if !strings.Contains(strings.Join(p.Denied, "; "), "Error rate exceeds") {
		t.Fatalf("promotion of web's failing canary: %+v, want denied for the error rate", p)
	}
	if d, _ := c.deployment(ctx, t, ns, "shop-web"); d.Spec.Template.Spec.Containers[0].Image != "web:1" || d.Generation != n.web.Generation {
		t.Fatalf("a denied promotion changed web's stable Deployment: image %s generation %d", d.Spec.Template.Spec.Containers[0].Image, d.Generation)
	}
	if s := k.status(ctx); len(s.Tracks) != 2 || s.Tracks[1].Track != "canary" || s.Tracks[1].ErrorRate < 0.4 || s.Tracks[1].Revision != hash {
		t.Fatalf("status tracks %+v, want web's canary's figures from Prometheus", s.Tracks)
	}

	n.canary.errPermille.Store(0)
	waitCanaryData(ctx, t, n.promURL, ns, hash, 5*time.Second, func(v float64) bool { return v == 0 }, "Prometheus sees web's healthy canary")
	// Until the route switches to the promoted image, web's stable
	// Service's endpoints hold web:1 alone.
	eps := watchStableEndpoints(ctx, t, c, ns, "web", namedRoute, "web:1")
	start := time.Now()
	// When web's rule first sends every request to the canary: the time,
	// and how many of the canary's pods were available to take them.
	type switchSeen struct {
		at        time.Time
		available int32
	}
	committedAt := make(chan switchSeen, 1)
	go func() {
		for ctx.Err() == nil {
			if w := c.routeWeightsOf(ctx, ns, namedRoute); w != nil && w["web"] == 0 {
				var d appsv1.Deployment
				_ = c.get(ctx, "/apis/apps/v1/namespaces/"+ns+"/deployments/shop-web-canary", &d)
				committedAt <- switchSeen{time.Now(), d.Status.AvailableReplicas}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	p = k.call(ctx, api.PathPromote, nil)
	if p.Error != "" || len(p.Denied) > 0 {
		t.Fatalf("promotion of web's healthy canary: %+v", p)
	}
	t.Logf("promotion, from the request to converged (web's stable rolled out on the canary's image, canary deleted): %.2fs", time.Since(start).Seconds())
	select {
	case sw := <-committedAt:
		t.Logf("promotion, from the request to committed (web's rule sends every request to the promoted image): %.2fs", sw.at.Sub(start).Seconds())
		// The canary takes web's traffic at web's size, as the single
		// service's promotion does.
		if sw.available < 2 {
			t.Errorf("web's rule sent every request to a canary of %d available pods, want web's 2", sw.available)
		}
	default:
		t.Errorf("promotion returned but web's rule was never seen sending every request to the canary")
	}
	changes, violations, switched := eps.stop()
	if len(violations) > 0 || !switched {
		t.Fatalf("web's stable Service endpoints over %d changes: switched %v, pods of the unpromoted image serving stable traffic before the switch: %q", changes, switched, violations)
	}
	t.Logf("web's stable Service's EndpointSlices: %d changes watched, every Ready endpoint web:1 until the switch", changes)
	// Committed means observed: all of it is true when the call returns.
	if d, _ := c.deployment(ctx, t, ns, "shop-web"); d.UID != n.web.UID || d.Spec.Template.Spec.Containers[0].Image != "web:2" {
		t.Fatalf("promoted, but web's stable Deployment (UID %s, was %s) runs %s", d.UID, n.web.UID, d.Spec.Template.Spec.Containers[0].Image)
	}
	c.waitRolledOut(ctx, t, ns, "shop-web", 2, "web:2")
	if ok, why := n.canaryGone(ctx, t); !ok {
		t.Fatalf("promoted: %s", why)
	}
	time.Sleep(k.resync + time.Second)
	if got := len(k.events(journal.EventPromoted)); got != 1 {
		t.Errorf("%d promoted events, want 1", got)
	}
	if got := len(k.events(journal.EventPromoteDenied)); got != 1 {
		t.Errorf("%d promote_denied events, want 1 (error rate)", got)
	}
	if s := k.status(ctx); s.Mode != "stable" || s.StableImage != "web:2" || !s.Converged {
		t.Errorf("after promotion: mode %q stable %q converged %v pending %q", s.Mode, s.StableImage, s.Converged, s.Pending)
	}
	n.untouched(ctx, t, "web's promotion")
}

// TestNamedCanaryAbortsItselfOnPrometheus: in the named form, web's
// stepped canary whose requests fail half the time, as the real
// Prometheus scrapes them, holds its first step's share on web's rule
// and is aborted by itself at the failure limit, for its error rate:
// journaled once as an abort (not a promotion, not a manual rollback),
// the canary's Deployment and Service deleted, web's rule back on its
// stable Service alone, web's stable Deployment never changed. The
// worker's Deployment and db's StatefulSet are never touched.
func TestNamedCanaryAbortsItselfOnPrometheus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n := newNamedPromCanary(ctx, t, "named-abort", 500)
	c, ns, k := n.c, n.ns, n.k
	// Room for the no-data checks before Prometheus has the series; the
	// last checks, those that reach the limit, judge the error rate.
	steps := "      - {weight: 10, pause: 60s}\n      - {weight: 50, pause: 60s}\n"
	canary := indent(stepsYAML("web:2", 1, steps, "{interval: 1s, failure_limit: 12, auto_promote: true}"))
	start := time.Now()
	n.declareCanary(ctx, t, canary, "web:2", "shop-web-canary=10 web=90")

	eventually(ctx, t, "web's canary aborted by itself", func() (bool, string) {
		return len(k.events(journal.EventAborted)) > 0, fmt.Sprintf("%d failed checks", len(k.events(journal.EventCheckFailed)))
	})
	t.Logf("web's failing canary aborted %.1fs after it was declared", time.Since(start).Seconds())
	ab := k.events(journal.EventAborted)[0]
	if !strings.Contains(ab.Message, "Error rate exceeds") || !strings.Contains(ab.Message, "web:2") {
		t.Errorf("aborted %q: want web:2's error rate (from Prometheus)", ab.Message)
	}
	eventually(ctx, t, "web's canary gone", func() (bool, string) { return n.canaryGone(ctx, t) })
	time.Sleep(k.resync + time.Second)
	if got := len(k.events(journal.EventAborted)); got != 1 {
		t.Errorf("%d aborted events, want 1", got)
	}
	for _, e := range []string{journal.EventPromoted, journal.EventRolledBack} {
		if got := len(k.events(e)); got != 0 {
			t.Errorf("%d %s events for an aborted canary", got, e)
		}
	}
	if d, _ := c.deployment(ctx, t, ns, "shop-web"); d.UID != n.web.UID || d.Generation != n.web.Generation || d.Spec.Template.Spec.Containers[0].Image != "web:1" {
		t.Errorf("the abort changed web's stable Deployment: UID %s → %s, generation %d → %d, image %s", n.web.UID, d.UID, n.web.Generation, d.Generation, d.Spec.Template.Spec.Containers[0].Image)
	}
	if s := k.status(ctx); s.Mode != "stable" || s.StableImage != "web:1" || !s.Converged {
		t.Errorf("after the abort: mode %q stable %q converged %v pending %q", s.Mode, s.StableImage, s.Converged, s.Pending)
	}
	n.untouched(ctx, t, "web's aborted canary")
}

// indent moves YAML written at the single service's level (services:)
// to a named service's (services.<name>:).
func indent(y string) string {
	lines := strings.SplitAfter(y, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "")
}
