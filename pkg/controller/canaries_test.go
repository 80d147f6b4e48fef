package controller

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/analysis"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// twoCanaries: two web services on one nginx, api routed by path prefix
// (the primary: the first canaried one by name) and web by host name,
// each with a stepped canary of its own at its own weights: api 30 → 60,
// web 10 → 20. With steps false, plain canaries at 30 and 10.
func twoCanaries(steps bool) string {
	canary := func(image string, w1, w2 int) string {
		if !steps {
			return "\n    canary: {image: " + image + ", weight: " + itoa(w1) + "}"
		}
		return `
    canary:
      image: ` + image + `
      steps: [{weight: ` + itoa(w1) + `, pause: 2s}, {weight: ` + itoa(w2) + `, pause: 2s}]
      analysis: {interval: 1s, failure_limit: 2, auto_promote: true}`
	}
	return `project: demo
services:
  api:
    image: app:1
    port: 3000
    route: {path_prefix: /api}` + canary("app:2", 30, 60) + `
  web:
    image: app:1
    port: 3000
    route: {host: web.test}` + canary("app:3", 10, 20) + `
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
metrics: {scrape_interval: 1s, window: 10s}
policy: {min_requests: 10}
`
}

func itoa(n int) string { return strconv.Itoa(n) }

// serviceWeights are the canary weights nginx serves, by service.
func (h *harness) serviceWeights() map[string]int {
	out := map[string]int{}
	for _, s := range h.status().Services {
		out[s.Name] = s.CanaryWeight
	}
	return out
}

// rolloutOf is a copy of the rollout of the canary of key ("" the primary's).
func (h *harness) rolloutOf(key string) *analysis.Rollout {
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	r := h.d.state.rolloutOf(key)
	if r == nil {
		return nil
	}
	c := *r
	return &c
}

