package analysis

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
)

var t0 = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// canary is app:2 in three 2s steps (10, 25, 50%) judged every 1s,
// aborted at 2 failed checks.
func canary(autoPromote bool) *manifest.Canary {
	sec := manifest.Duration(time.Second)
	return &manifest.Canary{Image: "app:2", Steps: []manifest.Step{{Weight: 10, Pause: 2 * sec}, {Weight: 25, Pause: 2 * sec}, {Weight: 50, Pause: 2 * sec}},
		Analysis: &manifest.Analysis{Interval: sec, FailureLimit: 2, AutoPromote: autoPromote}}
}

// at is a rollout whose step i started at t0, checked last at t0.
func at(i int, edit ...func(*Rollout)) Rollout {
	r := Rollout{CanaryImage: "app:2", Revision: "rev-c", Step: i, StepStarted: t0, LastCheck: t0}
	for _, e := range edit {
		e(&r)
	}
	return r
}

func passes(n int) func(*Rollout) { return func(r *Rollout) { r.StepPasses, r.Checks = n, n } }
func failures(n int) func(*Rollout) {
	return func(r *Rollout) {
		r.Failures, r.Checks = n, r.Checks+n
		r.Last = &api.AnalysisCheck{At: t0, Outcome: Fail, Reasons: []string{"Error rate exceeds 1% threshold"}}
	}
}

func lastCheck(d time.Duration) func(*Rollout) { return func(r *Rollout) { r.LastCheck = t0.Add(d) } }

func verdict(outcome string, reasons ...string) *Verdict {
	return &Verdict{Outcome: outcome, Reasons: reasons, Figures: map[string]any{"requests": 42}}
}

func checked(outcome string, now time.Time, reasons ...string) func(*Rollout) {
	return func(r *Rollout) {
		r.Checks++
		r.LastCheck = now
		r.Last = &api.AnalysisCheck{At: now, Outcome: outcome, Reasons: reasons, Figures: map[string]any{"requests": 42}}
	}
}

