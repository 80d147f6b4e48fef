package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/analysis"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// steppedCanary is a canary of app:2 in three 2s steps judged every 1s.
func steppedCanary(image string, limit int, autoPromote bool) string {
	return fmt.Sprintf(`  canary:
    image: %s
    steps:
      - {weight: 10, pause: 2s}
      - {weight: 25, pause: 2s}
      - {weight: 50, pause: 2s}
    analysis: {interval: 1s, failure_limit: %d, auto_promote: %v}`, image, limit, autoPromote)
}

// steppedHarness is a converged stack whose stepped canary serves its
// first step, the step started.
func steppedHarness(t *testing.T, limit int, autoPromote bool) *harness {
	t.Helper()
	h := newHarness(t, fakeManifest("app:1", 2, steppedCanary("app:2", limit, autoPromote)))
	h.mustConverge()
	h.analyze(time.Now())
	if r := h.rollout(); r == nil || r.StepStarted.IsZero() || r.Step != 0 {
		t.Fatalf("the first step did not start: %+v", r)
	}
	return h
}

func (h *harness) analyze(now time.Time) { h.d.analyze(context.Background(), now) }

// rollout is a copy of the daemon's rollout state.
func (h *harness) rollout() *analysis.Rollout {
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	if h.d.state.Rollout == nil {
		return nil
	}
	r := *h.d.state.Rollout
	return &r
}

// after is the analysis clock d past the start of the step in force.
func (h *harness) after(d time.Duration) time.Time {
	h.t.Helper()
	r := h.rollout()
	if r == nil {
		h.t.Fatal("no rollout")
	}
	return r.StepStarted.Add(d)
}