// Two services' canaries walk their steps independently, each judged on
// its own figures: web's fails its checks and is aborted on its own while
// api's passes, steps on and is promoted; each change journaled once and
// naming its service; the other service's containers untouched.
func TestTwoCanariesJudgedOnTheirOwn(t *testing.T) {
	h := newHarness(t, twoCanaries(true))
	h.mustConverge()
	t0 := time.Now()
	h.analyze(t0)
	api, web := h.rolloutOf(""), h.rolloutOf("web")
	if api == nil || web == nil || api.StepStarted.IsZero() || web.StepStarted.IsZero() {
		t.Fatalf("both first steps should start: api %+v web %+v", api, web)
	}
	if w := h.serviceWeights(); w["api"] != 30 || w["web"] != 10 {
		t.Fatalf("weights %v, want api 30 web 10", w)
	}
	apiIDs := h.serviceIDs("api")

	// web's canary errs; api's does not.
	h.app.set(func(a *appMetrics) { a.svcErrRate["web/"+stack.TrackCanary] = 0.2 })
	h.scrape(3)
	h.analyze(t0.Add(time.Second))
	if r := h.rolloutOf("web"); r.Failures != 1 || r.Last == nil || r.Last.Outcome != analysis.Fail {
		t.Fatalf("web after a bad check: %+v", r)
	}
	if r := h.rolloutOf(""); r.Failures != 0 || r.Last == nil || r.Last.Outcome != analysis.Pass {
		t.Fatalf("api judged on web's figures: %+v", r.Last)
	}
	h.scrape(1)
	h.analyze(t0.Add(2 * time.Second)) // web: 2/2 failed, aborted; api: pause over, next step
	if w := h.serviceWeights(); w["api"] != 60 || w["web"] != 0 {
		t.Fatalf("weights %v, want api 60 (its second step), web 0 (aborted); events %v", w, h.events())
	}
	if got := h.serviceImages("web"); got != "app:1×1" {
		t.Errorf("web runs %s after its abort, want its stable only", got)
	}
	st := h.state()
	if rb := st.ServiceRolledBack["web"]; rb == nil || !rb.Aborted || rb.CanaryImage != "app:3" {
		t.Fatalf("web's abort not recorded: %+v", st.ServiceRolledBack)
	}
	if st.RolledBack != nil {
		t.Fatalf("web's abort recorded as the primary's: %+v", st.RolledBack)
	}
	var aborted []journal.Record
	for _, r := range h.records(journal.TypeEvent) {
		if r.Event == journal.EventAborted {
			aborted = append(aborted, r)
		}
	}
	if len(aborted) != 1 || aborted[0].Details["service"] != "web" || aborted[0].Details["figures"] == nil {
		t.Fatalf("aborted records %+v, want one naming web with its figures", aborted)
	}
	if !slices.Equal(h.serviceIDs("api"), apiIDs) {
		t.Errorf("web's abort replaced api's containers")
	}
	// Status shows each service's own rollout beside its weight.
	phases := map[string]string{}
	for _, s := range h.status().Services {
		if r := s.Rollout; r != nil {
			phases[s.Name] = fmt.Sprintf("%s %d/%d %d", r.Phase, r.Step, r.Steps, s.CanaryWeight)
		}
	}
	if want := map[string]string{"api": "progressing 2/2 60", "web": "aborted 1/2 0"}; !maps.Equal(phases, want) {
		t.Errorf("services' rollouts in status %v, want %v", phases, want)
	}

	// api walks on to its promotion; web's canary stays dropped.
	h.scrape(3)
	h.analyze(h.rolloutOf("").StepStarted.Add(time.Second))
	h.scrape(1)
	h.analyze(h.rolloutOf("").StepStarted.Add(2 * time.Second))
	if got, want := h.serviceImages("api"), "app:2×1"; got != want {
		t.Fatalf("api runs %s after its last step, want %s promoted; events %v", got, want, h.events())
	}
	h.mustConverge()
	if got := h.serviceImages("web"); got != "app:1×1" {
		t.Errorf("web runs %s, want its stable only (its canary stays aborted)", got)
	}
	ev := h.events()
	for name, n := range map[string]int{journal.EventPromoted: 1, journal.EventAborted: 1, journal.EventCanaryStep: 3} {
		if got := count(ev, name); got != n {
			t.Errorf("%s journaled %d times, want %d: %v", name, got, n, ev)
		}
	}
	if st := h.state(); st.Promoted == nil || st.Promoted.Image != "app:2" || st.ServicePromoted["web"] != nil {
		t.Errorf("state after api's promotion: primary %+v, others %+v", st.Promoted, st.ServicePromoted)
	}
}

// Promoting a service's canary other than the primary's (web) is the
// same write-ahead transaction: a daemon that dies before nginx serves it
// drops it (transition_aborted, web's canary back), one that dies after
// commits it, journaled once; api's canary is untouched either way.
func TestServiceCanaryPromotionInterrupted(t *testing.T) {
	tests := []struct {
		name              string
		op                reconciler.OpKind
		promoted, aborted int
		web               string
	}{
		{name: "before the commit", op: reconciler.OpReloadNginx, promoted: 0, aborted: 1, web: "app:1×1 app:3×1"},
		{name: "after the commit", op: reconciler.OpRemoveApp, promoted: 1, aborted: 0, web: "app:3×1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, twoCanaries(false))
			h.mustConverge()
			if w := h.serviceWeights(); w["api"] != 30 || w["web"] != 10 {
				t.Fatalf("weights %v, want api 30 web 10", w)
			}
			h.scrape(3)
			apiIDs := h.serviceIDs("api")
			before := len(h.events())
			thaw := h.freezeAt("before", tc.op, func() error {
				return h.d.promoteRequest(context.Background(), "alice", "web", false, func(string) {})
			})
			if st := h.state(); tc.promoted == 0 && (st.Pending == nil || st.Pending.Kind != kindPromote || st.Pending.Service != "web") {
				t.Fatalf("no write-ahead naming web before the commit: %+v", st.Pending)
			}
			h.d.jr.Close()
			h.d = h.newDaemon()
			h.mustConverge()
			recs := h.records(journal.TypeEvent)[before:]
			if n := countRecs(recs, journal.EventPromoted); n != tc.promoted {
				t.Errorf("promoted journaled %d times, want %d: %v", n, tc.promoted, names(recs))
			}
			if n := countRecs(recs, journal.EventTransitionAborted); n != tc.aborted {
				t.Errorf("transition_aborted journaled %d times, want %d: %v", n, tc.aborted, names(recs))
			}
			if got := h.serviceImages("web"); got != tc.web {
				t.Errorf("web runs %s, want %s", got, tc.web)
			}
			if !slices.Equal(h.serviceIDs("api"), apiIDs) {
				t.Errorf("web's promotion replaced api's containers")
			}
			st := h.state()
			if st.Pending != nil || st.Promoted != nil {
				t.Errorf("pending %+v, primary promoted %+v", st.Pending, st.Promoted)
			}
			if p := st.ServicePromoted["web"]; (p != nil) != (tc.promoted == 1) || (p != nil && p.Image != "app:3") {
				t.Errorf("web's promotion recorded %+v", st.ServicePromoted)
			}
			if w := h.serviceWeights(); w["api"] != 30 {
				t.Errorf("api's canary weight %d after web's promotion, want 30", w["api"])
			}
			_ = thaw()
		})
	}
}

