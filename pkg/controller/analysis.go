package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/analysis"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// Progressive delivery: a canary with services.canary.steps walks its
// weight up by itself. The analysis loop judges the canary revision's own
// window every analysis.interval with the canary-safety policy; a step's
// next weight is a transaction (kindStep) like a promotion, the promotion
// after the last step is d.promote itself, and an abort is d.rollbackWith,
// so every change of what runs is a plan behind the gate, journaled once
// when nginx serves it. The progress is State.Rollout, saved in
// state.json, so a restarted daemon carries on.

// analysisMem is what the analysis keeps in memory only: how many checks
// this process made of the rollout (the first may find no data without
// failing: the grace), and when a failed step or promotion may be retried.
type analysisMem struct {
	image   string
	checks  int
	retryAt time.Time
}

func stepText(mv *analysis.StepMove) string {
	return fmt.Sprintf("Step %d/%d: %d%% of traffic on canary %s", mv.Step+1, mv.Steps, mv.Weight, mv.Image)
}

func stepDetails(mv *analysis.StepMove, txn string) map[string]any {
	det := map[string]any{"image": mv.Image, "step": mv.Step + 1, "steps": mv.Steps, "weight": mv.Weight}
	if txn != "" {
		det["txn"] = txn
	}
	return det
}

// stepStartedLocked starts the pause of the step nginx now serves.
func (d *Daemon) stepStartedLocked(now time.Time) {
	if r := d.state.Rollout; r != nil {
		r.StepStarted, r.LastCheck = now.UTC(), now.UTC()
	}
}

// analysisTick is how often the analysis loop looks: a fraction of the
// interval, so a check or a step is at most that late.
func analysisTick(interval time.Duration) time.Duration {
	return min(max(interval/10, 50*time.Millisecond), time.Second)
}

// analysisLoop runs analyze until ctx ends. Only a stepped canary makes
// it do anything; otherwise a tick costs a manifest lookup.
func (d *Daemon) analysisLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	period := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if m := d.manifestNow(); m != nil && m.Main().Canary != nil && m.Main().Canary.Analysis != nil {
				if p := analysisTick(m.Main().Canary.Analysis.Interval.D()); p != period {
					period = p
					tick.Reset(p)
				}
			}
			d.analyze(ctx, now)
		}
	}
}

// activeRolloutLocked is the rollout of m's stepped canary, started if
// need be, or nil when none is under way: no steps, down, rolled back or
// aborted, promoted, or a transition in flight.
func (d *Daemon) activeRolloutLocked(m *manifest.Manifest) *analysis.Rollout {
	c := m.Main().Canary
	s := d.state
	switch {
	case c == nil || len(c.Steps) == 0 || c.Analysis == nil || s.Down || s.Pending != nil:
		return nil
	case s.RolledBack != nil && s.RolledBack.CanaryImage == c.Image:
		return nil
	case s.Promoted != nil && s.Promoted.Image == c.Image && s.Promoted.ManifestStable == m.Main().Image:
		return nil
	case c.Image == m.Main().Image:
		return nil
	}
	if s.Rollout == nil || s.Rollout.CanaryImage != c.Image {
		d.state.Rollout = &analysis.Rollout{CanaryImage: c.Image}
		logErr(d.log, "save state", d.saveStateLocked())
	}
	if d.an.image != c.Image {
		d.an = analysisMem{image: c.Image}
	}
	return d.state.Rollout
}

