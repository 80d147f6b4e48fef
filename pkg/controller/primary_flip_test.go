package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
)

// The primary (manifest.Primary) changes with a manifest edit: a canary
// added to a web service sorting first ("aaa"), or the primary's canary
// removed. Every decision in State's single fields must stay with the
// service it was made for (State.rekeyed).

// withAAA is base with a web service aaa (first by name), with a canary
// of app:2 at weight 5 when canary (it becomes the primary then), or
// with canaryYAML when given.
func withAAA(base string, canary bool) string {
	c := ""
	if canary {
		c = "\n    canary: {image: app:2, weight: 5}"
	}
	return withAAACanary(base, c)
}

func withAAACanary(base, canaryYAML string) string {
	return strings.Replace(base, "services:\n", "services:\n  aaa:\n    image: app:1\n    port: 3000\n    route: {host: aaa.test}"+canaryYAML+"\n", 1)
}

// walkAPIToSecondStep walks api's stepped canary (the primary) to its
// second step (weight 60).
func walkAPIToSecondStep(t *testing.T, h *harness, t0 time.Time) {
	t.Helper()
	h.analyze(t0)
	h.scrape(3)
	h.analyze(t0.Add(time.Second))
	h.scrape(1)
	h.analyze(t0.Add(2 * time.Second))
	if w := h.serviceWeights()["api"]; w != 60 {
		t.Fatalf("api's canary at weight %d before the edit, want 60 (its second step)", w)
	}
}

