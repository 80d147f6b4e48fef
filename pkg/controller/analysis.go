package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/analysis"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// Progressive delivery: a canary with services.canary.steps walks its
// weight up by itself. What the walk does next is decided by
// pkg/analysis (analysis.Next) from the progress, the manifest, the
// verdict and the time; this file is the glue that runs it: it holds
// d.mu over the progress (State.Rollout, saved in state.json, so a
// restarted daemon carries on), observes the route and judges the canary
// through the target, journals, and runs the action. A step's next weight
// is a transaction (kindStep) like a promotion, the promotion after the
// last step is d.promote itself, and an abort is d.rollbackWith, so every
// change of what runs is a plan behind the gate, journaled once when the
// route serves it.

// analysisMem is what the analysis keeps in memory only: how many checks
// this process made of the rollout (the first may find no data without
// failing: the grace), and when a failed step or promotion may be retried.
type analysisMem struct {
	image   string
	checks  int
	retryAt time.Time
}

func stepText(key string, mv *analysis.StepMove) string {
	return fmt.Sprintf("%sStep %d/%d: %d%% of traffic on canary %s", keyLabel(key), mv.Step+1, mv.Steps, mv.Weight, mv.Image)
}

func stepDetails(key string, mv *analysis.StepMove, txn string) map[string]any {
	det := map[string]any{"image": mv.Image, "step": mv.Step + 1, "steps": mv.Steps, "weight": mv.Weight}
	if txn != "" {
		det["txn"] = txn
	}
	withServiceDetail(det, key)
	return det
}

// withServiceDetail names the service of a canary other than the
// primary's in an event's details.
func withServiceDetail(det map[string]any, key string) map[string]any {
	if key != "" {
		det["service"] = key
	}
	return det
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
			if m := d.manifestNow(); m != nil {
				p := time.Second
				for _, k := range canaryKeys(m) {
					if c := canarySpec(m, k).Canary; c.Analysis != nil {
						p = min(p, analysisTick(c.Analysis.Interval.D()))
					}
				}
				if p != period {
					period = p
					tick.Reset(p)
				}
			}
			d.analyze(ctx, now)
		}
	}
}

// activeRolloutLocked is the rollout of the stepped canary of m's
// service key (canaries.go), started if need be, or nil when none is
// under way: no steps, down, rolled back or aborted, promoted, or a
// transition in flight.
func (d *Daemon) activeRolloutLocked(m *manifest.Manifest, key string) *analysis.Rollout {
	svc := canarySpec(m, key)
	if svc == nil {
		return nil
	}
	c := svc.Canary
	if d.state.Pending == nil {
		d.state, _ = d.state.rekeyed(m) // key "" is m's primary
	}
	s := d.state
	rb, p := s.rolledBackOf(key), s.promotedOf(m, key)
	switch {
	case c == nil || len(c.Steps) == 0 || c.Analysis == nil || s.Down || s.Pending != nil:
		return nil
	case rb != nil && rb.CanaryImage == c.Image:
		return nil
	case p != nil && p.Image == c.Image && p.ManifestStable == svc.Image:
		return nil
	case c.Image == svc.Image:
		return nil
	}
	if r := s.rolloutOf(key); r == nil || r.CanaryImage != c.Image {
		d.state.setRollout(key, &analysis.Rollout{CanaryImage: c.Image})
		logErr(d.log, "save state", d.saveStateLocked())
	}
	if mem := d.memLocked(key); mem.image != c.Image {
		*mem = analysisMem{image: c.Image}
	}
	return d.state.rolloutOf(key)
}

// memLocked is what the analysis keeps in memory of key's rollout, by
// service name: the primary's is another service's after a manifest
// edit (d.state.Primary, normalised by activeRolloutLocked), and must not
// be handed over with it.
func (d *Daemon) memLocked(key string) *analysisMem {
	if key == "" {
		key = d.state.Primary
	}
	if key == "" { // the seed form's
		return &d.an
	}
	if d.ans == nil {
		d.ans = map[string]*analysisMem{}
	}
	if d.ans[key] == nil {
		d.ans[key] = &analysisMem{}
	}
	return d.ans[key]
}

// analyze is one look of the analysis at time now at every stepped
// canary, the primary's first, each on its own (analyzeOne). Tests call
// it with a clock of their own.
func (d *Daemon) analyze(ctx context.Context, now time.Time) {
	m := d.manifestNow()
	if m == nil {
		return
	}
	for _, key := range canaryKeys(m) {
		d.analyzeOne(ctx, m, key, now)
	}
}

