package kubetarget

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// namedManifest is the named form's three services: web (routed by
// host), a worker and an accessory with a named volume; web with a canary
// when canary is set.
func namedManifest(t *testing.T, webImage, canary string, worker bool) *manifest.Manifest {
	t.Helper()
	return namedManifestWith(t, webImage, "db:1", canary, worker)
}

// namedManifestWith is namedManifest with db's image.
func namedManifestWith(t *testing.T, webImage, dbImage, canary string, worker bool) *manifest.Manifest {
	t.Helper()
	src := `project: shop
services:
  web:
    image: ` + webImage + `
    port: 3000
    route: {host: shop.example.com}
    depends_on: [db]
` + canary
	if worker {
		src += `  worker:
    image: worker:1
`
	}
	src += `  db:
    kind: accessory
    image: ` + dbImage + `
    port: 5432
    volumes: [{source: pgdata, target: /data}]
nginx: {image: nginx:1, port: 8080}
network: {name: shop}
`
	m, err := manifest.Parse([]byte(src), "shop")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var namedExtras = Extras{Claims: true, StatefulSets: true}

func planNamed(t *testing.T, f *fakeAPI, m *manifest.Manifest, o stack.Options) (Desired, Observed, Plan) {
	t.Helper()
	d, err := DesiredFor(m, o, "ns", "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := ListObserveExtras(context.Background(), f, "ns", m.Project, namedExtras)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compute(d, obs)
	if err != nil {
		t.Fatal(err)
	}
	return d, obs, Regate(p, d, obs)
}

// convergeNamed plans and applies m until nothing is left to do, each
// workload rolling out as soon as it is applied (the accessory first,
// then what depends on it, then the route).
func convergeNamed(t *testing.T, f *fakeAPI, m *manifest.Manifest) {
	t.Helper()
	for range 4 {
		_, _, p := planNamed(t, f, m, stack.Options{})
		if err := Apply(context.Background(), f, p, nil); err != nil {
			t.Fatal(err)
		}
		for key := range f.objs {
			if name, ok := strings.CutPrefix(key, "Deployment/"); ok {
				f.rollOut(name)
			}
			if name, ok := strings.CutPrefix(key, "StatefulSet/"); ok {
				f.rollOutSTS(name)
			}
		}
	}
}

// stsNotReady marks a StatefulSet's pods not Ready (starting, or
// restarting), at its spec's revision.
func (f *fakeAPI) stsNotReady(name string) {
	s := f.objs["StatefulSet/"+name]
	n := s["spec"].(map[string]any)["replicas"]
	s["status"] = map[string]any{"observedGeneration": 0, "replicas": n, "updatedReplicas": n, "readyReplicas": 0, "availableReplicas": 0,
		"currentRevision": "r1", "updateRevision": "r1"}
}

// rollOutSTS marks a StatefulSet rolled out at its spec.
func (f *fakeAPI) rollOutSTS(name string) {
	s := f.objs["StatefulSet/"+name]
	n := s["spec"].(map[string]any)["replicas"]
	s["status"] = map[string]any{"observedGeneration": 0, "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n,
		"currentRevision": "r1", "updateRevision": "r1"}
}

// The named form converges: the accessory's StatefulSet first, web's
// Deployment (web depends_on db) once db has rolled out
// (TestDependentWaitsForItsAccessory), the worker's at once, the route
// once the web service's Deployment (not a Deployment named like its
// Service) has rolled out; then nothing to do and converged. A change of
// web's image applies web's Deployment alone: the accessory and the
// worker are not touched. A service taken out of the manifest is deleted.
func TestNamedFormConverges(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	m := namedManifest(t, "web:1", "", true)
	_, _, p := planNamed(t, f, m, stack.Options{})
	want := "apply StatefulSet/shop-db,apply Service/db,apply Service/web,apply Deployment/shop-worker"
	if got := strings.Join(kinds(p), ","); got != want {
		t.Fatalf("first plan = %s, want %s", got, want)
	}
	for _, op := range p.Ops {
		if op.Ref.Resource.Kind == "StatefulSet" && !op.Gated {
			t.Errorf("%s not gated: it starts a pod", op)
		}
	}
	if err := Apply(ctx, f, p, nil); err != nil {
		t.Fatal(err)
	}
	f.rollOut("shop-worker")
	f.stsNotReady("shop-db")
	d, obs, p := planNamed(t, f, m, stack.Options{})
	if !p.Empty() {
		t.Fatalf("db not ready: plan %q, want nothing to do", p.Lines())
	}
	if done, why := Converged(d, obs, p); done || !strings.Contains(why, "shop-web") || !strings.Contains(why, "accessory db") {
		t.Fatalf("converged %v (%s) while web waits for db", done, why)
	}
	f.rollOutSTS("shop-db")
	_, _, p = planNamed(t, f, m, stack.Options{})
	if got := strings.Join(kinds(p), ","); got != "apply Deployment/shop-web" {
		t.Fatalf("db ready: plan %q, want web's Deployment", p.Lines())
	}
	if len(p.Waiting) != 1 || !strings.Contains(p.Waiting[0], "HTTPRoute shop-shop.example.com waits for Deployment shop-web") {
		t.Fatalf("waiting %q, want the route waiting for shop-web", p.Waiting)
	}
	if err := Apply(ctx, f, p, nil); err != nil {
		t.Fatal(err)
	}
	f.rollOut("shop-web")
	d, obs, p = planNamed(t, f, m, stack.Options{})
	if got := strings.Join(kinds(p), ","); got != "apply HTTPRoute/shop-shop.example.com" || p.Gated() {
		t.Fatalf("after the rollout: plan %s gated %v, want the route alone, ungated (it sends nothing to a canary)", got, p.Gated())
	}
	if done, _ := Converged(d, obs, p); done {
		t.Fatal("converged before the route was applied")
	}
	if err := Apply(ctx, f, p, nil); err != nil {
		t.Fatal(err)
	}
	d, obs, p = planNamed(t, f, m, stack.Options{})
	if !Serves(d, obs) {
		t.Fatal("the route serves web's rolled-out Deployment: Serves says no")
	}
	if done, why := Converged(d, obs, p); !done {
		t.Fatalf("not converged: %s", why)
	}
	if w := WeightsText(Weights(obs.Routes["shop-shop.example.com"])); w != "web=100" {
		t.Fatalf("route weights %s, want web=100", w)
	}

	// web's image: web's Deployment alone.
	m2 := namedManifest(t, "web:2", "", true)
	_, _, p = planNamed(t, f, m2, stack.Options{})
	if got := strings.Join(kinds(p), ","); got != "apply Deployment/shop-web" || !strings.Contains(p.Ops[0].Why, "image web:1 → web:2") {
		t.Fatalf("web's image changed: plan %q, want web's Deployment alone", p.Lines())
	}
	if err := Apply(ctx, f, p, nil); err != nil {
		t.Fatal(err)
	}
	f.rollOut("shop-web")

	// The worker taken out: its Deployment deleted, nothing else.
	m3 := namedManifest(t, "web:2", "", false)
	_, _, p = planNamed(t, f, m3, stack.Options{})
	if got := strings.Join(kinds(p), ","); got != "delete Deployment/shop-worker" {
		t.Fatalf("worker removed: plan %q", p.Lines())
	}
}

// A canary of the named form's web service: its Service and Deployment
// (PROJECT-web-canary) beside the stable ones, the route's rule split;
// raising the canary's weight is gated, and a rollback withdraws the
// route first and then deletes the canary's objects in the same plan.
func TestNamedFormCanaryAndRollback(t *testing.T) {
	f := newFake()
	m := namedManifest(t, "web:1", "    canary: {image: web:2, weight: 10}\n", false)
	convergeNamed(t, f, m)
	d, obs, p := planNamed(t, f, m, stack.Options{})
	if done, why := Converged(d, obs, p); !done {
		t.Fatalf("not converged: %s (%q)", why, p.Lines())
	}
	n := PrimaryNames(m)
	if _, w, ok := PrimaryWeights(obs, n); !ok || w["web"] != 90 || w["shop-web-canary"] != 10 {
		t.Fatalf("primary weights %v %v", w, ok)
	}
	_, _, p = planNamed(t, f, m, stack.Options{CanaryWeight: 30})
	if got := strings.Join(kinds(p), ","); got != "apply HTTPRoute/shop-shop.example.com" || !p.Gated() {
		t.Fatalf("raising the canary: %q gated %v, want the route, gated", p.Lines(), p.Gated())
	}
	_, _, p = planNamed(t, f, m, stack.Options{NoCanary: true})
	want := "apply HTTPRoute/shop-shop.example.com,delete Deployment/shop-web-canary,delete Service/shop-web-canary"
	if got := strings.Join(kinds(p), ","); got != want || p.Gated() {
		t.Fatalf("rollback: %s gated %v, want %s, ungated", got, p.Gated(), want)
	}
	// While the route cannot change (web's new image has not rolled
	// out), the canary's Service and Deployment, which the live route
	// still sends traffic to, wait for it.
	m2 := namedManifest(t, "web:3", "    canary: {image: web:2, weight: 10}\n", false)
	_, _, p = planNamed(t, f, m2, stack.Options{NoCanary: true})
	if got := strings.Join(kinds(p), ","); got != "apply Deployment/shop-web" {
		t.Fatalf("rollback with web's image changed: %q, want web's Deployment alone", p.Lines())
	}
	if w := strings.Join(p.Waiting, "\n"); !strings.Contains(w, "delete Deployment shop-web-canary once HTTPRoute") || !strings.Contains(w, "delete Service shop-web-canary once HTTPRoute") {
		t.Fatalf("waiting %q, want the canary's deletes waiting for the route", p.Waiting)
	}
}

func TestStatefulSetRolledOut(t *testing.T) {
	one := int32(1)
	base := appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: &one}}
	base.Generation = 2
	for _, c := range []struct {
		name   string
		status appsv1.StatefulSetStatus
		want   string
	}{
		{"rolled out", appsv1.StatefulSetStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, CurrentRevision: "b", UpdateRevision: "b"}, ""},
		{"not observed", appsv1.StatefulSetStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, CurrentRevision: "a", UpdateRevision: "a"}, "generation 2 not yet observed"},
		{"old pod left", appsv1.StatefulSetStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 0, ReadyReplicas: 1, CurrentRevision: "a", UpdateRevision: "b"}, "0 of 1 replicas updated"},
		{"not ready", appsv1.StatefulSetStatus{ObservedGeneration: 2, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 0, CurrentRevision: "b", UpdateRevision: "b"}, "0 of 1 replicas ready"},
	} {
		s := base
		s.Status = c.status
		done, why := StatefulSetRolledOut(s)
		if done != (c.want == "") || !strings.Contains(why, c.want) {
			t.Errorf("%s: %v %q, want %q", c.name, done, why, c.want)
		}
	}
}