// appIDs are the app containers' IDs: a step must replace none.
func (h *harness) appIDs() []string {
	var ids []string
	for _, c := range h.fe.ByRole(stack.RoleApp) {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	return ids
}

func (h *harness) weight() int { return h.status().CanaryWeight }

// A healthy canary walks 10 → 25 → 50 → promoted by itself, each step
// only reloading nginx, each step and check journaled once.
func TestStepsWalkToPromotion(t *testing.T) {
	h := steppedHarness(t, 2, true)
	ids := h.appIDs()
	if w := h.weight(); w != 10 {
		t.Fatalf("first step serves %d%%, want 10", w)
	}
	for i, want := range []int{25, 50} {
		h.scrape(3)
		h.analyze(h.after(time.Second)) // a passing check, pause not over
		if w := h.weight(); w != []int{10, 25}[i] {
			t.Fatalf("moved on before the pause: %d%%", w)
		}
		h.scrape(1)
		h.analyze(h.after(2 * time.Second)) // pause over: next step
		if w := h.weight(); w != want {
			t.Fatalf("step %d serves %d%%, want %d; events %v", i+2, w, want, h.events())
		}
		if got := h.appIDs(); !slices.Equal(got, ids) {
			t.Fatalf("a step replaced containers: %v -> %v", ids, got)
		}
		s := h.status()
		if s.Rollout == nil || s.Rollout.Step != i+2 || s.Rollout.Weight != want || s.Rollout.Phase != api.PhaseProgressing || !s.Converged {
			t.Fatalf("status after step %d: %+v converged=%v", i+2, s.Rollout, s.Converged)
		}
	}
	h.scrape(3)
	h.analyze(h.after(time.Second))
	h.scrape(1)
	h.analyze(h.after(2 * time.Second)) // last step passed: promote
	if got := h.running(); got != "stable:app:2×2" {
		t.Fatalf("after the last step: running %s, want app:2 promoted; events %v", got, h.events())
	}
	ev := h.events()
	for name, n := range map[string]int{journal.EventCanaryStep: 3, journal.EventPromoted: 1, journal.EventCheckPassed: 6, journal.EventCheckFailed: 0, journal.EventAborted: 0} {
		if got := count(ev, name); got != n {
			t.Errorf("%s journaled %d times, want %d: %v", name, got, n, ev)
		}
	}
	if st := h.state(); st.Rollout != nil || st.Promoted == nil || st.Promoted.Image != "app:2" {
		t.Errorf("state after promotion: %+v", st)
	}
	// Nothing more happens, and status shows no rollout.
	h.analyze(time.Now().Add(time.Hour))
	h.mustConverge()
	if n := count(h.events(), journal.EventPromoted); n != 1 {
		t.Errorf("promoted journaled %d times", n)
	}
	if s := h.status(); s.Rollout != nil {
		t.Errorf("status after promotion still shows a rollout: %+v", s.Rollout)
	}
}

// An erroring canary fails its checks and, at failure_limit, the daemon
// aborts it by itself: all traffic on stable, canary gone, the reasons
// journaled and shown until the manifest names another canary.
func TestFailingCanaryAbortsItself(t *testing.T) {
	h := steppedHarness(t, 2, true)
	h.app.set(func(a *appMetrics) { a.errRate[stack.TrackCanary] = 0.2 })
	h.scrape(3)
	h.analyze(h.after(time.Second))
	if r := h.rollout(); r.Failures != 1 || r.Last.Outcome != analysis.Fail {
		t.Fatalf("after one bad check: %+v", r)
	}
	if s := h.status(); s.Rollout.Failures != 1 || s.Rollout.FailureLimit != 2 || s.Mode != stack.TrackCanary {
		t.Fatalf("status after one failed check: %+v", s.Rollout)
	}
	h.scrape(1)
	h.analyze(h.after(2 * time.Second))
	if got := h.running(); got != "stable:app:1×2" {
		t.Fatalf("after %d failed checks: running %s, want only stable", 2, got)
	}
	ev := h.events()
	if n := count(ev, journal.EventAborted); n != 1 {
		t.Fatalf("aborted journaled %d times: %v", n, ev)
	}
	if n := count(ev, journal.EventCanaryStep); n != 1 {
		t.Errorf("canary_step journaled %d times, want 1: the canary never left step 1", n)
	}
	var ab journal.Record
	for _, r := range h.records(journal.TypeEvent) {
		if r.Event == journal.EventAborted {
			ab = r
		}
	}
	if !strings.Contains(ab.Message, "2 of 2 allowed failed checks") || !strings.Contains(strings.ToLower(ab.Message), "error rate") {
		t.Errorf("aborted message %q does not give the reasons", ab.Message)
	}
	s := h.status()
	if s.Mode != stack.TrackStable || s.Rollout == nil || s.Rollout.Phase != api.PhaseAborted || s.Rollout.Aborted == nil || len(s.Rollout.Aborted.Reasons) < 2 {
		t.Fatalf("status after the abort: mode %s, %+v", s.Mode, s.Rollout)
	}
	// It stays aborted: the loop does not bring the canary back, nor does
	// the analysis act again.
	h.mustConverge()
	h.analyze(time.Now().Add(time.Hour))
	if got := h.running(); got != "stable:app:1×2" || count(h.events(), journal.EventAborted) != 1 {
		t.Fatalf("after the abort: running %s, events %v", got, h.events())
	}
	// Another canary image is a new rollout, from its first step.
	h.write(fakeManifest("app:1", 2, steppedCanary("app:3", 2, true)))
	h.mustConverge()
	h.analyze(time.Now())
	if s := h.status(); s.Rollout == nil || s.Rollout.Image != "app:3" || s.Rollout.Step != 1 || s.Rollout.Aborted != nil || s.CanaryWeight != 10 {
		t.Fatalf("a new canary after the abort: %+v weight %d", s.Rollout, s.CanaryWeight)
	}
}

// A canary that stops answering cannot pass by silence: its first check
// is graced, every one after that with no data fails, and it is aborted.
func TestSilentCanaryIsAborted(t *testing.T) {
	h := steppedHarness(t, 2, true)
	h.app.set(func(a *appMetrics) { a.fail[stack.TrackCanary] = errors.New("context deadline exceeded") })
	h.scrape(2)
	h.analyze(h.after(time.Second))
	if r := h.rollout(); r.Failures != 0 || r.Last.Outcome != analysis.Grace {
		t.Fatalf("first check with no data: %+v, want the grace", r.Last)
	}
	for i := 2; i <= 3; i++ {
		h.scrape(1)
		h.analyze(h.after(time.Duration(i) * time.Second))
	}
	if got := h.running(); got != "stable:app:1×2" {
		t.Fatalf("a silent canary still runs: %s; events %v", got, h.events())
	}
	ev := h.events()
	if count(ev, journal.EventCheckGrace) != 1 || count(ev, journal.EventCheckFailed) != 2 || count(ev, journal.EventAborted) != 1 {
		t.Errorf("events: %v", ev)
	}
	if s := h.status(); s.Rollout.Aborted == nil || !strings.Contains(strings.Join(s.Rollout.Aborted.Reasons, " "), "scrape failed") {
		t.Errorf("abort reasons do not say the data is missing: %+v", s.Rollout.Aborted)
	}
}

// Without data the step does not advance even when its pause is over: a
// passing check is needed.
func TestStepNeedsAPass(t *testing.T) {
	h := steppedHarness(t, 5, true)
	h.app.set(func(a *appMetrics) { a.fail[stack.TrackCanary] = errors.New("refused") })
	h.scrape(1)
	h.analyze(h.after(3 * time.Second)) // graced, pause over
	if w := h.weight(); w != 10 {
		t.Fatalf("advanced on a graced check: %d%%", w)
	}
	h.app.set(func(a *appMetrics) { delete(a.fail, stack.TrackCanary) })
	h.scrape(3)
	h.analyze(h.after(4 * time.Second))
	if w := h.weight(); w != 25 {
		t.Fatalf("a passing check after the pause did not advance: %d%%", w)
	}
}

// The step state lives in state.json: a restarted daemon carries on at
// the step it was at, and its first check (empty windows) is graced.
func TestRolloutSurvivesRestart(t *testing.T) {
	h := steppedHarness(t, 2, true)
	h.scrape(3)
	h.analyze(h.after(time.Second))
	h.analyze(h.after(2 * time.Second))
	if w := h.weight(); w != 25 {
		t.Fatalf("step 2 not reached: %d%%", w)
	}
	h.d.jr.Close()
	h.d = h.newDaemon()
	h.mustConverge()
	if w := h.weight(); w != 25 {
		t.Fatalf("after a restart the canary serves %d%%, want step 2's 25%%", w)
	}
	if s := h.status(); s.Rollout == nil || s.Rollout.Step != 2 {
		t.Fatalf("status after restart: %+v", s.Rollout)
	}
	h.analyze(h.after(time.Second)) // no figures yet: graced
	if r := h.rollout(); r.Failures != 0 || r.Last.Outcome != analysis.Grace {
		t.Fatalf("first check after a restart: %+v", r.Last)
	}
	h.scrape(3)
	h.analyze(h.after(2 * time.Second))
	if w := h.weight(); w != 50 {
		t.Fatalf("after a restart the rollout did not go on: %d%%", w)
	}
	if n := count(h.events(), journal.EventCanaryStep); n != 3 {
		t.Errorf("canary_step journaled %d times, want 3", n)
	}
}

// pause holds the weight (no checks, the pause does not run); resume goes
// on; promote moves one step, promote --full skips the rest.
func TestOperatorCommands(t *testing.T) {
	h := steppedHarness(t, 2, false)
	if err := h.d.setPaused("alice", "", true); err != nil {
		t.Fatal(err)
	}
	if err := h.d.setPaused("alice", "", true); err == nil {
		t.Error("pausing twice succeeded")
	}
	h.scrape(3)
	h.analyze(h.after(time.Hour))
	if r := h.rollout(); r.Checks != 0 || h.weight() != 10 {
		t.Fatalf("a paused rollout checked or moved: %+v", r)
	}
	if s := h.status(); s.Rollout.Phase != api.PhasePaused {
		t.Errorf("phase %q, want paused", s.Rollout.Phase)
	}
	if err := h.d.setPaused("alice", "", false); err != nil {
		t.Fatal(err)
	}
	if err := h.d.promoteRequest(context.Background(), "alice", "", false, func(string) {}); err != nil {
		t.Fatalf("promote one step: %v", err)
	}
	if w := h.weight(); w != 25 {
		t.Fatalf("promote without --full: %d%%, want the next step's 25%%", w)
	}
	if err := h.d.promoteRequest(context.Background(), "alice", "", true, func(string) {}); err != nil {
		t.Fatalf("promote --full: %v", err)
	}
	if got := h.running(); got != "stable:app:2×2" {
		t.Fatalf("after promote --full: %s", got)
	}
	ev := h.events()
	if count(ev, journal.EventRolloutPaused) != 1 || count(ev, journal.EventRolloutResumed) != 1 || count(ev, journal.EventPromoted) != 1 {
		t.Errorf("events: %v", ev)
	}
}

// swiftctl abort rolls back now, journaled as aborted with the reason.
func TestAbortByOperator(t *testing.T) {
	h := steppedHarness(t, 2, true)
	if err := h.d.abortCanary(context.Background(), "alice", "", "checkout latency", func(string) {}); err != nil {
		t.Fatal(err)
	}
	if got := h.running(); got != "stable:app:1×2" {
		t.Fatalf("after abort: %s", got)
	}
	s := h.status()
	if s.Rollout == nil || s.Rollout.Aborted == nil || s.Rollout.Aborted.By != "alice" || s.Rollout.Aborted.Reasons[0] != "checkout latency" {
		t.Fatalf("status after abort: %+v", s.Rollout)
	}
	if ev := h.events(); count(ev, journal.EventAborted) != 1 || count(ev, journal.EventRolledBack) != 0 {
		t.Errorf("events: %v", ev)
	}
}

// With auto_promote off the last step holds, journaled once, until a
// person promotes.
func TestNoAutoPromoteWaits(t *testing.T) {
	h := steppedHarness(t, 3, false)
	for range 3 {
		h.scrape(3)
		h.analyze(h.after(time.Second))
		h.analyze(h.after(2 * time.Second))
	}
	h.analyze(h.after(3 * time.Second))
	if w := h.weight(); w != 50 {
		t.Fatalf("last step: %d%%", w)
	}
	if s := h.status(); s.Rollout.Phase != api.PhaseCompleted || s.Mode != stack.TrackCanary {
		t.Fatalf("status: %+v", s.Rollout)
	}
	if ev := h.events(); count(ev, journal.EventStepsCompleted) != 1 || count(ev, journal.EventPromoted) != 0 {
		t.Errorf("events: %v", ev)
	}
}

// Without steps nothing changes: the analysis does nothing.
func TestNoStepsNoAnalysis(t *testing.T) {
	h := canaryHarness(t)
	before := len(h.events())
	h.analyze(time.Now().Add(time.Hour))
	if s := h.status(); s.Rollout != nil || s.CanaryWeight != 20 || len(h.events()) != before || h.state().Rollout != nil {
		t.Errorf("the analysis acted on a canary without steps: %+v", s.Rollout)
	}
}

// The relative verdict fails a canary at 3% errors against stable's 0%
// even with the absolute threshold raised to 5%; the statistic and the
// sample sizes are in the decision's input and the check's figures.
func TestRelativeVerdictFailsCanary(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, steppedCanary("app:2", 1, true))+
		"  max_error_rate: 0.05\n  relative: {confidence: 0.95, min_requests: 100}\n")
	h.mustConverge()
	h.analyze(time.Now())
	h.app.set(func(a *appMetrics) { a.errRate[stack.TrackCanary] = 0.03 })
	h.scrape(4)
	h.analyze(h.after(time.Second))
	if got := h.running(); got != "stable:app:1×2" {
		t.Fatalf("a canary 3%% worse than stable was not aborted: %s; events %v", got, h.events())
	}
	var dec journal.Record
	for _, r := range h.records(journal.TypeDecision) {
		if r.PolicyName == "canary_safety" {
			dec = r
		}
	}
	rel, _ := dec.Input["relative"].(map[string]any)
	if rel == nil || rel["verdict"] != "fail" || rel["z"].(float64) < 1.645 || rel["canary_requests"].(float64) < 100 || rel["stable_requests"].(float64) < 100 {
		t.Fatalf("decision input lacks the relative verdict: %v", dec.Input)
	}
	if !strings.Contains(strings.Join(dec.Reasons, ";"), "significantly higher than stable's 0.00%") || strings.Contains(strings.Join(dec.Reasons, ";"), "exceeds 5%") {
		t.Errorf("reasons %v: want the relative verdict's and not the absolute threshold's", dec.Reasons)
	}
	t.Logf("relative verdict: z %.2f over %v canary and %v stable requests", rel["z"], rel["canary_requests"], rel["stable_requests"])
}