// analyzeOne is one look of the analysis at the stepped canary of m's
// service key: it asks analysis.Next what is due (start the step the
// route serves, make the check, abort at the failure limit, move to the
// next step or promote when the step's pause has passed) and runs it.
func (d *Daemon) analyzeOne(ctx context.Context, m *manifest.Manifest, key string, now time.Time) {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
	defer func() {
		if p := recover(); p != nil { // the daemon never crashes
			d.log.Error("analysis panicked", zap.String("service", key), zap.Any("panic", p), zap.Stack("stack"))
		}
	}()
	d.mu.Lock()
	r := d.activeRolloutLocked(m, key)
	if r == nil {
		d.mu.Unlock()
		return
	}
	cur, in := *r, analysis.Input{Now: now, RetryAt: d.memLocked(key).retryAt}
	d.mu.Unlock()
	c := canarySpec(m, key).Canary
	act, _ := analysis.Next(cur, c, in)
	switch act.Kind {
	case analysis.Observe:
		d.startStep(ctx, m, key, cur, in)
		return
	case analysis.Check:
		var ok bool
		if act, ok = d.check(ctx, m, key, cur, in); !ok {
			return
		}
	}
	interval := c.Analysis.Interval.D()
	log := d.log.With(zap.String("service", key))
	// The action re-reads the manifest under the run lock: an edit during
	// the check may have changed the primary, and with it what key means.
	judged := &judgedCanary{service: canaryName(m, key), image: c.Image}
	switch act.Kind {
	case analysis.Abort:
		if err := d.rollbackJudged(ctx, "", key, judged, act.Reasons, func(string) {}); err != nil {
			log.Error("automatic abort not applied; retrying after an interval", zap.Error(err))
			d.setRetry(judged.service, now.Add(interval))
		}
	case analysis.Advance:
		if err := d.advanceJudged(ctx, "", key, judged, act.Move.Step, func(string) {}); err != nil {
			log.Warn("next canary step not applied; retrying after an interval", zap.Error(err))
			d.setRetry(judged.service, now.Add(interval))
		}
	case analysis.Complete:
		d.mu.Lock()
		k := d.state.keyOf(judged.service) // key now: the primary may have changed since the check
		if r := d.state.rolloutOf(k); r != nil && r.CanaryImage == cur.CanaryImage && !r.Completed {
			r.Completed = true
			logErr(d.log, "save state", d.saveStateLocked())
			d.eventLocked(journal.EventStepsCompleted, fmt.Sprintf("%sall %d steps of canary %s passed; waiting for swiftctl promote", keyLabel(k), len(c.Steps), c.Image), "",
				withServiceDetail(map[string]any{"image": c.Image, "steps": len(c.Steps)}, k))
		}
		d.mu.Unlock()
	case analysis.AutoPromote:
		d.mu.Lock()
		if r := d.state.rolloutOf(d.state.keyOf(judged.service)); r != nil && r.CanaryImage == cur.CanaryImage {
			r.Completed = true
		}
		d.mu.Unlock()
		// The same gated transaction as `swiftctl promote`, canary safety
		// included; a denial is journaled there and retried an interval on.
		if err := d.promoteJudged(ctx, "", key, judged, func(string) {}); err != nil {
			log.Warn("automatic promotion not applied; retrying after an interval", zap.Error(err))
			d.setRetry(judged.service, now.Add(interval))
		}
	}
}

// setRetry delays the next action on the canary of service name (by
// name: the primary may have changed since the analysis looked).
func (d *Daemon) setRetry(name string, t time.Time) {
	d.mu.Lock()
	d.memLocked(d.state.keyOf(name)).retryAt = t
	d.mu.Unlock()
}

// moved reports whether the rollout in force, r, is no longer the one
// the analysis looked at: gone, another canary or another step.
func moved(r *analysis.Rollout, cur analysis.Rollout) bool {
	return r == nil || r.CanaryImage != cur.CanaryImage || r.Step != cur.Step
}

// nextLocked is analysis.Next on the rollout in force, r, once what the
// analysis looked at outside d.mu (cur) is still r: the decision is
// remade on r itself, so a change made meanwhile (a pause) is kept.
// False when r moved on, or Next does not decide want.
func nextLocked(r *analysis.Rollout, cur analysis.Rollout, c *manifest.Canary, in analysis.Input, want analysis.Kind) (analysis.Action, analysis.Rollout, bool) {
	if moved(r, cur) {
		return analysis.Action{}, analysis.Rollout{}, false
	}
	act, next := analysis.Next(*r, c, in)
	switch {
	case want == analysis.StartStep && act.Kind != want:
		return act, next, false
	case want == analysis.Check && (r.Paused || r.StepStarted.IsZero()):
		return act, next, false // Next records no check: it is paused, or its step not started
	case moved(r, next): // the manifest lost steps meanwhile
		return act, next, false
	}
	return act, next, true
}

