package controller

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/analysis"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
)

// freezeServed runs transition and freezes the daemon the moment nginx
// has loaded its configuration, before the daemon reads that back: what
// a crash there leaves is a route serving the transition, state.json
// holding it pending, and no journal record of it. It returns once the
// freeze is reached; thaw ends the transition's context, lets the frozen
// reads fail with errCrashed and returns the transition's error.
func (h *harness) freezeServed(transition func(ctx context.Context) error) (thaw func() error) {
	h.t.Helper()
	var hup atomic.Bool
	frozen, release := make(chan struct{}), make(chan struct{})
	var fired, unfreeze sync.Once
	status := h.fe.NginxStatus("demo-nginx")
	h.d.rec.NginxStatus = func(ctx context.Context) (*reconciler.Loaded, error) {
		if hup.Load() {
			fired.Do(func() { close(frozen) })
			<-release
			return nil, errCrashed
		}
		return status(ctx)
	}
	h.fe.BeforeCall(func(op, _ string) {
		if op == fake.OpSignal { // the fake's nginx loads the new file on this very call
			hup.Store(true)
		}
	})
	h.t.Cleanup(func() { unfreeze.Do(func() { close(release) }) })
	// Thawed, the frozen daemon stops (its context ends) rather than wait
	// out nginx's load timeout on reads that fail.
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- transition(ctx) }()
	select {
	case <-frozen:
	case err := <-done:
		h.t.Fatalf("the transition ended (%v) without nginx loading it", err)
	case <-time.After(10 * time.Second):
		h.t.Fatal("nginx never loaded the transition")
	}
	h.fe.BeforeCall(nil)
	return func() error {
		cancel()
		unfreeze.Do(func() { close(release) })
		return <-done
	}
}

// A daemon dies after nginx loaded a transition and before it committed
// it; the manifest is edited while it is down. The restarted daemon
// settles the transition from what nginx serves, the revision the
// transition made: it took effect, so it is journaled once, under its own
// service's name (the primary's carries none), never dropped as one that
// did not take effect.
func TestSettlingAfterAManifestEditJournalsWhatTookEffect(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		run      func(ctx context.Context, h *harness) error
		edit     string
		event    string
		service  string // the record's details.service ("": none, the primary's)
		check    func(t *testing.T, h *harness)
	}{
		{
			// The promotion took effect, then the manifest moved past it:
			// journaled, then spent (the edit is deployed).
			name:     "promotion, stable image edited",
			manifest: fakeManifest("app:1", 2, withCanary),
			run:      func(ctx context.Context, h *harness) error { return h.d.promote(ctx, "alice", "", func(string) {}) },
			edit:     fakeManifest("app:3", 2, withCanary),
			event:    journal.EventPromoted,
			check: func(t *testing.T, h *harness) {
				if got := h.running(); got != "stable:app:3×2 canary:app:2×1" {
					t.Errorf("running %s, want stable:app:3×2 canary:app:2×1 (the edit deployed)", got)
				}
			},
		},
		{
			name:     "promotion, replicas edited",
			manifest: fakeManifest("app:1", 2, withCanary),
			run:      func(ctx context.Context, h *harness) error { return h.d.promote(ctx, "alice", "", func(string) {}) },
			edit:     fakeManifest("app:1", 3, withCanary),
			event:    journal.EventPromoted,
			check: func(t *testing.T, h *harness) {
				if got := h.running(); got != "stable:app:2×3" {
					t.Errorf("running %s, want stable:app:2×3 (the promotion stands)", got)
				}
			},
		},
		{
			name:     "abort of the primary's canary, another service made the primary",
			manifest: withAAA(twoCanaries(false), false),
			run: func(ctx context.Context, h *harness) error {
				return h.d.abortCanary(ctx, "alice", "", "bad", func(string) {})
			},
			edit:    withAAA(twoCanaries(false), true),
			event:   journal.EventAborted,
			service: "api",
			check: func(t *testing.T, h *harness) {
				if w := h.serviceWeights(); w["api"] != 0 || w["aaa"] != 5 || w["web"] != 10 {
					t.Errorf("weights %v, want api 0 (aborted), aaa 5, web 10", w)
				}
				if st := h.state(); st.ServiceRolledBack["api"] == nil || st.RolledBack != nil {
					t.Errorf("rollbacks: primary's %+v, api's %+v; want api's only", st.RolledBack, st.ServiceRolledBack["api"])
				}
			},
		},
		{
			name:     "rollback of another service's canary, its canary removed",
			manifest: twoCanaries(false),
			run: func(ctx context.Context, h *harness) error {
				return h.d.rollback(ctx, "alice", "web", func(string) {})
			},
			edit:    strings.Replace(twoCanaries(false), "\n    canary: {image: app:3, weight: 10}", "", 1),
			event:   journal.EventRolledBack,
			service: "web",
			check: func(t *testing.T, h *harness) {
				if w := h.serviceWeights(); w["api"] != 30 || w["web"] != 0 {
					t.Errorf("weights %v, want api 30, web 0", w)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.manifest)
			h.mustConverge()
			h.scrape(4)
			thaw := h.freezeServed(func(ctx context.Context) error { return tc.run(ctx, h) })
			pending := h.state().Pending
			if pending == nil {
				t.Fatal("nothing pending once nginx loaded the transition")
			}
			if n := countRecs(readEvents(t, h), tc.event); n != 0 {
				t.Fatalf("%s journaled before the daemon saw nginx serve it", tc.event)
			}
			// The crash; the manifest edited while the daemon is down.
			h.d.jr.Close()
			h.write(tc.edit)
			h.d = h.newDaemon()
			h.mustConverge()

			recs := readEvents(t, h)
			var mine []journal.Record
			for _, r := range recs {
				if r.Details["txn"] == pending.ID {
					mine = append(mine, r)
				}
			}
			if len(mine) != 1 || mine[0].Event != tc.event {
				t.Fatalf("records of the transition %s: %v, want one %s; events %v", pending.ID, names(mine), tc.event, names(recs))
			}
			if got, _ := mine[0].Details["service"].(string); got != tc.service {
				t.Errorf("%s names service %q, want %q: %+v", tc.event, got, tc.service, mine[0].Details)
			}
			if n := countRecs(recs, journal.EventTransitionAborted); n != 0 {
				t.Errorf("the restart dropped a transition that had taken effect: %v", names(recs))
			}
			if st := h.state(); st.Pending != nil {
				t.Errorf("still pending after the restart: %+v", st.Pending)
			}
			tc.check(t, h)
			_ = thaw() // the crashed daemon's end; nothing of it is checked
		})
	}
}

