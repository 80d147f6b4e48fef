package kubetarget

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// twoCanaries: web services api and web by host, each with a canary
// (api's at 30, web's at 10), two replicas each; api is the primary (its
// canary sorts first).
func twoCanaries(t *testing.T) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(`project: shop
services:
  api:
    image: api:1
    port: 3000
    replicas: 2
    route: {host: api.example.com}
    canary: {image: api:2, weight: 30}
  web:
    image: web:1
    port: 3000
    replicas: 2
    route: {host: web.example.com}
    canary: {image: web:2, weight: 10}
nginx: {image: nginx:1, port: 8080}
network: {name: shop}
`), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := m.Primary(); p != "api" {
		t.Fatalf("primary %q, want api", p)
	}
	return m
}

// convergeWith is convergeNamed under o.
func convergeWith(t *testing.T, f *fakeAPI, m *manifest.Manifest, o stack.Options) {
	t.Helper()
	for range 4 {
		_, _, p := planNamed(t, f, m, o)
		if err := Apply(context.Background(), f, p, nil); err != nil {
			t.Fatal(err)
		}
		for key := range f.objs {
			if name, ok := strings.CutPrefix(key, "Deployment/"); ok {
				f.rollOut(name)
			}
		}
	}
}

// snapshot is the stored form of the objects named, to tell whether
// anything applied them.
func snapshot(t *testing.T, f *fakeAPI, keys ...string) string {
	t.Helper()
	var out []string
	for _, k := range keys {
		o, ok := f.objs[k]
		if !ok {
			t.Fatalf("%s missing", k)
		}
		b, _ := json.Marshal(o)
		out = append(out, string(b))
	}
	return strings.Join(out, "\n")
}

// Two web services each run a canary on Kubernetes: two canary
// Deployments and Services, each service's split in its own route. A
// promotion of web (not the primary) walks through web's own bridge
// (canary at web's size, every request of web on it: the commit, then
// web's Deployment rolls, the route returns, the canary goes) while api's
// canary, its Service and its route are never applied.
func TestTwoCanariesEachWithItsOwnSplitAndBridge(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	m := twoCanaries(t)
	convergeWith(t, f, m, stack.Options{})
	const apiRoute, webRoute = "shop-api.example.com", "shop-web.example.com"
	obs, _ := ListObserveExtras(ctx, f, "ns", "shop", namedExtras)
	if w := WeightsText(Weights(obs.Routes[apiRoute])); w != "api=70 shop-api-canary=30" {
		t.Fatalf("api's route %s, want api's canary at 30", w)
	}
	if w := WeightsText(Weights(obs.Routes[webRoute])); w != "shop-web-canary=10 web=90" {
		t.Fatalf("web's route %s, want web's canary at 10", w)
	}
	for _, dep := range []string{"shop-api-canary", "shop-web-canary"} {
		if _, ok := obs.Deployments[dep]; !ok {
			t.Fatalf("Deployment %s missing", dep)
		}
	}
	apiObjs := []string{"Deployment/shop-api", "Deployment/shop-api-canary", "Service/shop-api-canary", "Service/api", "HTTPRoute/" + apiRoute}
	before := snapshot(t, f, apiObjs...)

	// As the controller records web's promotion: web's image override is
	// its canary's image.
	promo := stack.Options{ServiceImages: map[string]string{"web": "web:2"}}
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
	_, p := step("apply Deployment/shop-web-canary")
	if !strings.Contains(p.Ops[0].Why, "replicas 1 → 2") {
		t.Fatalf("first stage %q, want web's canary scaled to web's 2", p.Lines())
	}
	f.rollOut("shop-web-canary")
	d, _ := step("apply HTTPRoute/" + webRoute)
	obs, _ = ListObserveExtras(ctx, f, "ns", "shop", namedExtras)
	if w := WeightsText(Weights(obs.Routes[webRoute])); w != "shop-web-canary=100 web=0" || ImageOf(obs.Deployments["shop-web"]) != "web:1" {
		t.Fatalf("after the switch: weights %s, web at %s; want every request of web on its canary, web untouched", w, ImageOf(obs.Deployments["shop-web"]))
	}
	if !Serves(d, obs) {
		t.Fatal("web's route serves the promoted image: that is the commit")
	}
	step("apply Deployment/shop-web")
	f.rollOut("shop-web")
	step("apply HTTPRoute/" + webRoute + ",delete Deployment/shop-web-canary,delete Service/shop-web-canary")
	d, obs, p = planNamed(t, f, m, promo)
	if done, why := Converged(d, obs, p); !done || WeightsText(Weights(obs.Routes[webRoute])) != "web=100" || ImageOf(obs.Deployments["shop-web"]) != "web:2" {
		t.Fatalf("not converged: %s; web's route %s", why, WeightsText(Weights(obs.Routes[webRoute])))
	}
	if after := snapshot(t, f, apiObjs...); after != before {
		t.Fatalf("web's promotion applied api's objects:\nbefore %s\nafter  %s", before, after)
	}
}

// The commit predicate is each service's split: web's step to 40 is not
// served while web's rule still says 10, and moving it leaves api's.
func TestServesEachServicesSplit(t *testing.T) {
	f := newFake()
	m := twoCanaries(t)
	convergeWith(t, f, m, stack.Options{})
	// Web's canary raised to 40 by a step: not served until web's rule
	// says 40, whatever api's says.
	raised := stack.Options{Canaries: map[string]stack.CanaryOptions{"web": {Weight: 40}}}
	d, obs, _ := planNamed(t, f, m, raised)
	if Serves(d, obs) {
		t.Fatal("web's route still at 10 serves web's canary at 40")
	}
	convergeWith(t, f, m, raised)
	d, obs, _ = planNamed(t, f, m, raised)
	if !Serves(d, obs) {
		t.Fatal("both splits as desired, not served")
	}
	if WeightsText(Weights(obs.Routes["shop-web.example.com"])) != "shop-web-canary=40 web=60" {
		t.Fatalf("web's route %s", WeightsText(Weights(obs.Routes["shop-web.example.com"])))
	}
	if w := WeightsText(Weights(obs.Routes["shop-api.example.com"])); w != "api=70 shop-api-canary=30" {
		t.Fatalf("web's step moved api's split: %s", w)
	}
}
