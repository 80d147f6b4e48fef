package k8s

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// The routes of twoCanaries: api's path prefix has no host, so its rule
// is in the project's route and in web's host's route too; web's rule is
// in its host's route alone.
const (
	apiRoute = "shop"
	webRoute = "shop-shop.example.com"
)

// twoCanaries: api, routed by path prefix (the primary: the first web
// service by name with a canary), and web, routed by host, each with a
// canary of its own, judged on promCanary's Prometheus.
func (p *promCanary) twoCanaries() string {
	return `project: shop
services:
  api:
    image: api:1
    port: 3000
    health_path: /healthz
    route: {path_prefix: /api}
    canary: {image: api:2, weight: 30, replicas: 1}
    resources: {cpus: 0.1, memory: 64m}
  web:
    image: web:1
    port: 3000
    replicas: 2
    health_path: /healthz
    route: {host: shop.example.com}
    canary: {image: web:2, weight: 10, replicas: 1}
    resources: {cpus: 0.1, memory: 64m}
nginx: {image: nginx:1, port: 8080}
network: {name: shop}
` + p.metricsYAML(true)
}

// ruleWeights are the weights of route's rule of service ("none" without
// the route, "no rule" without the rule): each service's split is on its
// own rule, whichever route holds it.
func (c *cluster) ruleWeights(ctx context.Context, t *testing.T, ns, route, service string) string {
	t.Helper()
	var r gatewayv1.HTTPRoute
	err := c.get(ctx, "/apis/gateway.networking.k8s.io/v1/namespaces/"+ns+"/httproutes/"+route, &r)
	if isAPIError(err, http.StatusNotFound) {
		return "none"
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, rule := range r.Spec.Rules {
		if rule.Name == nil || string(*rule.Name) != k8srender.ServiceRule(service) {
			continue
		}
		w := map[string]int{}
		for _, b := range rule.BackendRefs {
			n := 1
			if b.Weight != nil {
				n = int(*b.Weight)
			}
			w[string(b.Name)] += n
		}
		return kubetarget.WeightsText(w)
	}
	return "no rule"
}

// splits is every service rule's weights in both routes, for a check and
// its message.
func (c *cluster) splits(ctx context.Context, t *testing.T, ns string) map[string]string {
	t.Helper()
	return map[string]string{
		"api@" + apiRoute: c.ruleWeights(ctx, t, ns, apiRoute, "api"),
		"api@" + webRoute: c.ruleWeights(ctx, t, ns, webRoute, "api"),
		"web@" + webRoute: c.ruleWeights(ctx, t, ns, webRoute, "web"),
	}
}

// canaryObjects are a service's canary Deployment and Service (zero
// values when missing).
func (c *cluster) canaryObjects(ctx context.Context, t *testing.T, ns, service string) (appsv1.Deployment, corev1.Service) {
	t.Helper()
	name := k8srender.CanaryName("shop", service)
	d, _ := c.deployment(ctx, t, ns, name)
	var s corev1.Service
	if err := c.get(ctx, "/api/v1/namespaces/"+ns+"/services/"+name, &s); err != nil && !isAPIError(err, http.StatusNotFound) {
		t.Fatal(err)
	}
	return d, s
}

// TestTwoCanariesOnKubernetes: on the real API server, api's and web's
// canaries run at once, each on its own rule (api 70/30 in both routes
// that hold its rule, web 90/10 in its host's). Promoting web, judged on
// web's canary's figures from the real Prometheus, commits once with
// service web: web's stable Deployment runs web:2, its rule sends it
// every request and its canary is deleted, while api's canary Deployment
// and Service keep their UID and generation and api's rule stays 70/30.
// Aborting api then deletes api's canary, its rule back on its stable
// Service, its stable Deployment never changed; web is not touched.
func TestTwoCanariesOnKubernetes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	p := newPromCanary(t, "two-canaries", 0)
	c, ns := p.c, p.ns
	start := time.Now()
	k := startDaemon(t, c, ns, p.twoCanaries(), daemonOpts{})
	c.waitRolledOut(ctx, t, ns, "shop-api", 1, "api:1")
	c.waitRolledOut(ctx, t, ns, "shop-api-canary", 1, "api:2")
	c.waitRolledOut(ctx, t, ns, "shop-web", 2, "web:1")
	c.waitRolledOut(ctx, t, ns, "shop-web-canary", 1, "web:2")
	both := map[string]string{"api@" + apiRoute: "api=70 shop-api-canary=30", "api@" + webRoute: "api=70 shop-api-canary=30", "web@" + webRoute: "shop-web-canary=10 web=90"}
	eventually(ctx, t, "both canaries routed and converged", func() (bool, string) {
		sp := c.splits(ctx, t, ns)
		s := k.status(ctx)
		w := map[string]int{}
		for _, svc := range s.Services {
			w[svc.Name] = svc.CanaryWeight
		}
		return fmt.Sprint(sp) == fmt.Sprint(both) && s.Converged && w["api"] == 30 && w["web"] == 10,
			fmt.Sprintf("rules %v converged %v weights %v pending %q", sp, s.Converged, w, s.Pending)
	})
	t.Logf("two canaries from nothing to routed and converged: %.2fs", time.Since(start).Seconds())
	apiDep, apiSvc := c.canaryObjects(ctx, t, ns, "api")
	apiStable, _ := c.deployment(ctx, t, ns, "shop-api")
	webStable, _ := c.deployment(ctx, t, ns, "shop-web")

	// Prometheus scrapes the fake canary as web's canary pods, by web's
	// service label.
	hash := c.podTemplateHash(ctx, t, ns, "shop-web-canary")
	writeServiceTargets(t, p.targets, p.host, ns, hash, "web")
	waitCanaryData(ctx, t, p.promURL, ns, hash, 5*time.Second, func(v float64) bool { return v == 0 }, "Prometheus sees web's healthy canary")
	// api's rule, in both routes, is watched all through web's
	// promotion: every split seen other than 70/30.
	watchCtx, stopWatch := context.WithCancel(ctx)
	apiSplits := make(chan []string, 1)
	go func() {
		var off []string
		for watchCtx.Err() == nil {
			for _, route := range []string{apiRoute, webRoute} {
				if w := c.routeWeightsOf(watchCtx, ns, route); w != nil && (w["api"] != 70 || w["shop-api-canary"] != 30) && watchCtx.Err() == nil {
					off = append(off, fmt.Sprintf("%s: %v", route, w))
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		apiSplits <- off
	}()
	start = time.Now()
	pr := k.call(ctx, api.PathPromote, api.PromoteRequest{Service: "web"})
	if pr.Error != "" || len(pr.Denied) > 0 {
		t.Fatalf("promote web: %+v", pr)
	}
	t.Logf("promote web, from the request to converged: %.2fs", time.Since(start).Seconds())
	stopWatch()
	if off := <-apiSplits; len(off) > 0 {
		t.Fatalf("api's split moved during web's promotion: %q", off)
	}
	// Committed means observed: all of it holds when the call returns.
	if d, _ := c.deployment(ctx, t, ns, "shop-web"); d.UID != webStable.UID || d.Spec.Template.Spec.Containers[0].Image != "web:2" {
		t.Fatalf("web promoted, but its stable Deployment (UID %s, was %s) runs %s", d.UID, webStable.UID, d.Spec.Template.Spec.Containers[0].Image)
	}
	c.waitRolledOut(ctx, t, ns, "shop-web", 2, "web:2")
	afterPromote := map[string]string{"api@" + apiRoute: both["api@"+apiRoute], "api@" + webRoute: both["api@"+webRoute], "web@" + webRoute: "web=100"}
	apiKept := func(by string) {
		t.Helper()
		d, s := c.canaryObjects(ctx, t, ns, "api")
		if d.UID != apiDep.UID || d.Generation != apiDep.Generation || s.UID != apiSvc.UID || s.Generation != apiSvc.Generation {
			t.Fatalf("%s touched api's canary: Deployment UID %s → %s generation %d → %d, Service UID %s → %s generation %d → %d",
				by, apiDep.UID, d.UID, apiDep.Generation, d.Generation, apiSvc.UID, s.UID, apiSvc.Generation, s.Generation)
		}
		if st, _ := c.deployment(ctx, t, ns, "shop-api"); st.UID != apiStable.UID || st.Generation != apiStable.Generation {
			t.Fatalf("%s touched api's stable Deployment: generation %d → %d", by, apiStable.Generation, st.Generation)
		}
	}
	webPromoted := func(by string) {
		t.Helper()
		if sp := c.splits(ctx, t, ns); fmt.Sprint(sp) != fmt.Sprint(afterPromote) {
			t.Fatalf("%s: rules %v, want %v", by, sp, afterPromote)
		}
		if d, s := c.canaryObjects(ctx, t, ns, "web"); d.UID != "" || s.UID != "" {
			t.Fatalf("%s: web's canary Deployment %q or Service %q still there", by, d.UID, s.UID)
		}
	}
	webPromoted("web's promotion")
	apiKept("web's promotion")
	// Held through resyncs: journaled once, api's canary as it was.
	time.Sleep(k.resync + time.Second)
	promoted := k.events(journal.EventPromoted)
	if len(promoted) != 1 || promoted[0].Details["service"] != "web" || promoted[0].Details["image"] != "web:2" {
		t.Fatalf("promoted events %+v, want one, of web to web:2", promoted)
	}
	webPromoted("a resync after web's promotion")
	apiKept("a resync after web's promotion")
	webAfter, _ := c.deployment(ctx, t, ns, "shop-web")

	start = time.Now()
	if pr := k.call(ctx, api.PathAbort, api.AbortRequest{Service: "api", Reason: "e2e: api's canary dropped"}); pr.Error != "" || len(pr.Denied) > 0 {
		t.Fatalf("abort api: %+v", pr)
	}
	t.Logf("abort api, from the request to done: %.2fs", time.Since(start).Seconds())
	apiAborted := func(by string) {
		t.Helper()
		want := map[string]string{"api@" + apiRoute: "api=100", "api@" + webRoute: "api=100", "web@" + webRoute: "web=100"}
		if sp := c.splits(ctx, t, ns); fmt.Sprint(sp) != fmt.Sprint(want) {
			t.Fatalf("%s: rules %v, want %v", by, sp, want)
		}
		if d, s := c.canaryObjects(ctx, t, ns, "api"); d.UID != "" || s.UID != "" {
			t.Fatalf("%s: api's canary Deployment %q or Service %q still there", by, d.UID, s.UID)
		}
		if st, _ := c.deployment(ctx, t, ns, "shop-api"); st.UID != apiStable.UID || st.Generation != apiStable.Generation || st.Spec.Template.Spec.Containers[0].Image != "api:1" {
			t.Fatalf("%s changed api's stable Deployment: generation %d → %d, image %s", by, apiStable.Generation, st.Generation, st.Spec.Template.Spec.Containers[0].Image)
		}
		if d, _ := c.deployment(ctx, t, ns, "shop-web"); d.UID != webAfter.UID || d.Generation != webAfter.Generation || d.Spec.Template.Spec.Containers[0].Image != "web:2" {
			t.Fatalf("%s touched web's Deployment: generation %d → %d, image %s", by, webAfter.Generation, d.Generation, d.Spec.Template.Spec.Containers[0].Image)
		}
	}
	apiAborted("api's abort")
	time.Sleep(k.resync + time.Second)
	apiAborted("a resync after api's abort")
	if ab := k.events(journal.EventAborted); len(ab) != 1 || !strings.Contains(ab[0].Message, "api's canary dropped") {
		t.Errorf("aborted events %+v, want api's one, with its reason", ab)
	}
	if n := len(k.events(journal.EventRolledBack)); n != 0 {
		t.Errorf("%d rolled_back events for an abort", n)
	}
	if n := len(k.events(journal.EventPromoted)); n != 1 {
		t.Errorf("%d promoted events after api's abort, want web's alone", n)
	}
	if s := k.status(ctx); !s.Converged {
		t.Errorf("after api's abort: converged %v pending %q", s.Converged, s.Pending)
	}
}