// Every transition of the walk: what Next decides and the progress after.
func TestNext(t *testing.T) {
	relFail := policy.Decision{Reasons: []string{"Relative verdict: canary error rate 3.00% is significantly higher than stable's 0.00%"}, Codes: []string{"relative_fail"}}
	relShort := policy.Decision{Reasons: []string{"Relative verdict: insufficient data"}, Codes: []string{"relative_insufficient_data"}}
	notStarted := Rollout{CanaryImage: "app:2"}
	tests := []struct {
		name   string
		r      Rollout
		auto   bool
		in     Input
		want   Action
		wantR  Rollout
		cmpOut bool // wantR checked (else: unchanged)
	}{
		// Starting a step.
		{name: "not started: look at what the route serves", r: notStarted, in: Input{Now: t0},
			want: Action{Kind: Observe}},
		{name: "not started, the route serves the step: its pause starts", r: notStarted,
			in:   Input{Now: t0, Serving: &Serving{Live: true, Image: "app:2", Weight: 10, Revision: "rev-c"}},
			want: Action{Kind: StartStep, Move: &StepMove{Image: "app:2", Step: 0, Steps: 3, Weight: 10}}, wantR: at(0), cmpOut: true},
		{name: "not started, the route serves another weight: wait", r: notStarted,
			in:   Input{Now: t0, Serving: &Serving{Live: true, Image: "app:2", Weight: 20, Revision: "rev-c"}},
			want: Action{Kind: Wait}},
		{name: "not started, the canary takes no traffic: wait", r: notStarted,
			in:   Input{Now: t0, Serving: &Serving{Image: "app:2", Weight: 10}},
			want: Action{Kind: Wait}},
		{name: "not started, another canary serves: wait", r: notStarted,
			in:   Input{Now: t0, Serving: &Serving{Live: true, Image: "app:3", Weight: 10}},
			want: Action{Kind: Wait}},
		{name: "a later step waits for its own weight", r: Rollout{CanaryImage: "app:2", Step: 1},
			in:   Input{Now: t0, Serving: &Serving{Live: true, Image: "app:2", Weight: 25, Revision: "rev-c"}},
			want: Action{Kind: StartStep, Move: &StepMove{Image: "app:2", Step: 1, Steps: 3, Weight: 25}}, wantR: at(1), cmpOut: true},

		// Checks.
		{name: "check not due yet: wait", r: at(0), in: Input{Now: t0.Add(999 * time.Millisecond)},
			want: Action{Kind: Wait}},
		{name: "check due at the interval", r: at(0), in: Input{Now: t0.Add(time.Second)},
			want: Action{Kind: Check}},
		{name: "a check is due even at the failure limit", r: at(0, failures(2)), in: Input{Now: t0.Add(time.Second), RetryAt: t0.Add(time.Hour)},
			want: Action{Kind: Check}},
		{name: "a pass inside the pause: counted, wait", r: at(0), in: Input{Now: t0.Add(time.Second), Verdict: verdict(Pass, "ignored on a pass")},
			want: Action{Kind: Wait}, wantR: at(0, func(r *Rollout) { r.StepPasses = 1 }, checked(Pass, t0.Add(time.Second))), cmpOut: true},
		{name: "a failure under the limit: counted with its reasons, wait", r: at(0), in: Input{Now: t0.Add(time.Second), Verdict: verdict(Fail, "Error rate exceeds 1% threshold")},
			want: Action{Kind: Wait}, wantR: at(0, func(r *Rollout) { r.Failures = 1 }, checked(Fail, t0.Add(time.Second), "Error rate exceeds 1% threshold")), cmpOut: true},
		{name: "no data on this daemon's first check: graced, not counted", r: at(0), in: Input{Now: t0.Add(time.Second), Verdict: &Verdict{Outcome: NoData, Reasons: []string{"scrape failed"}, Figures: map[string]any{"requests": 42}, First: true}},
			want: Action{Kind: Wait}, wantR: at(0, checked(Grace, t0.Add(time.Second), "scrape failed")), cmpOut: true},
		{name: "no data after the first check: a failure", r: at(0), in: Input{Now: t0.Add(time.Second), Verdict: verdict(NoData, "scrape failed")},
			want: Action{Kind: Wait}, wantR: at(0, func(r *Rollout) { r.Failures = 1 }, checked(NoData, t0.Add(time.Second), "scrape failed")), cmpOut: true},

		// The failure limit.
		{name: "the check that reaches the failure limit aborts, with its reasons", r: at(0, failures(1)), in: Input{Now: t0.Add(time.Second), Verdict: verdict(Fail, "Proxy error rate exceeds 1% threshold")},
			want:  Action{Kind: Abort, Reasons: []string{"2 of 2 allowed failed checks reached", "Proxy error rate exceeds 1% threshold"}},
			wantR: at(0, failures(1), func(r *Rollout) { r.Failures = 2 }, checked(Fail, t0.Add(time.Second), "Proxy error rate exceeds 1% threshold")), cmpOut: true},
		{name: "at the failure limit between checks: abort", r: at(0, failures(2)), in: Input{Now: t0.Add(500 * time.Millisecond)},
			want: Action{Kind: Abort, Reasons: []string{"2 of 2 allowed failed checks reached", "Error rate exceeds 1% threshold"}}},
		{name: "at the failure limit, a failed abort not due for retry: wait", r: at(0, failures(2)), in: Input{Now: t0.Add(500 * time.Millisecond), RetryAt: t0.Add(time.Second)},
			want: Action{Kind: Wait}},
		{name: "the failure limit wins over a finished pause", r: at(0, passes(3), failures(2), lastCheck(2*time.Second)), in: Input{Now: t0.Add(2 * time.Second)},
			want: Action{Kind: Abort, Reasons: []string{"2 of 2 allowed failed checks reached", "Error rate exceeds 1% threshold"}}},

		// The relative verdict, as Classify makes it.
		{name: "relative verdict fails: a counted failure", r: at(0, failures(1)),
			in:    Input{Now: t0.Add(time.Second), Verdict: &Verdict{Outcome: Classify(relFail, metrics.OK, metrics.OK), Reasons: relFail.Reasons}},
			want:  Action{Kind: Abort, Reasons: append([]string{"2 of 2 allowed failed checks reached"}, relFail.Reasons...)},
			wantR: at(0, failures(1), func(r *Rollout) { r.Failures = 2 }, checked(Fail, t0.Add(time.Second), relFail.Reasons...), func(r *Rollout) { r.Last.Figures = nil }), cmpOut: true},
		{name: "relative verdict short of data on the first check: graced", r: at(0),
			in:    Input{Now: t0.Add(time.Second), Verdict: &Verdict{Outcome: Classify(relShort, metrics.InsufficientData, metrics.OK), Reasons: relShort.Reasons, First: true}},
			want:  Action{Kind: Wait},
			wantR: at(0, checked(Grace, t0.Add(time.Second), relShort.Reasons...), func(r *Rollout) { r.Last.Figures = nil }), cmpOut: true},

		// Moving on.
		{name: "pause over after a pass: advance to the next step", r: at(0, passes(1)), in: Input{Now: t0.Add(2 * time.Second), Verdict: verdict(Pass)},
			want:  Action{Kind: Advance, Move: &StepMove{Image: "app:2", Step: 1, Steps: 3, Weight: 25}},
			wantR: at(0, passes(1), func(r *Rollout) { r.StepPasses = 2 }, checked(Pass, t0.Add(2*time.Second))), cmpOut: true},
		{name: "pause over between checks: advance", r: at(1, passes(1), lastCheck(2*time.Second)), in: Input{Now: t0.Add(2*time.Second + 500*time.Millisecond), RetryAt: t0.Add(time.Second)},
			want: Action{Kind: Advance, Move: &StepMove{Image: "app:2", Step: 2, Steps: 3, Weight: 50}}},
		{name: "pause over without a pass in the step: wait", r: at(0, func(r *Rollout) { r.LastCheck = t0.Add(2 * time.Second) }), in: Input{Now: t0.Add(2 * time.Second)},
			want: Action{Kind: Wait}},
		{name: "pause not over: wait", r: at(0, passes(1)), in: Input{Now: t0.Add(time.Second), Verdict: verdict(Pass)},
			want: Action{Kind: Wait}, wantR: at(0, passes(1), func(r *Rollout) { r.StepPasses = 2 }, checked(Pass, t0.Add(time.Second))), cmpOut: true},
		{name: "a failed step not due for retry: wait", r: at(0, passes(1)), in: Input{Now: t0.Add(2500 * time.Millisecond), RetryAt: t0.Add(3 * time.Second), Verdict: verdict(Pass)},
			want: Action{Kind: Wait}, wantR: at(0, passes(1), func(r *Rollout) { r.StepPasses = 2 }, checked(Pass, t0.Add(2500*time.Millisecond))), cmpOut: true},

		// The last step.
		{name: "last step passed, auto_promote: promote", r: at(2, passes(1)), auto: true, in: Input{Now: t0.Add(2 * time.Second), Verdict: verdict(Pass)},
			want:  Action{Kind: AutoPromote},
			wantR: at(2, passes(1), func(r *Rollout) { r.StepPasses, r.Completed = 2, true }, checked(Pass, t0.Add(2*time.Second))), cmpOut: true},
		{name: "a failed promotion is retried once due", r: at(2, passes(1), lastCheck(3*time.Second), func(r *Rollout) { r.Completed = true }), auto: true, in: Input{Now: t0.Add(3500 * time.Millisecond), RetryAt: t0.Add(3 * time.Second)},
			want: Action{Kind: AutoPromote}},
		{name: "last step passed, no auto_promote: complete", r: at(2, passes(1)), in: Input{Now: t0.Add(2 * time.Second), Verdict: verdict(Pass)},
			want:  Action{Kind: Complete},
			wantR: at(2, passes(1), func(r *Rollout) { r.StepPasses, r.Completed = 2, true }, checked(Pass, t0.Add(2*time.Second))), cmpOut: true},
		{name: "completed, no auto_promote: wait for swiftctl promote", r: at(2, passes(2), func(r *Rollout) { r.Completed = true }), in: Input{Now: t0.Add(5 * time.Second), Verdict: verdict(Pass)},
			want:  Action{Kind: Wait},
			wantR: at(2, passes(2), func(r *Rollout) { r.StepPasses, r.Completed = 3, true }, checked(Pass, t0.Add(5*time.Second))), cmpOut: true},
		{name: "the manifest lost steps: the last one is in force", r: at(4, passes(1), lastCheck(2*time.Second)), auto: true, in: Input{Now: t0.Add(2*time.Second + 500*time.Millisecond)},
			want: Action{Kind: AutoPromote}, wantR: at(2, passes(1), lastCheck(2*time.Second), func(r *Rollout) { r.Completed = true }), cmpOut: true},

		// Paused.
		{name: "paused: no check, no step, whatever is due", r: at(0, passes(1), func(r *Rollout) { r.Paused, r.PausedAt = true, t0 }), in: Input{Now: t0.Add(time.Hour)},
			want: Action{Kind: Wait}},
		{name: "paused at the failure limit: no abort", r: at(0, failures(2), func(r *Rollout) { r.Paused, r.PausedAt = true, t0 }), in: Input{Now: t0.Add(time.Hour)},
			want: Action{Kind: Wait}},
		{name: "paused before the step started: no look", r: Rollout{CanaryImage: "app:2", Paused: true, PausedAt: t0}, in: Input{Now: t0},
			want: Action{Kind: Wait}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.r
			got, gotR := Next(tt.r, canary(tt.auto), tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("action %+v (move %+v), want %+v (move %+v)", got, got.Move, tt.want, tt.want.Move)
			}
			want := tt.r
			if tt.cmpOut {
				want = tt.wantR
			}
			if !reflect.DeepEqual(gotR, want) {
				t.Errorf("progress\n got %+v (last %+v)\nwant %+v (last %+v)", gotR, gotR.Last, want, want.Last)
			}
			if !reflect.DeepEqual(tt.r, before) {
				t.Errorf("Next changed its input: %+v", tt.r)
			}
		})
	}
}