// A transition written by a version that named only the other services'
// canaries (Service "" for the primary's, State.Primary naming it),
// settled after an edit that made another service the primary: it is
// still the former primary's, recorded and journaled as api's, not
// handed to aaa.
func TestSettlingATransitionWithoutItsServiceAfterAPrimaryChange(t *testing.T) {
	h := newHarness(t, withAAA(twoCanaries(false), false))
	h.mustConverge()
	thaw := h.freezeServed(func(ctx context.Context) error {
		return h.d.abortCanary(ctx, "alice", "", "bad", func(string) {})
	})
	st := h.state()
	if st.Pending == nil || st.Primary != "api" {
		t.Fatalf("state at the freeze: %+v", st)
	}
	// As the previous version wrote it.
	st.Pending.Service = ""
	h.d.jr.Close()
	h.d.mu.Lock()
	h.d.state = st
	logErr(h.d.log, "save", h.d.saveStateLocked())
	h.d.mu.Unlock()
	txn := st.Pending.ID

	h.write(withAAA(twoCanaries(false), true))
	h.d = h.newDaemon()
	h.mustConverge()
	recs := readEvents(t, h)
	i := lastIndex(recs, journal.EventAborted)
	if i < 0 || recs[i].Details["txn"] != txn || recs[i].Details["service"] != "api" || countRecs(recs, journal.EventAborted) != 1 {
		t.Fatalf("want one %s of txn %s naming api; events %v, last %+v", journal.EventAborted, txn, names(recs), recs[max(i, 0)].Details)
	}
	if w := h.serviceWeights(); w["api"] != 0 || w["aaa"] != 5 {
		t.Errorf("weights %v, want api 0 (its canary aborted), aaa 5 (untouched)", w)
	}
	_ = thaw()
}

// A check of api's canary (the primary's, key "") is judged while an
// edit makes aaa the primary, aaa's stepped canary of the same image at
// the same step: the check's result goes to api's rollout, the one
// judged, not to the rollout key "" names once the check ends (aaa's).
func TestACheckAcrossAPrimaryChangeLandsOnTheRolloutJudged(t *testing.T) {
	stepped := "\n    canary:\n      image: app:2\n      steps: [{weight: 30, pause: 2s}, {weight: 60, pause: 2s}]\n      analysis: {interval: 1s, failure_limit: 2, auto_promote: false}"
	h := newHarness(t, withAAA(twoCanaries(true), false))
	h.mustConverge()
	t0 := time.Now()
	h.analyze(t0)
	before := h.rolloutOf("")
	if before == nil || before.StepStarted.IsZero() || before.Step != 0 {
		t.Fatalf("api's rollout %+v, want its first step started", before)
	}
	old := h.d.readManifest()

	// The edit, while the check is judged (outside the daemon's lock).
	h.write(withAAACanary(twoCanaries(true), stepped))
	h.mustConverge()
	h.analyze(t0) // aaa's first step starts; no check is due for api at t0
	aaa := h.rolloutOf("")
	if aaa == nil || aaa.StepStarted.IsZero() || aaa.CanaryImage != before.CanaryImage || aaa.Step != before.Step {
		t.Fatalf("aaa's rollout %+v, want its first step of app:2 started", aaa)
	}
	api := h.rolloutOf("api")
	if api == nil {
		t.Fatal("api's rollout lost in the flip")
	}

	// The check that began before the edit ends now: key "" was api's.
	h.scrape(3)
	if _, ok := h.d.check(context.Background(), old, "", *before, analysis.Input{Now: t0.Add(time.Second)}); !ok {
		t.Fatal("the check was not recorded")
	}
	if got := h.rolloutOf(""); got.Checks != aaa.Checks {
		t.Errorf("aaa's rollout has %d checks, want %d: api's check landed on it", got.Checks, aaa.Checks)
	}
	if got := h.rolloutOf("api"); got == nil || got.Checks != api.Checks+1 {
		t.Errorf("api's rollout %+v, want one more check than %d", got, api.Checks)
	}
	recs := readEvents(t, h)
	i := max(lastIndex(recs, journal.EventCheckPassed), lastIndex(recs, journal.EventCheckFailed), lastIndex(recs, journal.EventCheckGrace))
	if i < 0 || recs[i].Details["service"] != "api" {
		t.Errorf("the check is not journaled as api's: %v", recs[max(i, 0)].Details)
	}
}