// A promotion of the named form's web canary walks as the single
// service's (the canary at the stable's size, every request of web on it,
// then web's Deployment rolls, the route returns, the canary goes),
// while the accessory and the other objects stay as they are: the bridge
// replaces the routes and keeps web's stable Deployment, nothing else.
func TestNamedFormPromotionBridge(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	m := namedManifest(t, "web:1", "    replicas: 2\n    canary: {image: web:2, weight: 10}\n", true)
	convergeNamed(t, f, m)
	promo := stack.Options{StableImage: "web:2", NoCanary: true}
	step := func(want string) (Desired, Plan) {
		t.Helper()
		d, _, p := planNamed(t, f, m, promo)
		if got := strings.Join(kinds(p), ","); got != want {
			t.Fatalf("plan = %s (%q), want %s", got, p.Lines(), want)
		}
		if err := Apply(ctx, f, p, nil); err != nil {
			t.Fatal(err)
		}
		return d, p
	}
	const route = "shop-shop.example.com"
	_, p := step("apply Deployment/shop-web-canary")
	if !strings.Contains(p.Ops[0].Why, "replicas 1 → 2") || len(p.Waiting) != 1 {
		t.Fatalf("first stage %q waiting %q, want the canary scaled to web's 2, the route waiting", p.Lines(), p.Waiting)
	}
	f.rollOut("shop-web-canary")
	d, _ := step("apply HTTPRoute/" + route)
	obs, _ := ListObserveExtras(ctx, f, "ns", "shop", namedExtras)
	if w := WeightsText(Weights(obs.Routes[route])); w != "shop-web-canary=100 web=0" || ImageOf(obs.Deployments["shop-web"]) != "web:1" {
		t.Fatalf("after the switch: weights %s, web at %s; want every request on the canary, web untouched", w, ImageOf(obs.Deployments["shop-web"]))
	}
	if !Serves(d, obs) {
		t.Fatal("the route serves the promoted image: that is the commit")
	}
	step("apply Deployment/shop-web")
	f.rollOut("shop-web")
	step("apply HTTPRoute/" + route + ",delete Deployment/shop-web-canary,delete Service/shop-web-canary")
	d, obs, p = planNamed(t, f, m, promo)
	if done, why := Converged(d, obs, p); !done || WeightsText(Weights(obs.Routes[route])) != "web=100" {
		t.Fatalf("not converged: %s", why)
	}
	if _, ok := obs.StatefulSets["shop-db"]; !ok {
		t.Fatal("the promotion of web deleted db's StatefulSet")
	}
}
