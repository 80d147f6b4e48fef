package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/failpoint"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/releases"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// errDown refuses transitions while the project is down.
var errDown = errors.New("the project is down (swiftctl down): run `swiftctl deploy` first")

// transact applies t: the change and its decisions are one step, on any
// target. The gate runs when the change is applied, just before its first
// operation that adds capacity or traffic; only if it allows is t recorded
// as pending (write-ahead) and applied. t is committed (journaled exactly
// once, recorded) the moment the route serves its revision: a failure
// after that (removing what no longer serves) is a cleanup failure the
// next reconcile finishes, not a failed transition. If it did not take
// effect, nothing is recorded and the old state stays in force. Callers
// hold d.runMu.
func (d *Daemon) transact(ctx context.Context, m *manifest.Manifest, t *Transition, progress reconciler.Progress) (err error) {
	tr := trace.New()
	ctx = trace.With(ctx, tr)
	began, cpu0 := time.Now(), cpuTime()
	defer func() {
		d.log.Info("reconcile trace", zap.String("trigger", t.Kind), zap.Duration("took", time.Since(began)),
			zap.Duration("cpu", cpuTime()-cpu0), zap.Bool("ok", err == nil), zap.Any("spans", tr.Spans()))
	}()
	d.mu.Lock()
	// The decisions where m keeps them (rekeyed), so that t's is recorded
	// beside, never over, another service's; and t names its service, so
	// that it settles against it whatever the primary is then.
	d.state, _ = d.state.rekeyed(m)
	if t.Service == "" && (t.Kind == kindPromote || t.Kind == kindRollback || t.Kind == kindStep) {
		t.Service = canaryName(m, "")
	}
	next := d.state.with(t)
	d.mu.Unlock()
	end := tr.Begin("plan", "")
	ch, err := d.target.Change(ctx, m, next)
	end()
	if err != nil {
		return notRecorded{err}
	}
	t.Revision = ch.Revision()
	if ch.Blocked() != "" {
		return notRecorded{errors.New(ch.Blocked())}
	}
	wrote := false
	writeAhead := func() error {
		if wrote {
			return nil
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		d.state.Pending = t
		if err := d.saveStateLocked(); err != nil {
			d.state.Pending = nil
			return fmt.Errorf("record pending %s: %w", t.Kind, err)
		}
		wrote = true
		failpoint.Hit(transitionPoint(t.Kind, "pending"))
		return nil
	}
	var gateErr error
	gate := func(ctx context.Context) reconciler.Decision {
		dec := d.gate(ctx, ch)
		if dec.Allowed {
			if gateErr = writeAhead(); gateErr != nil {
				return reconciler.Decision{Reasons: []string{gateErr.Error()}}
			}
		}
		return dec
	}
	if !ch.Gated() {
		if err := writeAhead(); err != nil {
			return notRecorded{err}
		}
	}
	committed := false
	served := func() {
		if d.restoredServes(ctx, m, t) != targets.ServesYes {
			// A route that serves t's revision says nothing of a worker
			// or an accessory: committed once it serves the image (below,
			// or when the pending transition is settled).
			return
		}
		// t was made by this call: nothing can have journaled it yet.
		d.commitTxn(t, false)
		committed = true
	}
	_, applyErr := d.target.Apply(ctx, ch, targets.Hooks{Gate: gate, Served: served, Progress: progress, Wait: true})
	failpoint.Hit(transitionPoint(t.Kind, "applied"))
	var denied *reconciler.DeniedError
	if errors.As(applyErr, &denied) && gateErr == nil && !wrote {
		return notRecorded{applyErr} // nothing was recorded, nothing changed
	}
	if applyErr == nil {
		d.clearDenial()
		d.workerStillRejected(m)
	}
	// Settle from what the route serves now, not from what the apply
	// returned: the commit point is the route serving the new revision.
	end = tr.Begin("observe after apply", "")
	verdict, after, oerr := d.target.Serves(context.WithoutCancel(ctx), ch)
	end()
	if oerr == nil {
		d.noteServing(after)
		verdict = bothServe(verdict, d.restoredServes(context.WithoutCancel(ctx), m, t))
	}
	// A successful apply already saw the route serve t's revision: it
	// took effect even if this second look fails on a busy host.
	took := committed || applyErr == nil || verdict == targets.ServesYes
	if !took && verdict == targets.ServesUnknown {
		// What serves is unknown: keep the transition pending, and let
		// resolvePending settle it once the route can be read.
		d.Wake()
		return fmt.Errorf("%s: cannot tell whether it took effect (%v); it stays pending and is settled from what serves", t.Kind, applyErr)
	}
	if took {
		if !committed {
			end = tr.Begin("commit", t.Kind)
			cerr := d.commit(t) // no operation switched the route (or it failed after switching)
			end()
			if cerr != nil {
				d.Wake() // resolvePending commits it once the journal reads
				return fmt.Errorf("%s took effect but is not committed yet: %w; it stays pending", t.Kind, cerr)
			}
		}
		if applyErr != nil {
			d.log.Warn(t.Kind+" took effect but its cleanup failed; the next reconcile finishes it", zap.Error(applyErr))
			d.Wake()
		}
		return nil
	}
	d.abort(t, applyErr)
	d.Wake() // converge back to the old state (removes what was started)
	if errors.As(applyErr, &denied) {
		return applyErr
	}
	if applyErr == nil {
		return fmt.Errorf("%s did not take effect: the route does not serve revision %s", t.Kind, t.Revision)
	}
	return fmt.Errorf("%s did not take effect: %w", t.Kind, applyErr)
}

// notRecorded is a transition's failure (a plan that could not be made or
// is blocked, a write-ahead that failed, a gate denial) that came before
// anything was recorded: nothing changed, and no abort journaled it, so
// the caller that journaled the request journals its end.
type notRecorded struct{ error }

func (e notRecorded) Unwrap() error { return e.error }

// commit records t as in force and journals it exactly once. If the
// journal cannot be read, whether t is journaled already is unknown: t
// stays pending (the next reconcile's resolvePending tries again) rather
// than risk journaling it twice.
func (d *Daemon) commit(t *Transition) error {
	// The journal scan runs before taking d.mu: status and the scrape
	// loop must not wait on reading the whole journal. Only this process
	// commits t (callers hold d.runMu), so nothing can journal it meanwhile.
	journaled, err := d.journaledTxn(t)
	if err != nil {
		return err
	}
	d.commitTxn(t, journaled)
	return nil
}

// commitTxn is commit once it is known whether t is journaled already (a
// daemon that died between journaling and recording it).
func (d *Daemon) commitTxn(t *Transition, journaled bool) {
	d.mu.Lock()
	key := d.state.keyOf(t.Service) // "" for the primary's canary
	d.mu.Unlock()
	var released *journal.Record // a release made or restored, for the book once journaled
	if !journaled {
		// A promotion's release gets its revision now; it rides in the
		// promoted record, so it is journaled exactly when that is.
		var rel *api.Release
		if t.Kind == kindPromote && t.Release != nil {
			if r, ok := d.newRelease(context.Background(), t.Release.Service, t.Release.Image, t.Release.SpecHash, t.User, releases.CausePromote); ok {
				rel = &r
			}
		}
		d.mu.Lock()
		switch t.Kind {
		case kindPromote:
			// weight: the image's share of traffic after the event.
			det := withServiceDetail(map[string]any{"image": t.Promoted.Image, "txn": t.ID, "weight": 100}, key)
			if rel != nil {
				det["release"] = releases.Details(*rel)
				released = &journal.Record{Event: journal.EventPromoted, Details: map[string]any{"release": releases.Details(*rel)}}
			}
			d.eventLocked(journal.EventPromoted, keyLabel(key)+t.Promoted.Image+" is now stable; 100% of traffic on it", t.User, det)
		case kindRestore:
			rec := restoreEvent(t)
			d.eventLocked(rec.Event, rec.Message, rec.User, rec.Details)
			released = &rec
		case kindRollback:
			if rb := t.RolledBack; rb.Aborted {
				det := withServiceDetail(map[string]any{"image": rb.CanaryImage, "txn": t.ID, "reasons": rb.Reasons, "weight": 0}, key)
				// The figures the analysis last judged: why it aborted.
				if r := d.state.rolloutOf(key); r != nil && r.CanaryImage == rb.CanaryImage && r.Last != nil && len(r.Last.Figures) > 0 {
					det["figures"] = r.Last.Figures
				}
				d.eventLocked(journal.EventAborted, keyLabel(key)+"canary "+rb.CanaryImage+" aborted: "+strings.Join(rb.Reasons, "; ")+"; all traffic on stable", t.User, det)
			} else {
				d.eventLocked(journal.EventRolledBack, keyLabel(key)+"canary "+rb.CanaryImage+" rolled back; all traffic on stable", t.User,
					withServiceDetail(map[string]any{"image": rb.CanaryImage, "txn": t.ID}, key))
			}
		case kindStep:
			d.eventLocked(journal.EventCanaryStep, stepText(key, t.Step), t.User, stepDetails(key, t.Step, t.ID))
		case kindTraffic:
			event, msg, det := trafficEvent(t.Traffic)
			det["txn"] = t.ID
			d.eventLocked(event, msg, t.User, det)
		}
		d.mu.Unlock()
		// Durable before the state records it (callers hold d.runMu, so
		// nothing else commits meanwhile), and written with d.mu released.
		d.drainJournal()
		failpoint.Hit(transitionPoint(t.Kind, "journaled"))
		if released != nil {
			d.noteReleased(*released)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.state = d.state.with(t)
	if r := d.state.rolloutOf(key); t.Kind == kindStep && r != nil {
		*r = r.Started(time.Now()) // the route serves the step: its pause starts
	}
	logErr(d.log, "save state", d.saveStateLocked())
}

// abort drops t: the old state stays in force.
func (d *Daemon) abort(t *Transition, cause error) {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state.Pending != nil && d.state.Pending.ID == t.ID {
		d.state.Pending = nil
		logErr(d.log, "save state", d.saveStateLocked())
	}
	msg := t.Kind + " did not take effect"
	if cause != nil {
		msg += ": " + cause.Error()
	}
	event := journal.EventPromoteFailed
	switch t.Kind {
	case kindRollback, kindRestore:
		event = journal.EventRollbackFailed
	case kindTraffic:
		event = journal.EventTrafficFailed
	case kindStep:
		event = journal.EventStepFailed
	}
	d.eventLocked(event, msg, t.User, map[string]any{"txn": t.ID})
}

// journaledTxn reports whether the transition's effect is already in the
// journal (a daemon that died between journaling and recording it).
func (d *Daemon) journaledTxn(t *Transition) (bool, error) {
	id := t.ID
	found := false
	_ = d.jr.Flush()
	// Its record can only be younger than the transition: skip the files
	// that end before it started (an hour's margin for a clock stepped back).
	since := t.Started.Add(-time.Hour)
	err := journal.Read(d.journalPath(), journal.Filter{Types: []string{journal.TypeEvent}, Since: since}, func(r journal.Record) error {
		switch r.Event {
		case journal.EventPromoted, journal.EventRolledBack, journal.EventAborted, journal.EventCanaryStep,
			journal.EventTrafficPaused, journal.EventTrafficStopped, journal.EventTrafficResumed:
			if r.Details["txn"] == id {
				found = true
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("cannot tell whether %s %s is journaled already: %w", t.Kind, t.ID, err)
	}
	return found, nil
}

// resolvePending settles a transition left by a daemon that stopped in the
// middle of it: committed if the route serves its revision, else dropped
// (the loop then converges back to the state before it). Callers hold
// d.runMu, so no transaction of this process is in flight.
//
// m is the manifest read now, which may have been edited while the daemon
// was down (another primary, a service or canary removed, another image):
// t settles by its service's name, and by the revision it made serve.
func (d *Daemon) resolvePending(ctx context.Context, m *manifest.Manifest) error {
	defer d.drainJournalAfter(d.journalMark()) // events it queues under d.mu are written once d.mu is released
	d.mu.Lock()
	t := d.state.Pending
	if t != nil {
		// A version that named only the other services' canaries left
		// the primary's unnamed: the primary of then, whose decisions the
		// single fields hold (State.Primary), not m's.
		if t.Service == "" && d.state.Primary != "" && (t.Kind == kindPromote || t.Kind == kindRollback || t.Kind == kindStep) {
			t.Service = d.state.Primary
		}
		// The decisions where m keeps them, as transact does: t is then
		// recorded and journaled as its service's (keyOf), whichever
		// service m makes the primary.
		d.state, _ = d.state.rekeyed(m)
	}
	next := d.state
	d.mu.Unlock()
	if t == nil {
		return nil
	}
	ch, err := d.target.Change(ctx, m, next.with(t))
	if err != nil {
		return err
	}
	verdict, sv, err := d.target.Serves(ctx, ch)
	if err == nil {
		// What serves decides, not what m asks for: t's revision (made
		// from the manifest of then) serving means it took effect, even
		// if m, edited since, renders another one under t's decision. A
		// restored release of a service must also run in that service.
		if t.Revision != "" && sv.Revision == t.Revision {
			verdict = targets.ServesYes
		}
		verdict = bothServe(verdict, d.restoredServes(ctx, m, t))
	}
	took := verdict == targets.ServesYes
	switch {
	case err != nil:
		return err
	case took:
		d.log.Info("settling an interrupted "+t.Kind+": it took effect", zap.String("txn", t.ID))
		if err := d.commit(t); err != nil {
			return fmt.Errorf("settle interrupted %s: %w", t.Kind, err)
		}
		return nil
	case verdict == targets.ServesUnknown:
		// The route cannot be read: settling now could undo a transition
		// that took effect. Retry later.
		return fmt.Errorf("settle interrupted %s: what serves cannot be read", t.Kind)
	}
	d.log.Info("settling an interrupted "+t.Kind+": it did not take effect", zap.String("txn", t.ID))
	d.mu.Lock()
	d.state.Pending = nil
	logErr(d.log, "save state", d.saveStateLocked())
	d.eventLocked(journal.EventTransitionAborted, keyLabel(d.state.keyOf(t.Service))+"interrupted "+t.Kind+" did not take effect; the previous state stays in force", t.User,
		withServiceDetail(map[string]any{"txn": t.ID}, d.state.keyOf(t.Service)))
	d.mu.Unlock()
	return nil
}

// transitionStart is how every promotion, rollback and step begins: not
// while down, with a manifest, after settling what a dead daemon left
// pending. Callers hold d.runMu.
func (d *Daemon) transitionStart(ctx context.Context) (*manifest.Manifest, error) {
	if d.isDown() {
		return nil, errDown
	}
	m := d.readManifest()
	if m == nil {
		return nil, errors.New("no manifest loaded")
	}
	if err := d.checkManifestDir(); err != nil {
		return nil, err
	}
	if err := d.resolvePending(ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// promote makes the serving canary stable, gated by the canary-safety
// policy on the canary revision's own figures and by the infrastructure
// (cluster) policy when the change is applied.
//
// key names the canary's service (canaries.go): "" for the primary's.
func (d *Daemon) promote(ctx context.Context, user, key string, progress reconciler.Progress) error {
	return d.promoteJudged(ctx, user, key, nil, progress)
}

// promoteJudged is promote of the canary an analysis judged (judged nil:
// the canary of key, as the operator named it).
func (d *Daemon) promoteJudged(ctx context.Context, user, key string, judged *judgedCanary, progress reconciler.Progress) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	m, err := d.transitionStart(ctx)
	if err != nil {
		return err
	}
	if judged != nil {
		if key, err = judged.keyIn(m); err != nil {
			return err
		}
	}
	svc := canarySpec(m, key)
	if svc == nil {
		return fmt.Errorf("service %s: no longer in the manifest", key)
	}
	sv, err := d.target.ServingOf(ctx, m, key)
	if err != nil {
		return err
	}
	if !sv.CanaryLive {
		return errors.New(keyLabel(key) + "no canary is serving traffic: declare services.canary in the manifest and wait for it to converge")
	}
	image := sv.CanaryImage
	d.event(journal.EventPromoteRequested, keyLabel(key)+"promotion of "+image+" requested", user, withServiceDetail(map[string]any{"image": image}, key))
	dec, _ := d.target.Judge(ctx, m, sv.CanaryRevision)
	d.metrics.observeDecision(dec)
	d.decision(dec, user)
	if !dec.Allowed {
		d.event(journal.EventPromoteDenied, keyLabel(key)+"promotion of "+image+" denied: "+strings.Join(dec.Reasons, "; "), user, withServiceDetail(map[string]any{"reasons": dec.Reasons, "policy": dec.Policy}, key))
		return &promoteDenied{reasons: dec.Reasons}
	}
	progress("Canary safety: PASS")
	var allowed map[string]any // the primary's carries no details, as before
	if key != "" {
		allowed = map[string]any{"service": key}
	}
	d.event(journal.EventPromoteAllowed, keyLabel(key)+"promotion of "+image+" allowed by canary safety", user, allowed)
	relService := serviceName(m)
	if key != "" {
		relService = key
	}
	t := &Transition{ID: newID(), Kind: kindPromote, Project: m.Project, Started: time.Now().UTC(), User: user, Service: key,
		Promoted: &Promotion{Service: relService, ManifestStable: svc.Image, Image: image, At: time.Now().UTC(), User: user}}
	d.mu.Lock()
	relImage, relSpec := stableSpecOf(m, d.state.with(t), relService)
	d.mu.Unlock()
	t.Release = &api.Release{Service: relService, Image: relImage, SpecHash: relSpec}
	err = d.transact(ctx, m, t, progress)
	var denied *reconciler.DeniedError
	if errors.As(err, &denied) {
		d.event(journal.EventPromoteDenied, keyLabel(key)+"promotion of "+image+" denied: "+strings.Join(denied.Reasons, "; "), user, withServiceDetail(map[string]any{"reasons": denied.Reasons, "policy": d.gatePolicy()}, key))
		return err
	}
	if err == nil {
		progress("Promoted " + image + " to stable")
	}
	return err
}

// promoteDenied is a canary-safety denial.
type promoteDenied struct{ reasons []string }

func (e *promoteDenied) Error() string {
	return "promotion denied by canary-safety policy: " + strings.Join(e.reasons, "; ")
}

// rollback drops the serving canary: all traffic to stable. It only
// withdraws traffic, so the infrastructure gate does not stand in its way.
func (d *Daemon) rollback(ctx context.Context, user, key string, progress reconciler.Progress) error {
	return d.rollbackWith(ctx, user, key, nil, progress)
}

// rollbackWith is rollback of the canary of service key (canaries.go:
// "" for the primary's); with reasons it is an abort, journaled as
// `aborted` with them.
func (d *Daemon) rollbackWith(ctx context.Context, user, key string, abortReasons []string, progress reconciler.Progress) error {
	return d.rollbackJudged(ctx, user, key, nil, abortReasons, progress)
}

// rollbackJudged is rollbackWith of the canary an analysis judged
// (judged nil: the canary of key, as the operator named it).
func (d *Daemon) rollbackJudged(ctx context.Context, user, key string, judged *judgedCanary, abortReasons []string, progress reconciler.Progress) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	m, err := d.transitionStart(ctx)
	if err != nil {
		return err
	}
	if judged != nil {
		if key, err = judged.keyIn(m); err != nil {
			return err
		}
	}
	svc := canarySpec(m, key)
	if svc == nil || svc.Canary == nil {
		return errors.New(keyLabel(key) + "no canary declared in the manifest: nothing to roll back")
	}
	sv, err := d.target.ServingOf(ctx, m, key)
	if err != nil {
		return err
	}
	image := svc.Canary.Image
	if sv.CanaryLive {
		image = sv.CanaryImage
	} else if !sv.CanaryRunning {
		return errors.New(keyLabel(key) + "no canary is running: nothing to roll back")
	}
	d.event(journal.EventRollbackRequested, keyLabel(key)+"rollback of canary "+image+" requested", user,
		withServiceDetail(map[string]any{"image": image, "reasons": abortReasons}, key))
	t := &Transition{ID: newID(), Kind: kindRollback, Started: time.Now().UTC(), User: user, Service: key,
		// The record names the manifest's canary image: that is what the
		// options compare, so whatever canary the manifest names (even one
		// other than the image serving now) stays suppressed.
		RolledBack: &Rollback{Service: canaryName(m, key), CanaryImage: svc.Canary.Image, At: time.Now().UTC(), User: user, Aborted: abortReasons != nil, Reasons: abortReasons}}
	if err := d.transact(ctx, m, t, progress); err != nil {
		return err
	}
	progress(keyLabel(key) + "Rolled back: all traffic on stable")
	return nil
}

// down removes everything the project owns and stays down until the next
// deploy.
func (d *Daemon) down(ctx context.Context, user string, volumes bool, say func(string)) error {
	// Under the run lock, so a deploy already under way cannot clear Down
	// behind our back; the down is recorded first, so whatever is left
	// after a crash is never restored as a heal.
	d.runMu.Lock()
	defer d.runMu.Unlock()
	m := d.readManifest()
	if m == nil {
		return errors.New("no manifest loaded: nothing to remove")
	}
	if err := d.checkManifestDir(); err != nil {
		return err
	}
	if err := d.target.Forget(); err != nil {
		return err
	}
	d.mu.Lock()
	d.state.Down = true
	d.state.DownVolumes = d.state.DownVolumes || volumes
	d.state.Pending = nil
	err := d.saveStateLocked()
	d.mu.Unlock()
	if err != nil {
		return err
	}
	failpoint.Hit(failpoint.DownSaved)
	removed, err := d.removeAll(ctx, m, say)
	if err != nil {
		return err
	}
	d.event(eventDown, "removed everything project "+m.Project+" owns ("+d.target.Name()+")", user, map[string]any{"removed": removed})
	return nil
}

// removeAll removes everything m's project owns and forgets what the
// target tracked of it (the applied record, a rollout awaited). Callers
// hold d.runMu.
func (d *Daemon) removeAll(ctx context.Context, m *manifest.Manifest, say func(string)) ([]string, error) {
	d.mu.Lock()
	volumes := d.state.DownVolumes
	d.mu.Unlock()
	plan, err := d.target.Teardown(ctx, m, volumes)
	if err != nil {
		return nil, err
	}
	// The plan runs operation by operation, each journaled as it runs:
	// what a crash leaves is in the journal up to the last one that ran,
	// and the restarted daemon plans (and journals) the rest.
	var removed []string
	for _, r := range plan {
		if err := r.Run(ctx); err != nil {
			return removed, fmt.Errorf("%s %s: %w", r.Op, r.Target, err)
		}
		removed = append(removed, r.Target)
		d.event(r.Event, fmt.Sprintf("removed %s (%s)", r.Target, r.Op), "", map[string]any{"op": r.Op, "target": r.Target})
		if say != nil {
			say("Removed " + r.Target)
		}
		if r.After != "" {
			failpoint.Hit(r.After)
		}
	}
	if err := d.target.Forget(); err != nil {
		return removed, err
	}
	d.rollout = nil // nothing is left to roll out: no outcome to journal
	d.mu.Lock()
	d.lastMode = stack.TrackStable // nothing serves; a later canary is a switch
	d.mu.Unlock()
	return removed, nil
}

// finishDown completes a down that a crash interrupted: the state says
// down, yet something remains. Callers hold d.runMu.
func (d *Daemon) finishDown(ctx context.Context, m *manifest.Manifest) error {
	if m == nil {
		return nil
	}
	var said []string
	removed, err := d.removeAll(ctx, m, func(line string) { said = append(said, line) })
	if err != nil {
		return fmt.Errorf("finish interrupted down of %s: %w", m.Project, err)
	}
	if len(removed) > 0 {
		d.log.Info("finished an interrupted down", zap.Strings("removed", removed))
		d.event(eventDown, "finished an interrupted down: removed everything project "+m.Project+" owns", "", map[string]any{"removed": said})
	}
	return nil
}