// The analysis decided api's next step (key "" then) from the manifest it
// read; an edit made aaa the primary, aaa's stepped canary at the same
// step, before the step's transaction read the manifest again: the step
// moves api's canary, the one judged, never aaa's (which has passed no
// check and whose pause has not run).
func TestAStepAcrossAPrimaryChangeMovesTheCanaryJudged(t *testing.T) {
	stepped := "\n    canary:\n      image: app:2\n      steps: [{weight: 30, pause: 2s}, {weight: 60, pause: 2s}]\n      analysis: {interval: 1s, failure_limit: 2, auto_promote: false}"
	h := newHarness(t, withAAA(twoCanaries(true), false))
	h.mustConverge()
	t0 := time.Now()
	h.analyze(t0)
	h.scrape(3)
	h.analyze(t0.Add(time.Second)) // api's first check passes
	if r := h.rolloutOf(""); r == nil || r.StepPasses == 0 || r.Step != 0 {
		t.Fatalf("api's rollout %+v, want a passed check at its first step", r)
	}
	old := h.d.readManifest()

	h.write(withAAACanary(twoCanaries(true), stepped))
	h.mustConverge()
	h.analyze(t0.Add(time.Second)) // aaa's first step starts
	if r := h.rolloutOf(""); r == nil || r.StepStarted.IsZero() || r.Step != 0 {
		t.Fatalf("aaa's rollout %+v, want its first step started", r)
	}
	// The look that began before the edit: api's pause has passed.
	h.scrape(1)
	h.d.analyzeOne(context.Background(), old, "", t0.Add(3*time.Second))
	h.mustConverge()
	if w := h.serviceWeights(); w["api"] != 60 || w["aaa"] != 30 {
		t.Errorf("weights %v, want api 60 (its step), aaa 30 (untouched)", w)
	}
}

// A daemon dies in a step's transaction (steps 10, 20, 50; the canary at
// 10%, the step to 20% written ahead) before nginx loaded it; while it is
// down the steps are edited to 5, 10, 50. Under the edited steps the
// pending step (the second) renders 10%, what nginx still serves: the
// route check on the manifest read now would say it took effect. The
// revision nginx serves is not the one the step made, so it did not: it
// is dropped (transition_aborted once), never journaled as a step to 20%
// that served no request.
func TestSettlingAStepThatNeverServedAfterAStepsEdit(t *testing.T) {
	canary := func(steps string) string {
		return "  canary:\n    image: app:2\n    steps: [" + steps + "]\n    analysis: {interval: 1s, failure_limit: 2, auto_promote: false}"
	}
	h := newHarness(t, fakeManifest("app:1", 2, canary("{weight: 10, pause: 2s}, {weight: 20, pause: 2s}, {weight: 50, pause: 2s}")))
	h.mustConverge()
	h.analyze(time.Now())
	if w := h.weight(); w != 10 {
		t.Fatalf("first step serves %d%%, want 10", w)
	}
	thaw := h.freezeAt("before", reconciler.OpReloadNginx, func() error {
		return h.d.advance(context.Background(), "alice", "", 1, func(string) {})
	})
	pending := h.state().Pending
	if pending == nil || pending.Kind != kindStep || pending.Step == nil || pending.Step.Weight != 20 {
		t.Fatalf("pending %+v, want the step to 20%% written ahead", pending)
	}
	// The crash; the steps edited while the daemon is down.
	h.d.jr.Close()
	h.write(fakeManifest("app:1", 2, canary("{weight: 5, pause: 2s}, {weight: 10, pause: 2s}, {weight: 50, pause: 2s}")))
	h.d = h.newDaemon()
	h.mustConverge()

	recs := readEvents(t, h)
	var mine []journal.Record
	for _, r := range recs {
		if r.Details["txn"] == pending.ID {
			mine = append(mine, r)
		}
	}
	if len(mine) != 1 || mine[0].Event != journal.EventTransitionAborted {
		t.Fatalf("records of the step %s: %v, want one transition_aborted; events %v", pending.ID, names(mine), names(recs))
	}
	if st := h.state(); st.Pending != nil || st.Rollout == nil || st.Rollout.Step != 0 {
		t.Fatalf("state after the restart: pending %+v rollout %+v, want the rollout at its first step", st.Pending, st.Rollout)
	}
	_ = thaw() // the crashed daemon's end; nothing of it is checked
}