// analyze is one look of the analysis at time now: start the step nginx
// serves, make the check that is due, abort at the failure limit, move to
// the next step or promote when the step's pause has passed. Tests call it
// with a clock of their own.
func (d *Daemon) analyze(ctx context.Context, now time.Time) {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
	defer func() {
		if p := recover(); p != nil { // the daemon never crashes
			d.log.Error("analysis panicked", zap.Any("panic", p), zap.Stack("stack"))
		}
	}()
	m := d.manifestNow()
	if m == nil {
		return
	}
	d.mu.Lock()
	r := d.activeRolloutLocked(m)
	if r == nil || r.Paused {
		d.mu.Unlock()
		return
	}
	cur := *r
	d.mu.Unlock()
	c, a := m.Main().Canary, m.Main().Canary.Analysis
	if cur.Step >= len(c.Steps) { // the manifest lost steps meanwhile
		cur.Step = len(c.Steps) - 1
	}
	if cur.StepStarted.IsZero() {
		d.startStep(ctx, m, cur, now)
		return
	}
	interval := a.Interval.D()
	if now.Sub(cur.LastCheck) >= interval {
		var ok bool
		if cur, ok = d.check(ctx, m, cur, now); !ok {
			return
		}
	}
	if cur.Failures >= a.FailureLimit {
		if now.After(d.retryAt()) {
			d.autoAbort(ctx, m, cur, now)
		}
		return
	}
	if now.Sub(cur.StepStarted) < c.Steps[cur.Step].Pause.D() || cur.StepPasses == 0 || !now.After(d.retryAt()) {
		return
	}
	if cur.Step+1 < len(c.Steps) {
		if err := d.advance(ctx, "", cur.Step+1, func(string) {}); err != nil {
			d.log.Warn("next canary step not applied; retrying after an interval", zap.Error(err))
			d.setRetry(now.Add(interval))
		}
		return
	}
	if !a.AutoPromote {
		d.mu.Lock()
		if r := d.state.Rollout; r != nil && r.CanaryImage == cur.CanaryImage && !r.Completed {
			r.Completed = true
			logErr(d.log, "save state", d.saveStateLocked())
			d.eventLocked(journal.EventStepsCompleted, fmt.Sprintf("all %d steps of canary %s passed; waiting for swiftctl promote", len(c.Steps), c.Image), "",
				map[string]any{"image": c.Image, "steps": len(c.Steps)})
		}
		d.mu.Unlock()
		return
	}
	d.mu.Lock()
	if r := d.state.Rollout; r != nil {
		r.Completed = true
	}
	d.mu.Unlock()
	// The same gated transaction as `swiftctl promote`, canary safety
	// included; a denial is journaled there and retried an interval on.
	if err := d.promote(ctx, "", func(string) {}); err != nil {
		d.log.Warn("automatic promotion not applied; retrying after an interval", zap.Error(err))
		d.setRetry(now.Add(interval))
	}
}

func (d *Daemon) retryAt() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.an.retryAt
}

func (d *Daemon) setRetry(t time.Time) {
	d.mu.Lock()
	d.an.retryAt = t
	d.mu.Unlock()
}

