package k8s

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// stepsYAML is a stepped canary with its analysis (services: indented).
func stepsYAML(image string, replicas int, steps, analysis string) string {
	return fmt.Sprintf("  canary:\n    image: %s\n    replicas: %d\n    steps:\n%s    analysis: %s\n", image, replicas, steps, analysis)
}

// TestStepsWalkAndPromoteOnKubernetes: on the real API server, a canary of
// three steps (10, 25, 50) judged on the real Prometheus's figures walks
// the route through each weight in order and promotes itself after the
// last, journaled once; stable then runs the canary's image alone. At
// every step the stable Service's EndpointSlices hold only stable's two
// app:1 pods, and through the walk and the auto-promotion every change of
// them is watched: no Ready pod of app:2 is behind the stable Service
// while the route still sends it traffic.
func TestStepsWalkAndPromoteOnKubernetes(t *testing.T) {
	pc := newPromCanary(t, "steps", 0)
	c, ns := pc.c, pc.ns
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	extra := pc.metricsYAML(true)
	steps := "      - {weight: 10, pause: 4s}\n      - {weight: 25, pause: 4s}\n      - {weight: 50, pause: 4s}\n"
	// Checks before Prometheus has the canary's series fail for no data:
	// the failure limit leaves room for them.
	k := startDaemon(t, c, ns, manifestYAML("app:1", 2, "0.1", stepsYAML("app:2", 1, steps, "{interval: 1s, failure_limit: 30, auto_promote: true}"), extra), daemonOpts{})
	c.waitRolledOut(ctx, t, ns, "shop-canary", 1, "app:2")
	c.waitRolledOut(ctx, t, ns, "shop-stable", 2, "app:1")
	// Every change of the stable Service's endpoints from here on, until
	// the promotion's switch gives it no share.
	eps := watchStableEndpoints(ctx, t, c, ns, "shop-stable", "shop", "app:1")
	cs := c.clientset(t)
	pc.scrape(ctx, t, "shop-canary")

	// The route's weights, in the order they were seen, until promoted;
	// at each, while stable has a share and until the promotion's switch
	// took it away, what its endpoints serve.
	var seen, stableAt []string
	switched := false
	start := time.Now()
	eventually(ctx, t, "promoted by itself", func() (bool, string) {
		w := c.routeWeights(ctx, t, ns, "shop")
		if len(seen) == 0 || seen[len(seen)-1] != w {
			seen = append(seen, w)
			weights := c.routeWeightsOf(ctx, ns, "shop")
			switched = switched || weights != nil && weights["shop-stable"] == 0
			if weights["shop-stable"] > 0 && !switched {
				stableAt = append(stableAt, fmt.Sprintf("%s: %v", w, c.readyImages(ctx, t, cs, ns, "shop-stable")))
			}
		}
		return len(k.events(journal.EventPromoted)) > 0, strings.Join(seen, " → ")
	})
	t.Logf("route weights seen: %s; promoted %.1fs after the canary rolled out", strings.Join(seen, " → "), time.Since(start).Seconds())
	var walk []string
	for _, w := range seen {
		if strings.HasPrefix(w, "shop-canary=") {
			walk = append(walk, w)
		}
	}
	// The steps, then the promotion's switch: every request on the canary,
	// scaled to the stable's size, before the stable Deployment rolls.
	if want := []string{"shop-canary=10 shop-stable=90", "shop-canary=25 shop-stable=75", "shop-canary=50 shop-stable=50", "shop-canary=100 shop-stable=0"}; strings.Join(walk, "|") != strings.Join(want, "|") {
		t.Errorf("the canary's weights walked %v, want %v", walk, want)
	}
	c.waitRolledOut(ctx, t, ns, "shop-stable", 2, "app:2")
	eventually(ctx, t, "the canary gone and the route on stable", func() (bool, string) {
		w := c.routeWeights(ctx, t, ns, "shop")
		gone := !c.exists(ctx, t, "/apis/apps/v1/namespaces/"+ns+"/deployments/shop-canary")
		return w == "shop-stable=100" && gone, fmt.Sprintf("route %s, canary gone %v", w, gone)
	})
	changes, violations, epsSwitched := eps.stop()
	if len(violations) > 0 || !epsSwitched {
		t.Errorf("stable Service endpoints over %d changes: switched %v, pods of the unpromoted image serving stable traffic before the switch: %q; changes:\n%s",
			changes, epsSwitched, violations, strings.Join(eps.changesSeen(), "\n"))
	}
	// Read at each of the three steps, and at whatever else was seen
	// while stable had a share: app:1's pods alone (one of the two may be
	// between Ready states at the moment of a read: seen once in a suite
	// run, 1 Ready of 2; what the issue asks is that no pod of the
	// unpromoted image is there).
	for _, at := range stableAt {
		if !strings.HasSuffix(at, ": map[app:1:2]") && !strings.HasSuffix(at, ": map[app:1:1]") {
			t.Errorf("the stable Service's Ready endpoints at route %s, want app:1's pods alone", at)
		}
	}
	for _, step := range []string{"shop-canary=10 shop-stable=90", "shop-canary=25 shop-stable=75", "shop-canary=50 shop-stable=50"} {
		read := false
		for _, at := range stableAt {
			read = read || strings.HasPrefix(at, step+": ")
		}
		if !read {
			t.Errorf("the stable Service's endpoints were not read at step %s (read at %q)", step, stableAt)
		}
	}
	t.Logf("stable Service's EndpointSlices: %d changes watched through the walk and the promotion; at each step %q; changes:\n%s", changes, stableAt, strings.Join(eps.changesSeen(), "\n"))
	time.Sleep(k.resync + time.Second)
	if n := len(k.events(journal.EventPromoted)); n != 1 {
		t.Errorf("%d promoted events, want 1", n)
	}
	if n := len(k.events(journal.EventAborted)); n != 0 {
		t.Errorf("%d aborted events for a healthy canary", n)
	}
	if s := k.status(ctx); s.Mode != "stable" || s.StableImage != "app:2" || !s.Converged {
		t.Errorf("after the walk: mode %q stable %q converged %v pending %q", s.Mode, s.StableImage, s.Converged, s.Pending)
	}
}

