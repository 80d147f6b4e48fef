package analysis

import (
	"fmt"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// Kind is what the walk does next.
type Kind string

const (
	// Wait: nothing is due (paused, the step's pause runs, a retry is
	// not due, the route does not serve the step yet, or the last step
	// completed and waits for `swiftctl promote`).
	Wait Kind = "wait"
	// Observe: the step has not started: look at what the route serves
	// and call Next again with Input.Serving.
	Observe Kind = "observe"
	// StartStep: the route serves the step's weight: record the new
	// progress (its pause starts now); the first step is journaled here,
	// later ones by the transaction that moved them.
	StartStep Kind = "start_step"
	// Check: a check is due: judge the canary's window and call Next
	// again with Input.Verdict; the new progress records the check.
	Check Kind = "check"
	// Abort: the failure limit is reached: roll the canary back with
	// Action.Reasons.
	Abort Kind = "abort"
	// Advance: the step's pause passed with a passing check: move to
	// Action.Move through a gated transaction.
	Advance Kind = "advance"
	// Complete: the last step passed and the manifest does not promote
	// by itself: record it (once) and wait for `swiftctl promote`.
	Complete Kind = "complete"
	// AutoPromote: the last step passed: promote the canary through the
	// same gated transaction as `swiftctl promote`.
	AutoPromote Kind = "auto_promote"
)

// Action is what Next decided.
type Action struct {
	Kind    Kind
	Move    *StepMove // StartStep: the step started; Advance: the step to move to
	Reasons []string  // Abort: why
}

// Serving is what the route serves the canary, as the target sees it.
type Serving struct {
	Live     bool // the canary takes traffic
	Image    string
	Weight   int
	Revision string // the canary's config hash
}

// Verdict is a check judged on the canary's window.
type Verdict struct {
	Outcome string // Classify's: Pass, Fail or NoData
	Reasons []string
	Figures map[string]any
	// First: this daemon has made no check of the rollout yet. Its
	// windows start empty, so no data then is graced, not counted.
	First bool
}

// Input is what Next decides on besides the progress and the manifest.
type Input struct {
	Now time.Time
	// RetryAt: a failed step, promotion or abort is tried again only
	// after it.
	RetryAt time.Time
	// Serving is what the route serves, when the step waits to start.
	Serving *Serving
	// Verdict is the check just judged, after Next said Check.
	Verdict *Verdict
}

// Next is what the walk of canary c does next from progress r, and the
// progress after it. It decides only: the caller runs the action and
// saves the progress. c must have steps and an analysis.
func Next(r Rollout, c *manifest.Canary, in Input) (Action, Rollout) {
	if r.Paused || len(c.Steps) == 0 || c.Analysis == nil {
		return Action{Kind: Wait}, r
	}
	if r.Step >= len(c.Steps) { // the manifest lost steps meanwhile
		r.Step = len(c.Steps) - 1
	}
	step, a := c.Steps[r.Step], c.Analysis
	if r.StepStarted.IsZero() {
		sv := in.Serving
		switch {
		case sv == nil:
			return Action{Kind: Observe}, r
		case !sv.Live || sv.Image != c.Image || sv.Weight != step.Weight:
			return Action{Kind: Wait}, r
		}
		r.Revision = sv.Revision
		return Action{Kind: StartStep, Move: MoveTo(c, r.Step)}, r.Started(in.Now)
	}
	if in.Verdict != nil {
		r = r.record(*in.Verdict, in.Now)
	} else if in.Now.Sub(r.LastCheck) >= a.Interval.D() {
		return Action{Kind: Check}, r
	}
	if r.Failures >= a.FailureLimit {
		if !in.Now.After(in.RetryAt) {
			return Action{Kind: Wait}, r
		}
		reasons := []string{fmt.Sprintf("%d of %d allowed failed checks reached", r.Failures, a.FailureLimit)}
		if r.Last != nil {
			reasons = append(reasons, r.Last.Reasons...)
		}
		return Action{Kind: Abort, Reasons: reasons}, r
	}
	if in.Now.Sub(r.StepStarted) < step.Pause.D() || r.StepPasses == 0 || !in.Now.After(in.RetryAt) {
		return Action{Kind: Wait}, r
	}
	if r.Step+1 < len(c.Steps) {
		return Action{Kind: Advance, Move: MoveTo(c, r.Step+1)}, r
	}
	if !a.AutoPromote {
		if r.Completed {
			return Action{Kind: Wait}, r
		}
		r.Completed = true
		return Action{Kind: Complete}, r
	}
	r.Completed = true
	return Action{Kind: AutoPromote}, r
}

// record is r after the check v at now: counted (a pass in the step, a
// failure or no data over the rollout; a graced one not at all) and kept
// as the last check.
func (r Rollout) record(v Verdict, now time.Time) Rollout {
	outcome := v.Outcome
	if outcome == NoData && v.First {
		outcome = Grace
	}
	r.Checks++
	r.LastCheck = now.UTC()
	switch outcome {
	case Pass:
		r.StepPasses++
	case Fail, NoData:
		r.Failures++
	}
	var reasons []string
	if outcome != Pass {
		reasons = v.Reasons
	}
	r.Last = &api.AnalysisCheck{At: now.UTC(), Outcome: outcome, Reasons: reasons, Figures: v.Figures}
	return r
}