// startStep starts the step's pause once nginx serves its weight to the
// rollout's canary. The first step is journaled here (it took effect
// through a reconcile); later ones by their transaction's commit.
func (d *Daemon) startStep(ctx context.Context, m *manifest.Manifest, cur analysis.Rollout, now time.Time) {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
	sv, err := d.target.Serving(ctx, m)
	if err != nil {
		return
	}
	c := m.Main().Canary
	want := c.Steps[cur.Step].Weight
	if !sv.CanaryLive || sv.CanaryImage != c.Image || sv.CanaryWeight != want {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.state.Rollout
	if r == nil || r.CanaryImage != cur.CanaryImage || !r.StepStarted.IsZero() || r.Step != cur.Step {
		return // something moved it meanwhile
	}
	r.Revision = sv.CanaryRevision
	d.stepStartedLocked(now)
	if r.Step == 0 {
		mv := &analysis.StepMove{Image: c.Image, Step: 0, Steps: len(c.Steps), Weight: want}
		d.eventLocked(journal.EventCanaryStep, stepText(mv), "", stepDetails(mv, ""))
	}
	logErr(d.log, "save state", d.saveStateLocked())
}

// check judges the canary revision's window once, records and journals
// the verdict, and returns the rollout after it.
func (d *Daemon) check(ctx context.Context, m *manifest.Manifest, cur analysis.Rollout, now time.Time) (analysis.Rollout, bool) {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
	rev := cur.Revision
	dec, st := d.target.Judge(ctx, m, rev)
	d.metrics.observeDecision(dec)
	d.decision(dec, "")
	proxyOutcome := st.Proxy.Outcome
	if st.NoProxy {
		proxyOutcome = metrics.OK // no proxy view on this target: the app's figures decide
	}
	outcome := analysis.Classify(dec, st.Outcome, proxyOutcome)
	figures := map[string]any{"requests": st.Requests}
	if !st.NoProxy {
		figures["proxy_requests"] = st.Proxy.Requests
	}
	if st.Relative != nil {
		figures["relative"] = st.Relative
	}
	if st.Outcome == metrics.OK {
		figures["error_rate"], figures["p99_latency_ms"], figures["req_per_sec"] = targets.Round4(st.ErrorRate), targets.Round2(st.P99Ms), targets.Round2(st.ReqPerSec)
	}
	if !st.NoProxy && st.Proxy.Outcome == metrics.OK {
		figures["proxy_error_rate"], figures["proxy_p99_latency_ms"] = targets.Round4(st.Proxy.ErrorRate), targets.Round2(st.Proxy.P99Ms)
	}
	a := m.Main().Canary.Analysis
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.state.Rollout
	if r == nil || r.CanaryImage != cur.CanaryImage || r.Step != cur.Step || r.Paused || d.state.Pending != nil {
		return analysis.Rollout{}, false // it moved on while the policy judged
	}
	if outcome == analysis.NoData && d.an.checks == 0 {
		// The first check of a rollout, or of this daemon (its windows
		// start empty), may find no data: one interval of grace.
		outcome = analysis.Grace
	}
	d.an.checks++
	r.Checks++
	r.LastCheck = now.UTC()
	switch outcome {
	case analysis.Pass:
		r.StepPasses++
	case analysis.Fail, analysis.NoData:
		r.Failures++
	}
	var reasons []string
	if outcome != analysis.Pass {
		reasons = dec.Reasons
	}
	r.Last = &api.AnalysisCheck{At: now.UTC(), Outcome: outcome, Reasons: reasons, Figures: figures}
	logErr(d.log, "save state", d.saveStateLocked())
	c := m.Main().Canary
	weight := c.Steps[r.Step].Weight
	details := map[string]any{"image": r.CanaryImage, "revision": rev, "step": r.Step + 1, "steps": len(c.Steps), "weight": weight,
		"outcome": outcome, "failed_checks": r.Failures, "failure_limit": a.FailureLimit, "figures": figures}
	where := fmt.Sprintf("step %d/%d at %d%%", r.Step+1, len(c.Steps), weight)
	switch outcome {
	case analysis.Pass:
		d.eventLocked(journal.EventCheckPassed, "canary check passed ("+where+")", "", details)
	case analysis.Grace:
		details["reasons"] = reasons
		d.eventLocked(journal.EventCheckGrace, "canary check found no data during its grace interval, not counted ("+where+"): "+strings.Join(reasons, "; "), "", details)
	default:
		details["reasons"] = reasons
		d.eventLocked(journal.EventCheckFailed, fmt.Sprintf("canary check failed %d/%d (%s): %s", r.Failures, a.FailureLimit, where, strings.Join(reasons, "; ")), "", details)
	}
	return *r, true
}

// autoAbort rolls the canary back for its failed checks.
func (d *Daemon) autoAbort(ctx context.Context, m *manifest.Manifest, cur analysis.Rollout, now time.Time) {
	a := m.Main().Canary.Analysis
	reasons := []string{fmt.Sprintf("%d of %d allowed failed checks reached", cur.Failures, a.FailureLimit)}
	if cur.Last != nil {
		reasons = append(reasons, cur.Last.Reasons...)
	}
	if err := d.rollbackWith(ctx, "", reasons, func(string) {}); err != nil {
		d.log.Error("automatic abort not applied; retrying after an interval", zap.Error(err))
		d.setRetry(now.Add(a.Interval.D()))
	}
}

// advance moves the canary to steps[to] through a transaction: gated (it
// sends the canary more traffic), committed and journaled once nginx
// serves the new weight.
func (d *Daemon) advance(ctx context.Context, user string, to int, progress reconciler.Progress) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	m, err := d.transitionStart(ctx)
	if err != nil {
		return err
	}
	c := m.Main().Canary
	d.mu.Lock()
	r := d.activeRolloutLocked(m)
	ok := r != nil && !r.StepStarted.IsZero() && r.Step+1 == to && to < len(c.Steps)
	d.mu.Unlock()
	if !ok {
		return errors.New("no canary step to move to: the rollout moved on")
	}
	mv := &analysis.StepMove{Image: c.Image, Step: to, Steps: len(c.Steps), Weight: c.Steps[to].Weight}
	t := &Transition{ID: newID(), Kind: kindStep, Started: time.Now().UTC(), User: user, Step: mv}
	if err := d.transact(ctx, m, t, progress); err != nil {
		return err
	}
	progress(stepText(mv))
	return nil
}
