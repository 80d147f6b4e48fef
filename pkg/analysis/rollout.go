// Package analysis is the decisions of a stepped canary's walk: its
// progress (Rollout, saved in state.json), the step transitions
// (StepMove), what the walk does next from its progress, the manifest's
// steps and analysis, the judged verdict and the time (Next), pause and
// resume, and a check's outcome from the canary-safety decision
// (Classify). It runs nothing: the controller holds the lock, observes
// the route, judges through the target, journals, and runs the action
// Next names through its transactions. It never imports the controller.
package analysis

import (
	"errors"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// Rollout is a stepped canary's progress. The JSON names are those of
// state.json: a daemon reads the file an older one wrote.
type Rollout struct {
	CanaryImage string `json:"canary_image"`
	// Revision is the config hash of the canary being judged, from the
	// containers the route sends the canary's share to.
	Revision string `json:"revision,omitempty"`
	// Step indexes services.canary.steps: the step in force.
	Step int `json:"step"`
	// StepStarted is when the route began serving the step's weight; zero
	// until it does. The pause counts from here.
	StepStarted time.Time `json:"step_started,omitzero"`
	LastCheck   time.Time `json:"last_check,omitzero"`
	Checks      int       `json:"checks"`      // over the rollout
	StepPasses  int       `json:"step_passes"` // in the step in force
	Failures    int       `json:"failures"`    // over the rollout
	Paused      bool      `json:"paused,omitempty"`
	PausedAt    time.Time `json:"paused_at,omitzero"`
	// Completed: the last step's pause passed with its checks.
	Completed bool               `json:"completed,omitempty"`
	Last      *api.AnalysisCheck `json:"last,omitempty"`
}

// StepMove is a step transition: the canary goes to steps[Step].
type StepMove struct {
	Image  string `json:"image"`
	Step   int    `json:"step"` // index
	Steps  int    `json:"steps"`
	Weight int    `json:"weight"`
}

// MoveTo is the transition of c's canary to steps[to].
func MoveTo(c *manifest.Canary, to int) *StepMove {
	return &StepMove{Image: c.Image, Step: to, Steps: len(c.Steps), Weight: c.Steps[to].Weight}
}

// Weight is the step's weight in force for canary c, 0 when the rollout
// is not c's (another canary image, no steps). Nil-safe.
func (r *Rollout) Weight(c *manifest.Canary) int {
	if r == nil || c == nil || len(c.Steps) == 0 || r.CanaryImage != c.Image || r.Step < 0 || r.Step >= len(c.Steps) {
		return 0
	}
	return c.Steps[r.Step].Weight
}

// At returns a copy of r moved to mv's step, not started yet: what a
// step's transaction records once it took effect.
func (r *Rollout) At(mv *StepMove) *Rollout {
	n := Rollout{CanaryImage: mv.Image}
	if r != nil && r.CanaryImage == mv.Image {
		n = *r
	}
	n.Step, n.StepStarted, n.StepPasses, n.Completed = mv.Step, time.Time{}, 0, false
	return &n
}

// Started is r with the pause of its step starting at now: the route
// serves the step's weight. The next check is an interval on.
func (r Rollout) Started(now time.Time) Rollout {
	r.StepStarted, r.LastCheck = now.UTC(), now.UTC()
	return r
}

// Errors of pause and resume.
var (
	ErrPaused    = errors.New("the rollout is already paused")
	ErrNotPaused = errors.New("the rollout is not paused")
)

// Pause is `swiftctl pause` at now: the weight holds, no checks run and
// the step's pause stops counting.
func (r Rollout) Pause(now time.Time) (Rollout, error) {
	if r.Paused {
		return r, ErrPaused
	}
	r.Paused, r.PausedAt = true, now.UTC()
	return r, nil
}

// Resume is `swiftctl resume` at now: the step's pause goes on where it
// stopped (the paused time does not count), the next check an interval on.
func (r Rollout) Resume(now time.Time) (Rollout, error) {
	if !r.Paused {
		return r, ErrNotPaused
	}
	now = now.UTC()
	if !r.StepStarted.IsZero() {
		r.StepStarted = r.StepStarted.Add(now.Sub(r.PausedAt))
	}
	r.Paused, r.PausedAt, r.LastCheck = false, time.Time{}, now
	return r, nil
}
