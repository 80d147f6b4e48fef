package controller

import (
	"context"
	"maps"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// On Kubernetes, every web service runs a canary of its own, through the
// controller's shared code (canaries.go), as on Docker: the manifest is
// twoCanaries' (api by path prefix, the primary; web by host), so api's
// rule is in both routes ("demo" and web's host's) and web's in its
// host's only.
const (
	kubeAPIRoute = "demo"
	kubeWebRoute = "demo-web.test"
)

// kubeTwoCanaries is twoCanaries with a fake Prometheus named.
func kubeTwoCanaries(t *testing.T, steps bool) (string, *fakeProm) {
	t.Helper()
	p := &fakeProm{}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return strings.Replace(twoCanaries(steps), "metrics: {", "metrics: {prometheus: '"+srv.URL+"', ", 1), p
}

// applies is how many times the fake API server applied kindName.
func (f *fakeKube) applies(kindName string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen[kindName]
}

// appliesOf counts the applies of each object named.
func (f *fakeKube) appliesOf(kindNames ...string) map[string]int64 {
	out := map[string]int64{}
	for _, k := range kindNames {
		out[k] = f.applies(k)
	}
	return out
}

func kubeTwoCanariesHarness(t *testing.T, steps bool) (*harness, *fakeKube, *fakeProm) {
	t.Helper()
	m, prom := kubeTwoCanaries(t, steps)
	h, fk := kubeHarness(t, m)
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	if w := fk.weights(kubeWebRoute); w["demo-web-canary"] != 10 || w["demo-api-canary"] != 30 || w["web"] != 90 || w["api"] != 70 {
		t.Fatalf("web's host's route %v, want web's canary at 10 and api's at 30", w)
	}
	if w := fk.weights(kubeAPIRoute); w["demo-api-canary"] != 30 || w["demo-web-canary"] != 0 {
		t.Fatalf("route %v, want api's canary at 30", w)
	}
	if !fk.has("Deployment/demo-api-canary") || !fk.has("Deployment/demo-web-canary") || !fk.has("Service/demo-web-canary") {
		t.Fatal("two canary Deployments and Services expected")
	}
	// Status shows each service's own split, as on Docker.
	if w := h.serviceWeights(); w["api"] != 30 || w["web"] != 10 {
		t.Fatalf("status weights %v, want api 30 web 10", w)
	}
	return h, fk, prom
}

var kubeAPIObjects = []string{"Deployment/demo-api", "Deployment/demo-api-canary", "Service/api", "Service/demo-api-canary"}
var kubeWebObjects = []string{"Deployment/demo-web", "Deployment/demo-web-canary", "Service/web", "Service/demo-web-canary"}

// Each service's canary is promoted or dropped on its own: the other's
// Deployments and Services are never applied again, and its split stays.
func TestKubeTwoCanariesOneAtATime(t *testing.T) {
	tests := []struct {
		name   string
		act    func(h *harness) error
		other  []string // the objects of the service left alone
		route  string   // that service's route, and its canary's weight
		weight map[string]int
		// after: the acted-on service's stable image and canary.
		dep, image, canary string
		event              string
	}{
		{"promote web", func(h *harness) error {
			return h.d.Promote(context.Background(), "alice", api.PromoteRequest{Service: "web"}, func(string) {})
		}, kubeAPIObjects, kubeAPIRoute, map[string]int{"api": 70, "demo-api-canary": 30}, "demo-web", "app:3", "Deployment/demo-web-canary", journal.EventPromoted},
		{"abort web", func(h *harness) error {
			return h.d.Abort(context.Background(), "alice", api.AbortRequest{Service: "web", Reason: "slow"}, func(string) {})
		}, kubeAPIObjects, kubeAPIRoute, map[string]int{"api": 70, "demo-api-canary": 30}, "demo-web", "app:1", "Deployment/demo-web-canary", journal.EventAborted},
		{"promote api", func(h *harness) error {
			return h.d.Promote(context.Background(), "alice", api.PromoteRequest{Service: "api"}, func(string) {})
		}, kubeWebObjects, kubeWebRoute, map[string]int{"web": 90, "demo-web-canary": 10, "api": 100}, "demo-api", "app:2", "Deployment/demo-api-canary", journal.EventPromoted},
		{"rollback api", func(h *harness) error {
			return h.d.Rollback(context.Background(), "alice", api.RollbackRequest{Service: "api"}, func(string) {})
		}, kubeWebObjects, kubeWebRoute, map[string]int{"web": 90, "demo-web-canary": 10, "api": 100}, "demo-api", "app:1", "Deployment/demo-api-canary", journal.EventRolledBack},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, fk, _ := kubeTwoCanariesHarness(t, false)
			before := fk.appliesOf(tc.other...)
			if err := tc.act(h); err != nil {
				t.Fatalf("%s: %v; events %v", tc.name, err, h.events())
			}
			if err := h.reconcile(); err != nil {
				t.Fatal(err)
			}
			if got := fk.image(tc.dep); got != tc.image || fk.has(tc.canary) {
				t.Fatalf("%s: %s at %s (want %s), canary left %v", tc.name, tc.dep, got, tc.image, fk.has(tc.canary))
			}
			if after := fk.appliesOf(tc.other...); !maps.Equal(before, after) {
				t.Fatalf("%s applied the other service's objects: before %v after %v", tc.name, before, after)
			}
			w := fk.weights(tc.route)
			for svc, want := range tc.weight {
				if w[svc] != want {
					t.Fatalf("%s: route %s %v, want %v", tc.name, tc.route, w, tc.weight)
				}
			}
			if n := count(h.events(), tc.event); n != 1 {
				t.Fatalf("%s: %s journaled %d times; events %v", tc.name, tc.event, n, h.events())
			}
		})
	}
}

