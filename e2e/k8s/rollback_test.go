package k8s

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/releases"
)

// webAndWorker: web, routed by host, and a worker of two replicas.
func webAndWorker(worker string) string {
	return `project: shop
services:
  web:
    image: web:1
    port: 3000
    health_path: /healthz
    route: {host: shop.example.com}
    resources: {cpus: 0.1, memory: 64m}
  worker:
    image: ` + worker + `
    replicas: 2
    resources: {cpus: 0.1, memory: 64m}
nginx: {image: nginx:1, port: 8080}
network: {name: shop}
`
}

// TestWorkerRollbackToPreviousOnKubernetes: on the real API server,
// rollback worker --to previous after two releases of the worker brings
// worker:1 back: when the call returns, the worker's Deployment has
// rolled it out (the rollback is committed on that, not on the route,
// which never sends traffic to a worker), it is journaled once
// (rolled_back from 2 to 1), web's Deployment is untouched, and the
// releases list shows release 1 as the current one.
func TestWorkerRollbackToPreviousOnKubernetes(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "rollback")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	k := startDaemon(t, c, ns, webAndWorker("worker:1"), daemonOpts{})
	c.waitRolledOut(ctx, t, ns, "shop-web", 1, "web:1")
	c.waitRolledOut(ctx, t, ns, "shop-worker", 2, "worker:1")
	k.write(webAndWorker("worker:2"))
	c.waitRolledOut(ctx, t, ns, "shop-worker", 2, "worker:2")
	workerRevs := func() string {
		var rs api.Releases
		if err := k.api.Get(ctx, api.PathReleases+"?"+url.Values{"service": {"worker"}}.Encode(), &rs); err != nil {
			t.Fatalf("releases worker: %v", err)
		}
		var parts []string
		for _, r := range rs.Releases {
			cur := ""
			if r.Current {
				cur = "*"
			}
			parts = append(parts, fmt.Sprintf("%d%s:%s", r.Rev, cur, r.Image))
		}
		return strings.Join(parts, " ")
	}
	eventually(ctx, t, "worker's second release", func() (bool, string) {
		got := workerRevs()
		return got == "2*:worker:2 1:worker:1", got
	})
	web, _ := c.deployment(ctx, t, ns, "shop-web")

	start := time.Now()
	if p := k.call(ctx, api.PathRollback, api.RollbackRequest{Service: "worker", To: api.RollbackPrevious}); p.Error != "" {
		t.Fatalf("rollback worker --to previous: %s", p.Error)
	}
	took := time.Since(start)
	// Committed: the worker's Deployment has rolled worker:1 out already.
	d, _ := c.deployment(ctx, t, ns, "shop-worker")
	s := d.Status
	if img := kubetarget.ImageOf(d); img != "worker:1" || s.ObservedGeneration < d.Generation || s.UpdatedReplicas != 2 || s.AvailableReplicas != 2 || s.Replicas != 2 {
		t.Fatalf("rollback returned with shop-worker at %s: generation %d observed %d, replicas %d updated %d available %d",
			img, d.Generation, s.ObservedGeneration, s.Replicas, s.UpdatedReplicas, s.AvailableReplicas)
	}
	rolled := k.events(journal.EventRolledBack)
	if len(rolled) != 1 || rolled[0].Details["service"] != "worker" || releases.IntOf(rolled[0].Details["from_rev"]) != 2 || releases.IntOf(rolled[0].Details["to_rev"]) != 1 {
		t.Fatalf("rolled_back records %+v, want one of worker from 2 to 1", rolled)
	}
	if got := workerRevs(); got != "2:worker:2 1*:worker:1" {
		t.Fatalf("worker's releases after the rollback: %s", got)
	}
	if after, _ := c.deployment(ctx, t, ns, "shop-web"); after.Generation != web.Generation || after.ResourceVersion != web.ResourceVersion {
		t.Errorf("the worker's rollback touched web's Deployment: generation %d → %d", web.Generation, after.Generation)
	}
	t.Logf("rollback worker --to previous (2 replicas): %.2fs to committed", took.Seconds())
	// It stays: the next reconciles change nothing, journal nothing more.
	time.Sleep(2 * time.Second)
	if d2, _ := c.deployment(ctx, t, ns, "shop-worker"); kubetarget.ImageOf(d2) != "worker:1" || d2.Generation != d.Generation {
		t.Fatalf("after the rollback shop-worker runs %s (generation %d → %d)", kubetarget.ImageOf(d2), d.Generation, d2.Generation)
	}
	if n := len(k.events(journal.EventRolledBack)); n != 1 {
		t.Fatalf("%d rolled_back records, want 1", n)
	}
}