// An operator drops one service's canary by name (swiftctl rollback web);
// the primary's stays. A service without a canary is refused by name.
func TestServiceCanaryRollbackByName(t *testing.T) {
	h := newHarness(t, twoCanaries(false))
	h.mustConverge()
	if err := h.d.Rollback(context.Background(), "alice", api.RollbackRequest{Service: "web"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	if w := h.serviceWeights(); w["api"] != 30 || w["web"] != 0 {
		t.Fatalf("weights %v after web's rollback, want api 30 web 0", w)
	}
	if st := h.state(); st.ServiceRolledBack["web"] == nil || st.RolledBack != nil {
		t.Fatalf("state: primary %+v others %+v", st.RolledBack, st.ServiceRolledBack)
	}
	if n := count(h.events(), journal.EventRolledBack); n != 1 {
		t.Errorf("rolled_back journaled %d times", n)
	}
	if err := h.d.Promote(context.Background(), "alice", api.PromoteRequest{Service: "nope"}, func(string) {}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("promote of an unknown service: %v", err)
	}
	if err := h.d.SetPaused("alice", "web", true); err == nil {
		t.Errorf("pause of web's plain canary (no steps) accepted")
	}
	// The primary's canary is aborted by name as by default.
	if err := h.d.Abort(context.Background(), "alice", api.AbortRequest{Service: "api", Reason: "slow"}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if st := h.state(); st.RolledBack == nil || !st.RolledBack.Aborted || st.ServiceRolledBack["api"] != nil {
		t.Fatalf("api's abort: primary %+v others %+v", st.RolledBack, st.ServiceRolledBack)
	}
}

// A promoted canary of a service other than the primary is a release of
// that service: rollback web --to previous brings web's former image
// back, and web's canary (promoted) stays dropped beside it, while api's
// canary runs on.
func TestServiceCanaryPromotedThenRolledBackTo(t *testing.T) {
	h := newHarness(t, twoCanaries(false))
	h.deployBy("alice")
	h.scrape(3)
	if err := h.d.promoteRequest(context.Background(), "alice", "web", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	if got := h.serviceImages("web"); got != "app:3×1" {
		t.Fatalf("web runs %s after its promotion, want app:3", got)
	}
	if err := h.rollbackService("web", "previous"); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	if got := h.serviceImages("web"); got != "app:1×1" {
		t.Errorf("web runs %s after rollback --to previous, want app:1 only (its canary stays dropped)", got)
	}
	if w := h.serviceWeights(); w["api"] != 30 || w["web"] != 0 {
		t.Errorf("weights %v, want api 30, web 0", w)
	}
}

// With policy.relative, a canary is compared with its own service's
// stable, not the primary's: web's canary at 3% errors fails against
// web's stable at 0% although api's stable errs at 3% too.
func TestServiceCanaryRelativeToItsOwnStable(t *testing.T) {
	h := newHarness(t, strings.Replace(twoCanaries(true), "policy: {min_requests: 10}",
		"policy: {min_requests: 10, max_error_rate: 0.05, relative: {confidence: 0.95, min_requests: 100}}", 1))
	h.mustConverge()
	t0 := time.Now()
	h.analyze(t0)
	h.app.set(func(a *appMetrics) {
		a.svcErrRate["web/"+stack.TrackCanary] = 0.03
		a.svcErrRate["api/"+stack.TrackStable] = 0.03
	})
	h.scrape(4)
	h.analyze(t0.Add(time.Second))
	r := h.rolloutOf("web")
	if r == nil || r.Failures != 1 || r.Last == nil || r.Last.Outcome != analysis.Fail || !strings.Contains(strings.Join(r.Last.Reasons, ";"), "than stable's 0.00%") {
		t.Fatalf("web's canary 3%% worse than web's stable: %+v", r)
	}
}

// Chaos aims at one of several canaried services by name: web's canary
// only (its track by default), not the primary's; a name that is no web
// service is refused.
func TestChaosAimsAtOneService(t *testing.T) {
	h := newHarness(t, twoCanaries(false))
	h.mustConverge()
	h.d.jr.Close()
	h.d = h.newDaemonWith(func(c *Config) {
		c.ChaosPost = func(context.Context, string, []byte) (int, string, error) { return http.StatusOK, "ok", nil }
	})
	h.mustConverge()
	res, err := h.d.Chaos(context.Background(), "alice", api.ChaosRequest{Mode: "error", Rate: 1, Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Track != stack.TrackCanary || len(res.Containers) != 1 || !strings.Contains(res.Containers[0], "-web-canary-") {
		t.Errorf("chaos on web hit %s %v, want web's canary only", res.Track, res.Containers)
	}
	if _, err := h.d.Chaos(context.Background(), "alice", api.ChaosRequest{Mode: "error", Rate: 1, Service: "nope"}); err == nil {
		t.Errorf("chaos on an unknown service accepted")
	}
}

// When another service becomes the primary (api's canary leaves the
// manifest, its image not caught up), each decision stays its service's:
// api keeps its promoted image, web's aborted canary stays dropped, and
// web's stable is not given api's promotion.
func TestDecisionsStayTheirServicesWhenThePrimaryChanges(t *testing.T) {
	h := newHarness(t, twoCanaries(false))
	h.mustConverge()
	h.scrape(3)
	if err := h.d.promoteRequest(context.Background(), "alice", "", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if err := h.d.abortCanary(context.Background(), "alice", "web", "bad", func(string) {}); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	if st := h.state(); st.Promoted == nil || st.Promoted.Service != "api" || st.ServiceRolledBack["web"] == nil {
		t.Fatalf("state before: %+v %+v", st.Promoted, st.ServiceRolledBack)
	}
	// api's canary leaves the manifest (api's image still app:1): web,
	// the only canaried service, is the primary now.
	h.write(strings.Replace(twoCanaries(false), "\n    canary: {image: app:2, weight: 30}", "", 1))
	h.mustConverge()
	if got := h.serviceImages("api"); got != "app:2×1" {
		t.Errorf("api runs %s, want its promoted app:2", got)
	}
	if got := h.serviceImages("web"); got != "app:1×1" {
		t.Errorf("web runs %s, want app:1 only (its canary aborted, api's promotion not applied to it)", got)
	}
	st := h.state()
	// The single fields are web's (the primary's) now; api's promotion is
	// kept under its name.
	if p := st.ServicePromoted["api"]; st.Promoted != nil || p == nil || p.Service != "api" || st.RolledBack == nil || st.RolledBack.Service != "web" || st.ServiceRolledBack != nil {
		t.Errorf("state after: promoted %+v %+v, rolled back %+v %+v", st.Promoted, st.ServicePromoted, st.RolledBack, st.ServiceRolledBack)
	}
}
