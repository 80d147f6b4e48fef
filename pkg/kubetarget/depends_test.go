package kubetarget

import (
	"context"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// applyNamed plans m, applies the plan and returns it.
func applyNamed(t *testing.T, f *fakeAPI, m0 string, o stack.Options, wantOps string) Plan {
	t.Helper()
	m := namedManifest(t, m0, "", true)
	_, _, p := planNamed(t, f, m, o)
	if got := strings.Join(kinds(p), ","); got != wantOps {
		t.Fatalf("plan = %s (%q, waiting %q), want %s", got, p.Lines(), p.Waiting, wantOps)
	}
	if err := Apply(context.Background(), f, p, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitsFor: a waiting line holds web's Deployment back for accessory db,
// saying why (what the StatefulSet lacks).
func waitsFor(p Plan, why string) bool {
	for _, w := range p.Waiting {
		if strings.HasPrefix(w, "apply Deployment shop-web (") && strings.Contains(w, "waits for accessory db (depends_on): StatefulSet shop-db") && strings.Contains(w, why) {
			return true
		}
	}
	return false
}

// depends_on on Kubernetes, as on Docker: web (depends_on db) starts
// only once db's StatefulSet is rolled out and ready, and the plan says
// so in a waiting line naming db; the worker, which depends on nothing,
// starts at once. Once web runs, db restarting later neither holds web
// back nor touches it, and a drift revert of web does not wait; a change
// of web's spec waits for db to be ready again, and a change of both
// applies db first and web after db has rolled out.
func TestDependentWaitsForItsAccessory(t *testing.T) {
	f := newFake()
	p := applyNamed(t, f, "web:1", stack.Options{}, "apply StatefulSet/shop-db,apply Service/db,apply Service/web,apply Deployment/shop-worker")
	if !waitsFor(p, "is being applied") {
		t.Fatalf("first plan waiting %q, want web's Deployment held for db", p.Waiting)
	}
	f.rollOut("shop-worker")

	// The StatefulSet exists, its pod not Ready: web still waits, and
	// Rolled's word on web says it is not started yet.
	f.stsNotReady("shop-db")
	m := namedManifest(t, "web:1", "", true)
	d, obs, p := planNamed(t, f, m, stack.Options{})
	if !p.Empty() || !waitsFor(p, "0 of 1 replicas ready") {
		t.Fatalf("db not ready: plan %q waiting %q, want nothing applied and web held for db's readiness", p.Lines(), p.Waiting)
	}
	if !slices.ContainsFunc(p.Lines(), func(l string) bool {
		return strings.HasPrefix(l, "wait: apply Deployment shop-web (create) waits for accessory db")
	}) {
		t.Fatalf("plan lines %q, want the wait shown (diff, status)", p.Lines())
	}
	if why := DependentPending(ForObserved(d, obs), obs, webDeployment(t, d)); !strings.Contains(why, "accessory db") {
		t.Fatalf("DependentPending = %q, want web held for db", why)
	}

	// db ready: web's Deployment is applied, then the route.
	f.rollOutSTS("shop-db")
	d, obs, _ = planNamed(t, f, m, stack.Options{})
	if why := DependentPending(ForObserved(d, obs), obs, webDeployment(t, d)); why != "Deployment shop-web not yet applied" {
		t.Fatalf("db ready, web not applied: DependentPending = %q", why)
	}
	applyNamed(t, f, "web:1", stack.Options{}, "apply Deployment/shop-web")
	f.rollOut("shop-web")
	applyNamed(t, f, "web:1", stack.Options{}, "apply HTTPRoute/shop-shop.example.com")
	d, obs, _ = planNamed(t, f, m, stack.Options{})
	if why := DependentPending(ForObserved(d, obs), obs, webDeployment(t, d)); why != "" {
		t.Fatalf("web applied: DependentPending = %q", why)
	}

	// db restarts (its pod not Ready): web, unchanged, is neither held
	// nor touched.
	f.stsNotReady("shop-db")
	d, obs, p = planNamed(t, f, m, stack.Options{})
	if !p.Empty() || len(p.Waiting) != 0 {
		t.Fatalf("db restarting: plan %q waiting %q, want nothing (web keeps running)", p.Lines(), p.Waiting)
	}
	if why := DependentPending(ForObserved(d, obs), obs, webDeployment(t, d)); why != "" {
		t.Fatalf("db restarting, web unchanged: DependentPending = %q, want nothing pending", why)
	}
	// A hand edit of web's image meanwhile is reverted at once: it
	// restores what ran.
	ct := f.objs["Deployment/shop-web"]["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	ct["image"] = "evil:1"
	p = applyNamed(t, f, "web:1", stack.Options{}, "apply Deployment/shop-web")
	if !p.Ops[0].Force {
		t.Fatalf("drift revert %q not forced", p.Lines())
	}
	// A change of web's image waits until db is ready again.
	p = applyNamed(t, f, "web:2", stack.Options{}, "")
	if !waitsFor(p, "0 of 1 replicas ready") || !strings.Contains(strings.Join(p.Waiting, "\n"), "(image web:1 → web:2) waits") {
		t.Fatalf("web's change while db restarts: waiting %q, want it held, naming the change and db", p.Waiting)
	}
	if got := ImageOf(mustObserve(t, f).Deployments["shop-web"]); got != "web:1" {
		t.Fatalf("web held: its Deployment runs %s, want web:1 untouched", got)
	}
	f.rollOutSTS("shop-db")
	applyNamed(t, f, "web:2", stack.Options{}, "apply Deployment/shop-web")
	f.rollOut("shop-web")

	// db's and web's images together: db first, web once db has rolled
	// out (the route does not change: web's rule names its Service).
	m3 := namedManifestWith(t, "web:3", "db:2", "", true)
	_, _, p = planNamed(t, f, m3, stack.Options{})
	if got := strings.Join(kinds(p), ","); got != "apply StatefulSet/shop-db" || !waitsFor(p, "is being applied") {
		t.Fatalf("both changed: plan %q waiting %q, want db's StatefulSet alone, web held", p.Lines(), p.Waiting)
	}
	if err := Apply(context.Background(), f, p, nil); err != nil {
		t.Fatal(err)
	}
	f.objs["StatefulSet/shop-db"]["status"] = map[string]any{"observedGeneration": 0, "replicas": 1, "updatedReplicas": 0, "readyReplicas": 0,
		"currentRevision": "r1", "updateRevision": "r2"}
	_, _, p = planNamed(t, f, m3, stack.Options{})
	if !p.Empty() || !waitsFor(p, "0 of 1 replicas updated") {
		t.Fatalf("db rolling: plan %q waiting %q, want web held", p.Lines(), p.Waiting)
	}
	f.rollOutSTS("shop-db")
	_, _, p = planNamed(t, f, m3, stack.Options{})
	if got := strings.Join(kinds(p), ","); got != "apply Deployment/shop-web" || len(p.Waiting) != 0 {
		t.Fatalf("db rolled out: plan %q waiting %q, want web's Deployment", p.Lines(), p.Waiting)
	}
}

// A canary of a service that depends on an accessory is held back as its
// stable Deployment is: its pods need the accessory as much; the route
// does not send it a share until it exists and has rolled out.
func TestDependentCanaryWaitsForItsAccessory(t *testing.T) {
	f := newFake()
	m := namedManifest(t, "web:1", "", false)
	convergeNamed(t, f, m)
	f.stsNotReady("shop-db")
	mc := namedManifest(t, "web:1", "    canary: {image: web:2, weight: 10}\n", false)
	_, _, p := planNamed(t, f, mc, stack.Options{})
	if got := strings.Join(kinds(p), ","); got != "apply Service/shop-web-canary" {
		t.Fatalf("canary while db restarts: plan %q, want the canary's Service alone", p.Lines())
	}
	w := strings.Join(p.Waiting, "\n")
	if !strings.Contains(w, "apply Deployment shop-web-canary (create) waits for accessory db (depends_on)") || !strings.Contains(w, "HTTPRoute shop-shop.example.com waits for Deployment shop-web-canary") {
		t.Fatalf("waiting %q, want the canary held for db and the route for the canary", p.Waiting)
	}
}

// webDeployment is web's desired Deployment.
func webDeployment(t *testing.T, d Desired) *appsv1.Deployment {
	t.Helper()
	for _, o := range d.Objects {
		if dep, ok := o.(*appsv1.Deployment); ok && dep.Name == "shop-web" {
			return dep
		}
	}
	t.Fatal("no Deployment shop-web desired")
	return nil
}

func mustObserve(t *testing.T, f *fakeAPI) Observed {
	t.Helper()
	obs, err := ListObserveExtras(context.Background(), f, "ns", "shop", namedExtras)
	if err != nil {
		t.Fatal(err)
	}
	return obs
}