// startStep starts the step's pause once the route serves its weight to
// the rollout's canary. The first step is journaled here (it took effect
// through a reconcile); later ones by their transaction's commit.
func (d *Daemon) startStep(ctx context.Context, m *manifest.Manifest, key string, cur analysis.Rollout, in analysis.Input) {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
	sv, err := d.target.ServingOf(ctx, m, key)
	if err != nil {
		return
	}
	in.Serving = &analysis.Serving{Live: sv.CanaryLive, Image: sv.CanaryImage, Weight: sv.CanaryWeight, Revision: sv.CanaryRevision}
	c, name := canarySpec(m, key).Canary, canaryName(m, key)
	d.mu.Lock()
	defer d.mu.Unlock()
	key = d.state.keyOf(name) // as check: the rollout looked at, whatever the primary is now
	r := d.state.rolloutOf(key)
	act, next, ok := nextLocked(r, cur, c, in, analysis.StartStep)
	if !ok {
		return // not served yet, or something moved it meanwhile
	}
	*r = next
	if r.Step == 0 {
		d.eventLocked(journal.EventCanaryStep, stepText(key, act.Move), "", stepDetails(key, act.Move, ""))
	}
	logErr(d.log, "save state", d.saveStateLocked())
}

// check judges the canary revision's window once, records and journals
// the verdict, and returns what analysis.Next decides after it; false if
// the rollout moved on while the policy judged.
func (d *Daemon) check(ctx context.Context, m *manifest.Manifest, key string, cur analysis.Rollout, in analysis.Input) (analysis.Action, bool) {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
	rev := cur.Revision
	dec, st := d.target.Judge(ctx, m, key, rev)
	d.metrics.observeDecision(dec)
	d.decision(dec, "")
	proxyOutcome := st.Proxy.Outcome
	if st.NoProxy {
		proxyOutcome = metrics.OK // no proxy view on this target: the app's figures decide
	}
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
	c := canarySpec(m, key).Canary
	a := c.Analysis
	name := canaryName(m, key)
	d.mu.Lock()
	defer d.mu.Unlock()
	// The rollout judged, by its service's name: an edit while the
	// policy judged may have made another service the primary (rekeyed),
	// whose rollout key "" names now, maybe of the same image and step.
	key = d.state.keyOf(name)
	r := d.state.rolloutOf(key)
	if d.state.Pending != nil {
		return analysis.Action{}, false // a transition is in flight
	}
	mem := d.memLocked(key)
	in.Verdict = &analysis.Verdict{Outcome: analysis.Classify(dec, st.Outcome, proxyOutcome), Reasons: dec.Reasons, Figures: figures, First: mem.checks == 0}
	act, next, ok := nextLocked(r, cur, c, in, analysis.Check)
	if !ok {
		return analysis.Action{}, false // it moved on while the policy judged
	}
	mem.checks++
	// The check is recorded here; Completed, Next's mark for Complete or
	// AutoPromote, is recorded with its action (analyze), which journals
	// steps_completed once, when it sets it.
	next.Completed = r.Completed
	*r = next
	logErr(d.log, "save state", d.saveStateLocked())
	outcome, reasons := next.Last.Outcome, next.Last.Reasons
	weight := c.Steps[r.Step].Weight
	details := map[string]any{"image": r.CanaryImage, "revision": rev, "step": r.Step + 1, "steps": len(c.Steps), "weight": weight,
		"outcome": outcome, "failed_checks": r.Failures, "failure_limit": a.FailureLimit, "figures": figures}
	withServiceDetail(details, key)
	where := fmt.Sprintf("%sstep %d/%d at %d%%", keyLabel(key), r.Step+1, len(c.Steps), weight)
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
	return act, true
}

// advance moves the canary to steps[to] through a transaction: gated (it
// sends the canary more traffic), committed and journaled once the route
// serves the new weight.
func (d *Daemon) advance(ctx context.Context, user, key string, to int, progress reconciler.Progress) error {
	return d.advanceJudged(ctx, user, key, nil, to, progress)
}

// advanceJudged is advance of the canary an analysis judged (judged nil:
// the canary of key, as the operator named it): an edit since it looked
// may have made another service the primary, whose canary key "" names
// now, maybe at the same step.
func (d *Daemon) advanceJudged(ctx context.Context, user, key string, judged *judgedCanary, to int, progress reconciler.Progress) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	m, key, svc, err := d.canaryTransitionStart(ctx, key, judged)
	if err != nil {
		return err
	}
	if svc == nil || svc.Canary == nil {
		return errors.New("no canary step to move to: the manifest no longer declares the canary")
	}
	c := svc.Canary
	d.mu.Lock()
	r := d.activeRolloutLocked(m, key)
	ok := r != nil && !r.StepStarted.IsZero() && r.Step+1 == to && to < len(c.Steps)
	d.mu.Unlock()
	if !ok {
		return errors.New("no canary step to move to: the rollout moved on")
	}
	mv := analysis.MoveTo(c, to)
	t := &Transition{ID: newID(), Kind: kindStep, Started: time.Now().UTC(), User: user, Step: mv, Service: key}
	if err := d.transact(ctx, m, t, progress); err != nil {
		return err
	}
	progress(stepText(key, mv))
	return nil
}
