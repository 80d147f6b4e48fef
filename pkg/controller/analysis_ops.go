package controller

// The operator's side of a stepped canary: promote [--full], abort,
// pause and resume, and the rollout as status reports it.

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/analysis"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
)

// promoteRequest is `swiftctl promote [SERVICE] [--full]` (service ""
// is the primary's canary). Without steps, or with full, or at the last
// step, it is the promotion; otherwise it moves the canary one step on,
// gated by the canary-safety policy as a promotion is.
func (d *Daemon) promoteRequest(ctx context.Context, user, service string, full bool, progress reconciler.Progress) error {
	m := d.readManifest()
	if m == nil {
		return errors.New("no manifest loaded")
	}
	key, err := canaryKey(m, service)
	if err != nil {
		return err
	}
	d.mu.Lock()
	r := d.activeRolloutLocked(m, key)
	var cur analysis.Rollout
	if r != nil {
		cur = *r
	}
	d.mu.Unlock()
	if full || r == nil || cur.Step+1 >= len(canarySpec(m, key).Canary.Steps) {
		return d.promote(ctx, user, key, progress)
	}
	if cur.StepStarted.IsZero() {
		return errors.New(keyLabel(key) + "the canary's current step has not taken effect yet")
	}
	dec, _ := d.target.Judge(ctx, m, key, cur.Revision)
	d.metrics.observeDecision(dec)
	d.decision(dec, user)
	if !dec.Allowed {
		d.event(journal.EventPromoteDenied, keyLabel(key)+"next step of "+cur.CanaryImage+" denied: "+strings.Join(dec.Reasons, "; "), user,
			withServiceDetail(map[string]any{"reasons": dec.Reasons, "policy": dec.Policy}, key))
		return &promoteDenied{reasons: dec.Reasons}
	}
	progress("Canary safety: PASS")
	return d.advance(ctx, user, key, cur.Step+1, progress)
}

// abortCanary is `swiftctl abort [SERVICE]`: roll the canary back now,
// journaled as aborted with the operator's reason.
func (d *Daemon) abortCanary(ctx context.Context, user, service, reason string, progress reconciler.Progress) error {
	if reason == "" {
		reason = "aborted by an operator"
	}
	m := d.readManifest()
	if m == nil {
		return errors.New("no manifest loaded")
	}
	key, err := canaryKey(m, service)
	if err != nil {
		return err
	}
	return d.rollbackWith(ctx, user, key, []string{reason}, progress)
}

// setPaused is `swiftctl pause` / `resume` [SERVICE]. A paused rollout
// holds its weight: no checks, no steps, and the pause of the step does
// not run.
func (d *Daemon) setPaused(user, service string, paused bool) error {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
	m := d.readManifest()
	if m == nil {
		return errors.New("no manifest loaded")
	}
	key, err := canaryKey(m, service)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.activeRolloutLocked(m, key)
	if r == nil {
		return errors.New("no stepped canary is rolling out (services.canary.steps)")
	}
	change, event, msg := r.Pause, journal.EventRolloutPaused, keyLabel(key)+"rollout of canary "+r.CanaryImage+" paused: its weight holds, no checks run"
	if !paused {
		change, event, msg = r.Resume, journal.EventRolloutResumed, keyLabel(key)+"rollout of canary "+r.CanaryImage+" resumed"
	}
	next, err := change(time.Now())
	if err != nil {
		return err
	}
	*r = next
	if err := d.saveStateLocked(); err != nil {
		return err
	}
	d.eventLocked(event, msg, user, withServiceDetail(map[string]any{"image": r.CanaryImage, "step": r.Step + 1}, key))
	return nil
}

// rolloutStatus describes the progress of the stepped canary of m's
// service key (canaries.go: "" the primary's), or its abort.
func (d *Daemon) rolloutStatus(m *manifest.Manifest, key string, now time.Time) *api.Rollout {
	svc := canarySpec(m, key)
	if svc == nil {
		return nil
	}
	c := svc.Canary
	if c == nil || len(c.Steps) == 0 || c.Analysis == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	a := c.Analysis
	out := &api.Rollout{Image: c.Image, Steps: len(c.Steps), FailureLimit: a.FailureLimit, Interval: a.Interval.D().String(), AutoPromote: a.AutoPromote}
	s, _ := d.state.rekeyed(m) // key "" is m's primary
	if rb := s.rolledBackOf(key); rb != nil && rb.CanaryImage == c.Image {
		out.Phase = api.PhaseAborted
		out.Aborted = &api.Abort{At: rb.At, By: rb.User, Reasons: rb.Reasons}
		if !rb.Aborted {
			out.Aborted.Reasons = []string{"rolled back"}
		}
		if r := s.rolloutOf(key); r != nil && r.CanaryImage == c.Image {
			out.Step, out.Failures, out.LastCheck = r.Step+1, r.Failures, r.Last
		}
		return out
	}
	r, p := s.rolloutOf(key), s.promotedOf(m, key)
	if r == nil || r.CanaryImage != c.Image || (p != nil && p.Image == c.Image) {
		return nil
	}
	step := min(r.Step, len(c.Steps)-1)
	out.Step, out.Weight, out.StepPasses, out.Failures, out.LastCheck = step+1, c.Steps[step].Weight, r.StepPasses, r.Failures, r.Last
	switch {
	case r.Paused:
		out.Phase = api.PhasePaused
	case r.StepStarted.IsZero():
		out.Phase = api.PhaseStarting
	case r.Completed:
		out.Phase = api.PhaseCompleted
	default:
		out.Phase = api.PhaseProgressing
		next := r.StepStarted.Add(c.Steps[step].Pause.D())
		out.NextAt = &next
		out.NextIn = max(next.Sub(now), 0).Round(time.Second).String()
	}
	return out
}