// A raise of either canary's weight is gated against that canary's own
// weight in force: raising web's (10 → 50) is denied on a cluster the
// policy denies changes on, though api's is lowered in the same edit;
// lowering both is not gated.
func TestKubeEachCanaryWeightRaiseIsGated(t *testing.T) {
	h, fk, _ := kubeTwoCanariesHarness(t, false)
	fk.nodeDown = true
	edit := func(api, web string) string {
		m := twoCanaries(false)
		m = strings.Replace(m, "{image: app:2, weight: 30}", "{image: app:2, weight: "+api+"}", 1)
		return strings.Replace(m, "{image: app:3, weight: 10}", "{image: app:3, weight: "+web+"}", 1)
	}
	h.write(edit("20", "50"))
	_ = h.deploy()
	if w := fk.weights(kubeWebRoute); w["demo-web-canary"] != 10 {
		t.Fatalf("route %v: web's raise went through a denying policy", w)
	}
	h.write(edit("20", "5"))
	if err := h.deploy(); err != nil {
		t.Fatalf("lowering both: %v", err)
	}
	if w := fk.weights(kubeWebRoute); w["demo-web-canary"] != 5 || w["demo-api-canary"] != 20 {
		t.Fatalf("route %v: want web 5, api 20", w)
	}
}

// A daemon that died after web's route switched to its promoted canary,
// before web's canary was deleted (web is not the primary), settles the
// promotion from the route at restart: promoted once, web's decision in
// its own entry, api's canary as it was.
func TestKubeInterruptedServicePromotionSettlesFromTheRoute(t *testing.T) {
	h, fk, _ := kubeTwoCanariesHarness(t, false)
	fk.failDelete["Deployment/demo-web-canary"] = errBoom
	if err := applyWebPromotionWrittenAhead(t, h); err == nil {
		t.Fatal("apply: want web's canary's deletion to fail")
	}
	if w := fk.weights(kubeWebRoute); w["web"] != 100 || fk.image("demo-web") != "app:3" {
		t.Fatalf("route %v web %s: the crash should leave web's route on its promoted stable", w, fk.image("demo-web"))
	}
	if err := h.d.resolvePending(context.Background(), h.d.readManifest()); err != nil {
		t.Fatal(err)
	}
	ev := h.events()
	if count(ev, journal.EventPromoted) != 1 || count(ev, journal.EventTransitionAborted) != 0 {
		t.Fatalf("events %v: want the interrupted promotion committed once", ev)
	}
	if st := h.state(); st.ServicePromoted["web"] == nil || st.Promoted != nil {
		t.Fatalf("state: primary %+v others %+v, want web's promotion in its own entry", st.Promoted, st.ServicePromoted)
	}
	delete(fk.failDelete, "Deployment/demo-web-canary")
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if fk.has("Deployment/demo-web-canary") || fk.weights(kubeWebRoute)["demo-api-canary"] != 30 || !fk.has("Deployment/demo-api-canary") {
		t.Fatalf("after the cleanup: web's canary left %v, route %v", fk.has("Deployment/demo-web-canary"), fk.weights(kubeWebRoute))
	}
}