// TestFailingCanaryAbortsItselfOnKubernetes: a stepped canary whose
// requests fail half the time, as the real Prometheus scrapes them, fails
// its checks for its error rate and is aborted by itself at the failure
// limit: journaled once, the route back on stable 100, the canary gone,
// stable's image unchanged.
func TestFailingCanaryAbortsItselfOnKubernetes(t *testing.T) {
	pc := newPromCanary(t, "stepabort", 500)
	c, ns := pc.c, pc.ns
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	extra := pc.metricsYAML(true)
	steps := "      - {weight: 10, pause: 60s}\n      - {weight: 50, pause: 60s}\n"
	// Room for the no-data checks before Prometheus has the series; the
	// last checks, those that reach the limit, judge the error rate.
	k := startDaemon(t, c, ns, manifestYAML("app:1", 2, "0.1", stepsYAML("app:2", 1, steps, "{interval: 1s, failure_limit: 12, auto_promote: true}"), extra), daemonOpts{})
	c.waitRolledOut(ctx, t, ns, "shop-canary", 1, "app:2")
	pc.scrape(ctx, t, "shop-canary")

	eventually(ctx, t, "aborted by itself", func() (bool, string) {
		return len(k.events(journal.EventAborted)) > 0, fmt.Sprintf("%d failed checks", len(k.events(journal.EventCheckFailed)))
	})
	ab := k.events(journal.EventAborted)[0]
	if !strings.Contains(ab.Message, "Error rate exceeds") {
		t.Errorf("aborted %q: want the canary's error rate (from Prometheus)", ab.Message)
	}
	eventually(ctx, t, "the route back on stable and the canary gone", func() (bool, string) {
		w := c.routeWeights(ctx, t, ns, "shop")
		gone := !c.exists(ctx, t, "/apis/apps/v1/namespaces/"+ns+"/deployments/shop-canary")
		return w == "shop-stable=100" && gone, fmt.Sprintf("route %s, canary gone %v", w, gone)
	})
	time.Sleep(k.resync + time.Second)
	if n := len(k.events(journal.EventAborted)); n != 1 {
		t.Errorf("%d aborted events, want 1", n)
	}
	if n := len(k.events(journal.EventPromoted)); n != 0 {
		t.Errorf("%d promoted events for a failing canary", n)
	}
	if d, _ := c.deployment(ctx, t, ns, "shop-stable"); d.Spec.Template.Spec.Containers[0].Image != "app:1" {
		t.Errorf("after the abort stable runs %s, want app:1", d.Spec.Template.Spec.Containers[0].Image)
	}
}