// A healthy walk, driven by Next alone on a 500ms tick: 10 → 25 → 50 →
// promoted, one check per interval, each step after its 2s pause (a
// later step starts on the tick after its move: 7s in all).
func TestNextWalksToPromotion(t *testing.T) {
	c := canary(true)
	r, now := Rollout{CanaryImage: "app:2"}, t0
	var weights []int
	for range 100 {
		act, next := Next(r, c, Input{Now: now})
		switch act.Kind {
		case Observe:
			act, next = Next(r, c, Input{Now: now, Serving: &Serving{Live: true, Image: "app:2", Weight: c.Steps[r.Step].Weight}})
			if act.Kind != StartStep {
				t.Fatalf("the route serves step %d: %+v", r.Step, act)
			}
			weights = append(weights, act.Move.Weight)
		case Check:
			act, next = Next(r, c, Input{Now: now, Verdict: &Verdict{Outcome: Pass}})
		}
		r = next
		switch act.Kind {
		case Advance:
			r = *r.At(act.Move)
		case AutoPromote:
			if !slices.Equal(weights, []int{10, 25, 50}) || r.Checks != 6 || now.Sub(t0) != 7*time.Second {
				t.Fatalf("promoted after weights %v, %d checks, %v", weights, r.Checks, now.Sub(t0))
			}
			return
		case Abort, Complete:
			t.Fatalf("a healthy canary: %+v", act)
		}
		now = now.Add(500 * time.Millisecond)
	}
	t.Fatalf("never promoted: %+v", r)
}