// Finding 2: api promoted while its manifest image is not caught up; its
// canary line removed (web becomes the primary); web promoted: api keeps
// the image it was promoted to, and nothing about api changes without a
// journal record.
func TestPromotingTheNewPrimaryKeepsTheFormerPrimarysPromotion(t *testing.T) {
	h := newHarness(t, twoCanaries(false))
	h.mustConverge()
	h.scrape(3)
	if err := h.d.promoteRequest(context.Background(), "alice", "", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	h.write(strings.Replace(twoCanaries(false), "\n    canary: {image: app:2, weight: 30}", "", 1))
	h.mustConverge()
	if got := h.serviceImages("api"); got != "app:2×1" {
		t.Fatalf("api runs %s before web's promotion, want app:2×1", got)
	}
	h.scrape(3)
	ev := len(h.events())
	if err := h.d.promoteRequest(context.Background(), "alice", "web", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	if got := h.serviceImages("api"); got != "app:2×1" {
		t.Errorf("api runs %s after web's promotion, want app:2×1 (its own promotion stands); events %v", got, h.events()[ev:])
	}
	if got := h.serviceImages("web"); got != "app:3×1" {
		t.Errorf("web runs %s, want app:3×1", got)
	}
	st := h.state()
	if p := st.Promoted; p == nil || p.Service != "web" || p.Image != "app:3" {
		t.Errorf("primary's promotion %+v, want web's to app:3", p)
	}
	if p := st.ServicePromoted["api"]; p == nil || p.Image != "app:2" {
		t.Errorf("api's promotion %+v, want app:2 kept", p)
	}
}

// Finding 2, the other way the primary changes: a canary added to aaa
// (first by name) after api's promotion; aaa promoted.
func TestPromotingAServiceThatBecameThePrimaryKeepsAnothersPromotion(t *testing.T) {
	h := newHarness(t, withAAA(twoCanaries(false), false))
	h.mustConverge()
	h.scrape(3)
	if err := h.d.promoteRequest(context.Background(), "alice", "", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	h.write(withAAACanary(twoCanaries(false), "\n    canary: {image: app:3, weight: 5}"))
	h.mustConverge()
	h.scrape(3)
	if err := h.d.promoteRequest(context.Background(), "alice", "", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	if got, aaa := h.serviceImages("api"), h.serviceImages("aaa"); got != "app:2×1" || aaa != "app:3×1" {
		t.Errorf("api runs %s, aaa %s after aaa's promotion; want app:2×1 (api's promotion stands), app:3×1", got, aaa)
	}
}

// Finding 3: api's stepped canary at its second step; a canary added to
// aaa makes aaa the primary: api's walk goes on from where it was (step,
// revision, checks and failures), not from step 1 with a fresh failure
// budget.
func TestAFormerPrimarysRolloutKeepsItsStep(t *testing.T) {
	h := newHarness(t, withAAA(twoCanaries(true), false))
	h.mustConverge()
	walkAPIToSecondStep(t, h, time.Now())
	before := h.rolloutOf("")
	h.write(withAAA(twoCanaries(true), true))
	h.mustConverge()
	if w := h.serviceWeights(); w["api"] != 60 || w["aaa"] != 5 {
		t.Errorf("weights after aaa became the primary %v, want api 60 (its step kept), aaa 5", w)
	}
	r := h.rolloutOf("api")
	if r == nil || r.Step != before.Step || r.Revision != before.Revision || r.Checks != before.Checks || r.Failures != before.Failures {
		t.Fatalf("api's rollout %+v after the edit, want the one before %+v", r, before)
	}
	if r := h.rolloutOf(""); r != nil {
		t.Errorf("aaa (the primary, a plain canary) has a rollout %+v: api's was handed to it", r)
	}
}

// Finding 3: a stepped canary of the same image added to aaa does not
// take api's step, start or revision: it starts at its first step.
func TestANewPrimaryDoesNotInheritAnothersRollout(t *testing.T) {
	stepped := "\n    canary:\n      image: app:2\n      steps: [{weight: 5, pause: 2s}, {weight: 50, pause: 2s}]\n      analysis: {interval: 1s, failure_limit: 2, auto_promote: false}"
	h := newHarness(t, withAAA(twoCanaries(true), false))
	h.mustConverge()
	walkAPIToSecondStep(t, h, time.Now())
	apiRev := h.rolloutOf("").Revision
	h.write(withAAACanary(twoCanaries(true), stepped))
	h.mustConverge()
	if w := h.serviceWeights(); w["aaa"] != 5 || w["api"] != 60 {
		t.Errorf("weights %v, want aaa 5 (its first step), api 60", w)
	}
	if r := h.rolloutOf(""); r != nil && (r.Step != 0 || r.Revision == apiRev) {
		t.Errorf("aaa's rollout %+v took api's (revision %s)", r, apiRev)
	}
}

// Finding 4: a rollback of the primary's canary recorded by the previous
// version (no Service) stays the primary's of the manifest in force when
// it is loaded: a canary added to aaa does not bring api's back.
func TestARollbackFromThePreviousVersionStaysWithItsService(t *testing.T) {
	noWebCanary := func(aaa bool) string {
		return withAAA(strings.Replace(twoCanaries(false), "\n    canary: {image: app:3, weight: 10}", "", 1), aaa)
	}
	h := newHarness(t, noWebCanary(false))
	h.mustConverge()
	if err := h.d.rollback(context.Background(), "alice", "", func(string) {}); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	// As the previous version wrote it, read by a daemon started anew.
	h.d.mu.Lock()
	h.d.state.RolledBack.Service = ""
	h.d.state.Primary = ""
	logErr(h.d.log, "save", h.d.saveStateLocked())
	h.d.mu.Unlock()
	h.d.jr.Close()
	h.d = h.newDaemon()
	h.mustConverge()
	h.write(noWebCanary(true))
	h.mustConverge()
	if w := h.serviceWeights(); w["api"] != 0 || w["aaa"] != 5 {
		t.Errorf("weights %v after aaa became the primary, want api 0 (its canary stays dropped), aaa 5", w)
	}
	if rb := h.state().ServiceRolledBack["api"]; rb == nil || rb.CanaryImage != "app:2" {
		t.Errorf("api's rollback %+v, want app:2's", rb)
	}
}

// Finding 4 as a unit: the stamp is made at the first normalisation and
// a later flip moves the decision with its service; flipping back
// restores it to the single field.
func TestRekeyedStampsDecisionsFromThePreviousVersion(t *testing.T) {
	parse := func(s string) *manifest.Manifest {
		m, err := manifest.Parse([]byte(s), "demo")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	apiPrimary := parse(withAAA(twoCanaries(false), false))
	aaaPrimary := parse(withAAA(twoCanaries(false), true))
	s := State{RolledBack: &Rollback{CanaryImage: "app:2"}, Promoted: &Promotion{ManifestStable: "app:1", Image: "app:9"}}
	s1, _ := s.rekeyed(apiPrimary)
	if s1.Primary != "api" || s1.RolledBack == nil || s1.Promoted == nil {
		t.Fatalf("first normalisation %+v, want the decisions kept as api's, stamped", s1)
	}
	s2, _ := s1.rekeyed(aaaPrimary)
	if s2.Primary != "aaa" || s2.RolledBack != nil || s2.Promoted != nil {
		t.Fatalf("after the flip the single fields hold %+v %+v, want none (aaa made no decision)", s2.RolledBack, s2.Promoted)
	}
	if rb, p := s2.ServiceRolledBack["api"], s2.ServicePromoted["api"]; rb == nil || rb.Service != "api" || p == nil || p.Service != "api" {
		t.Fatalf("api's decisions after the flip %+v %+v", rb, p)
	}
	o := s2.Options(aaaPrimary)
	if !o.Canaries["api"].Off || o.ServiceImages["api"] != "app:9" || o.NoCanary {
		t.Errorf("options after the flip %+v, want api's canary off and api on app:9, aaa's canary on", o)
	}
	s3, _ := s2.rekeyed(apiPrimary)
	if s3.RolledBack == nil || s3.Promoted == nil || len(s3.ServiceRolledBack) != 0 || len(s3.ServicePromoted) != 0 {
		t.Errorf("flipped back: %+v", s3)
	}
}

// Finding 6: api promoted while the manifest still declares its canary;
// aaa becomes the primary: status reports no rollout for api (nginx
// serves its canary nothing) and none is started.
func TestStatusAfterAFlipShowsNoRolloutForAPromotedService(t *testing.T) {
	h := newHarness(t, withAAA(twoCanaries(true), false))
	h.mustConverge()
	h.scrape(3)
	if err := h.d.promoteRequest(context.Background(), "alice", "", true, func(string) {}); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	h.write(withAAA(twoCanaries(true), true))
	h.mustConverge()
	h.analyze(time.Now())
	h.mustConverge()
	if got := h.serviceImages("api"); got != "app:2×1" {
		t.Errorf("api runs %s, want app:2×1", got)
	}
	for _, s := range h.status().Services {
		if s.Name == "api" && (s.Rollout != nil || s.CanaryWeight != 0) {
			t.Errorf("status of api: weight %d rollout %+v, want none (promoted)", s.CanaryWeight, s.Rollout)
		}
	}
	if r := h.state().Rollouts["api"]; r != nil {
		t.Errorf("a rollout %+v started for promoted api", r)
	}
}

// Finding 8: a pending abort names its service, not a role ("" for
// the primary), so that one settled after a manifest edit that changed
// the primary (a crash between the write-ahead and the commit) is still
// api's: its canary stays dropped, aaa's is not.
func TestAPendingTransitionNamesItsService(t *testing.T) {
	h := newHarness(t, withAAA(twoCanaries(false), false))
	h.mustConverge()
	thaw := h.freezeAt("before", reconciler.OpReloadNginx, func() error {
		return h.d.abortCanary(context.Background(), "alice", "", "bad", func(string) {})
	})
	st := h.state()
	if p := st.Pending; p == nil || p.Kind != kindRollback || p.Service != "api" {
		t.Fatalf("pending %+v, want a rollback naming api", p)
	}
	_ = thaw()
	// Settled under the edited manifest (aaa the primary now).
	m, err := manifest.Parse([]byte(withAAACanary(twoCanaries(false), "\n    canary: {image: app:3, weight: 5}")), "demo")
	if err != nil {
		t.Fatal(err)
	}
	next := st.with(st.Pending)
	o := next.Options(m)
	if !o.Canaries["api"].Off || o.NoCanary {
		t.Errorf("settled under the edited manifest: api's canary off %v, the primary's (aaa's) off %v; want api's only", o.Canaries["api"].Off, o.NoCanary)
	}
	if next, _ = next.rekeyed(m); next.RolledBack != nil || next.ServiceRolledBack["api"] == nil {
		t.Errorf("settled and normalised: primary's rollback %+v, api's %+v; want api's only", next.RolledBack, next.ServiceRolledBack["api"])
	}
}

// Finding 3, in memory: what the analysis keeps of a rollout (checks,
// retry) is kept by service, so a primary change neither hands the
// former primary's to the new one nor loses it.
func TestAnalysisMemoryStaysWithItsService(t *testing.T) {
	d := &Daemon{}
	d.state.Primary = "api"
	*d.memLocked("") = analysisMem{image: "app:2", checks: 5}
	d.state.Primary = "aaa"
	if got := *d.memLocked(""); got.checks != 0 {
		t.Errorf("aaa (the primary now) has api's analysis memory %+v", got)
	}
	if got := *d.memLocked("api"); got.checks != 5 {
		t.Errorf("api's analysis memory %+v, want its 5 checks kept", got)
	}
}

// The seed form's single service is the primary: decisions made under it
// are the primary's of the named form it may become, not those of the
// named primary before it.
func TestRekeyedSeedFormForgetsTheNamedPrimary(t *testing.T) {
	seed, err := manifest.Parse([]byte(fakeManifest("app:3", 2, "")), "x")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := (State{Primary: "api"}).rekeyed(seed); s.Primary != "" {
		t.Errorf("under the seed form the single fields are said to be %q's", s.Primary)
	}
}
