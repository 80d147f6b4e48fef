package kubetarget

import (
	"context"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// withWebCanary is twoCanaries with web's canary image replaced.
func withWebCanary(t *testing.T, image string) *manifest.Manifest {
	t.Helper()
	m := twoCanaries(t)
	m.Named["web"].Canary.Image = image
	return m
}

// A canary image changed mid-promotion (web's bridge committed: every
// request of web on its canary, web's stable not rolled yet; the daemon
// died; the operator then edits services.web.canary.image): the canary
// Deployment does not roll to the new, unjudged image while the route
// still sends it all of web's traffic. Web's stable rolls to the promoted
// image first (no request returns to the image the promotion replaced),
// the route lowers the canary to its weight, and only then does the
// canary roll to its new image.
func TestCanaryImageChangedMidPromotionWaitsForTheRoute(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	m := twoCanaries(t)
	convergeWith(t, f, m, stack.Options{})
	const webRoute = "shop-web.example.com"
	promo := stack.Options{ServiceImages: map[string]string{"web": "web:2"}}
	for range 2 { // web's canary at web's size, then the route on it: the commit
		_, _, p := planNamed(t, f, m, promo)
		if err := Apply(ctx, f, p, nil); err != nil {
			t.Fatal(err)
		}
		f.rollOut("shop-web-canary")
	}
	obs, _ := ListObserveExtras(ctx, f, "ns", "shop", namedExtras)
	if w := WeightsText(Weights(obs.Routes[webRoute])); w != "shop-web-canary=100 web=0" || ImageOf(obs.Deployments["shop-web"]) != "web:1" {
		t.Fatalf("bridge not committed: route %s, web at %s", w, ImageOf(obs.Deployments["shop-web"]))
	}

	edited := withWebCanary(t, "web:3")
	routeFirst := false
	for i := range 6 {
		_, obs, p := planNamed(t, f, edited, promo)
		if p.Empty() && len(p.Waiting) == 0 {
			break
		}
		live := Weights(obs.Routes[webRoute])
		for _, op := range p.Ops {
			switch op.Ref.Resource.Kind + "/" + op.Ref.Name {
			case "Deployment/shop-web-canary":
				if live["shop-web-canary"] > 10 {
					t.Fatalf("plan %d %q rolls web's canary to web:3 while the route sends it %d%%", i, p.Lines(), live["shop-web-canary"])
				}
			case "HTTPRoute/" + webRoute:
				if ImageOf(obs.Deployments["shop-web"]) != "web:2" {
					t.Fatalf("plan %d %q returns web's requests to its stable at %s, not the promoted web:2", i, p.Lines(), ImageOf(obs.Deployments["shop-web"]))
				}
				routeFirst = true
			}
		}
		if i == 0 && !strings.Contains(strings.Join(p.Waiting, "\n"), "Deployment shop-web-canary") {
			t.Fatalf("first plan %q: web's canary should wait for the route", p.Lines())
		}
		if err := Apply(ctx, f, p, nil); err != nil {
			t.Fatal(err)
		}
		f.rollOut("shop-web")
		f.rollOut("shop-web-canary")
	}
	obs, _ = ListObserveExtras(ctx, f, "ns", "shop", namedExtras)
	if w := WeightsText(Weights(obs.Routes[webRoute])); !routeFirst || w != "shop-web-canary=10 web=90" ||
		ImageOf(obs.Deployments["shop-web"]) != "web:2" || ImageOf(obs.Deployments["shop-web-canary"]) != "web:3" {
		t.Fatalf("after the edit: route %s, web %s, canary %s; want web:2 at 90, web:3 at 10",
			w, ImageOf(obs.Deployments["shop-web"]), ImageOf(obs.Deployments["shop-web-canary"]))
	}
}

// Without a stable to roll, the lowered route is the plan's first
// operation: a canary's weight lowered (20 → 10) in the same edit as its
// image waits for the route.
func TestCanaryLoweredWithANewImageRoutesFirst(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	m := twoCanaries(t)
	at20 := stack.Options{Canaries: map[string]stack.CanaryOptions{"web": {Weight: 20}}}
	convergeWith(t, f, m, at20)
	edited := withWebCanary(t, "web:3")
	_, _, p := planNamed(t, f, edited, stack.Options{})
	if len(p.Ops) == 0 || p.Ops[0].Ref.Name != "shop-web.example.com" || p.Ops[0].Ref.Resource.Kind != "HTTPRoute" {
		t.Fatalf("plan %q, want the route lowered first", p.Lines())
	}
	for _, op := range p.Ops {
		if op.Ref.Name == "shop-web-canary" && op.Ref.Resource.Kind == "Deployment" {
			t.Fatalf("plan %q rolls the canary in the same plan as the route lowers it", p.Lines())
		}
	}
	if err := Apply(ctx, f, p, nil); err != nil {
		t.Fatal(err)
	}
	_, _, p = planNamed(t, f, edited, stack.Options{})
	if got := strings.Join(kinds(p), ","); got != "apply Deployment/shop-web-canary" {
		t.Fatalf("second plan %q, want web's canary rolled now", p.Lines())
	}
}
