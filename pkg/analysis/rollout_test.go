package analysis

import (
	"errors"
	"testing"
	"time"
)

func TestWeight(t *testing.T) {
	c := canary(true)
	for _, tt := range []struct {
		name string
		r    *Rollout
		want int
	}{
		{"no rollout", nil, 0},
		{"step 2", &Rollout{CanaryImage: "app:2", Step: 1}, 25},
		{"another canary's rollout", &Rollout{CanaryImage: "app:3", Step: 1}, 0},
		{"a step the manifest lost", &Rollout{CanaryImage: "app:2", Step: 3}, 0},
	} {
		if got := tt.r.Weight(c); got != tt.want {
			t.Errorf("%s: weight %d, want %d", tt.name, got, tt.want)
		}
	}
	if got := (&Rollout{CanaryImage: "app:2"}).Weight(nil); got != 0 {
		t.Errorf("no canary: weight %d", got)
	}
}

// At moves the progress to a step, not started yet; its counts over the
// rollout stay, those of the step start again; another canary starts anew.
func TestAt(t *testing.T) {
	r := at(0, passes(2), failures(1), func(r *Rollout) { r.Completed = true })
	n := r.At(&StepMove{Image: "app:2", Step: 1, Steps: 3, Weight: 25})
	if n.Step != 1 || !n.StepStarted.IsZero() || n.StepPasses != 0 || n.Completed || n.Failures != 1 || n.Checks != r.Checks || n.Revision != "rev-c" {
		t.Errorf("at step 2: %+v", n)
	}
	if r.Step != 0 || r.StepPasses != 2 {
		t.Errorf("At changed its receiver: %+v", r)
	}
	if n := r.At(&StepMove{Image: "app:3", Step: 1}); n.CanaryImage != "app:3" || n.Failures != 0 || n.Checks != 0 {
		t.Errorf("another canary: %+v", n)
	}
	if n := (*Rollout)(nil).At(&StepMove{Image: "app:2", Step: 1}); n.CanaryImage != "app:2" || n.Step != 1 {
		t.Errorf("from none: %+v", n)
	}
}

// Pause holds; resume gives the step back the time it was paused, and
// the next check is an interval after the resume.
func TestPauseResume(t *testing.T) {
	r := at(1, passes(1))
	p, err := r.Pause(t0.Add(500 * time.Millisecond))
	if err != nil || !p.Paused || !p.PausedAt.Equal(t0.Add(500*time.Millisecond)) {
		t.Fatalf("pause: %+v, %v", p, err)
	}
	if _, err := p.Pause(t0.Add(time.Second)); !errors.Is(err, ErrPaused) {
		t.Errorf("pausing twice: %v", err)
	}
	if act, _ := Next(p, canary(true), Input{Now: t0.Add(time.Hour)}); act.Kind != Wait {
		t.Errorf("paused: %+v", act)
	}
	res, err := p.Resume(t0.Add(10500 * time.Millisecond))
	if err != nil || res.Paused || !res.PausedAt.IsZero() {
		t.Fatalf("resume: %+v, %v", res, err)
	}
	if !res.StepStarted.Equal(t0.Add(10*time.Second)) || !res.LastCheck.Equal(t0.Add(10500*time.Millisecond)) {
		t.Errorf("resume: step started %v, last check %v; want the paused 10s not counted", res.StepStarted, res.LastCheck)
	}
	// 1.5s of the 2s pause had passed before the pause: 0.5s are left.
	if act, _ := Next(res, canary(true), Input{Now: t0.Add(11400 * time.Millisecond)}); act.Kind != Wait {
		t.Errorf("before the rest of the pause: %+v", act)
	}
	if act, _ := Next(res, canary(true), Input{Now: t0.Add(12 * time.Second), Verdict: &Verdict{Outcome: Pass}}); act.Kind != Advance {
		t.Errorf("after the rest of the pause: %+v", act)
	}
	if _, err := res.Resume(t0); !errors.Is(err, ErrNotPaused) {
		t.Errorf("resuming a running rollout: %v", err)
	}
	// Paused before its step started: nothing to give back.
	p, _ = Rollout{CanaryImage: "app:2"}.Pause(t0)
	if res, _ := p.Resume(t0.Add(time.Minute)); !res.StepStarted.IsZero() {
		t.Errorf("resume of a step not started: %+v", res)
	}
}