// applyWebPromotionWrittenAhead writes web's promotion to app:3 ahead, as
// a daemon does before it applies, and applies it as that daemon would
// have (the caller's fake fails one of its calls: the daemon died there).
func applyWebPromotionWrittenAhead(t *testing.T, h *harness) error {
	t.Helper()
	h.d.mu.Lock()
	h.d.state.Pending = &Transition{ID: "t1", Kind: kindPromote, Started: time.Now().UTC(), Service: "web",
		Promoted: &Promotion{Service: "web", ManifestStable: "app:1", Image: "app:3", At: time.Now().UTC()}}
	next := h.d.state.with(h.d.state.Pending)
	h.d.mu.Unlock()
	ch, err := h.d.target.Change(context.Background(), h.d.readManifest(), next)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.d.target.Apply(context.Background(), ch, targets.Hooks{Gate: func(ctx context.Context) reconcilerDecision { return allow() }, Wait: true})
	return err
}

// Each canary is judged on its own service's figures from Prometheus:
// web's canary failing half its requests is aborted by its own analysis,
// while api's, healthy, walks to its next step.
func TestKubeTwoCanariesJudgedOnTheirOwn(t *testing.T) {
	h, fk, prom := kubeTwoCanariesHarness(t, true)
	t0 := time.Now()
	h.analyze(t0)
	if api, web := h.rolloutOf(""), h.rolloutOf("web"); api == nil || web == nil || api.StepStarted.IsZero() || web.StepStarted.IsZero() {
		t.Fatalf("both first steps should start: api %+v web %+v; events %v", api, web, h.events())
	}
	prom.setService("web", 0.5)
	h.analyze(t0.Add(time.Second))
	h.analyze(t0.Add(2 * time.Second)) // web: 2/2 failed, aborted; api: pause over, next step
	if fk.has("Deployment/demo-web-canary") || fk.weights(kubeWebRoute)["web"] != 100 {
		t.Fatalf("web's failing canary not aborted: route %v; events %v", fk.weights(kubeWebRoute), h.events())
	}
	if w := fk.weights(kubeAPIRoute)["demo-api-canary"]; w != 60 {
		t.Fatalf("api's canary at %d, want its second step (60); events %v", w, h.events())
	}
	if n := count(h.events(), journal.EventAborted); n != 1 {
		t.Fatalf("%d aborts, want web's only; events %v", n, h.events())
	}
	if !prom.askedFor("web") {
		t.Fatal("no query selected web's pods by their service label")
	}
}

// A daemon that died after web's promotion was written ahead but before
// web's route switched (its bridge's route apply failed: web's canary
// at web's size, no request moved) settles it as not taken effect: no
// promotion, transition_aborted once, web's stable never rolled, and the
// next reconcile puts web's canary back at its weight and size; api's
// canary is never applied.
func TestKubeServicePromotionInterruptedBeforeTheCommit(t *testing.T) {
	h, fk, _ := kubeTwoCanariesHarness(t, false)
	apiBefore := fk.appliesOf(kubeAPIObjects...)
	fk.failApply["HTTPRoute/"+kubeWebRoute] = errBoom
	if err := applyWebPromotionWrittenAhead(t, h); err == nil {
		t.Fatal("apply: want web's route switch to fail")
	}
	if fk.image("demo-web") != "app:1" || fk.weights(kubeWebRoute)["demo-web-canary"] != 10 {
		t.Fatalf("web %s, route %v: before the commit web's stable must not roll nor its route move", fk.image("demo-web"), fk.weights(kubeWebRoute))
	}
	delete(fk.failApply, "HTTPRoute/"+kubeWebRoute)
	if err := h.d.resolvePending(context.Background(), h.d.readManifest()); err != nil {
		t.Fatal(err)
	}
	ev := h.events()
	if count(ev, journal.EventPromoted) != 0 || count(ev, journal.EventTransitionAborted) != 1 {
		t.Fatalf("events %v: want the interrupted promotion aborted once, never promoted", ev)
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if w := fk.weights(kubeWebRoute); fk.image("demo-web") != "app:1" || w["demo-web-canary"] != 10 || fk.replicas("demo-web-canary") != 1 {
		t.Fatalf("after the restore: web %s, canary replicas %d, route %v; want web's canary back at 10", fk.image("demo-web"), fk.replicas("demo-web-canary"), w)
	}
	if after := fk.appliesOf(kubeAPIObjects...); !maps.Equal(apiBefore, after) {
		t.Fatalf("web's interrupted promotion applied api's objects: before %v after %v", apiBefore, after)
	}
}