// Without policy.relative the same canary passes the raised threshold.
func TestRelativeVerdictOffByDefault(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, steppedCanary("app:2", 1, true))+"  max_error_rate: 0.05\n")
	h.mustConverge()
	h.analyze(time.Now())
	h.app.set(func(a *appMetrics) { a.errRate[stack.TrackCanary] = 0.03 })
	h.scrape(4)
	h.analyze(h.after(time.Second))
	if r := h.rollout(); r.Failures != 0 || r.Last.Outcome != analysis.Pass {
		t.Errorf("without a relative verdict 3%% under a 5%% threshold: %+v", r.Last)
	}
}

// Every check's canary-safety decision is journaled with the input it was
// made on, also when the outcome repeats (passing checks on figures that
// drift): a replay of the journal re-judges each one.
func TestEveryCheckDecisionKeepsItsInput(t *testing.T) {
	h := steppedHarness(t, 3, false)
	base := h.after(0)
	for i := 1; i <= 4; i++ {
		h.scrape(2)
		h.analyze(base.Add(time.Duration(i) * time.Second))
	}
	checks := 0
	for _, e := range h.events() {
		switch e {
		case journal.EventCheckPassed, journal.EventCheckFailed, journal.EventCheckGrace:
			checks++
		}
	}
	var inputs []string
	for _, r := range h.records(journal.TypeDecision) {
		if r.PolicyName != "canary_safety" {
			continue
		}
		if r.Input == nil || r.Count > 0 {
			t.Errorf("decision %+v: want its own input and no streak summary", r)
		}
		inputs = append(inputs, fmt.Sprint(r.Input))
	}
	if checks < 4 || len(inputs) != checks {
		t.Fatalf("%d check events, %d canary_safety decisions with an input: want one per check (at least 4)", checks, len(inputs))
	}
	slices.Sort(inputs)
	if len(slices.Compact(inputs)) != checks {
		t.Errorf("decision inputs repeat: the figures drifted between checks: %v", inputs)
	}
}
