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
		if v, own := d.restoredRuns(ctx, m, t); own && v != targets.ServesYes {
			// A Kubernetes route that serves t's revision says nothing of
			// a worker or an accessory: committed once its workload runs
			// the image (below, or when the pending transition is settled).
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
		d.noteStandingRejection(m)
	}
	// Settle from what the route serves now, not from what the apply
	// returned: the commit point is the route serving the new revision.
	end = tr.Begin("observe after apply", "")
	verdict, after, oerr := d.target.Serves(context.WithoutCancel(ctx), ch)
	end()
	if oerr == nil {
		d.noteServing(after)
		if v, own := d.restoredRuns(ctx, m, t); own {
			verdict = bothServe(verdict, v)
		}
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
		// What serves decides, not what m asks for: m may have been
		// edited since t was made from the manifest of then.
		if v, own := d.restoredRuns(ctx, m, t); own {
			// A rollback of one service's workload, which no route
			// covers (Kubernetes): that workload alone says whether it
			// ran. The route, checked against m, says nothing of it: an
			// edit of another service's image meanwhile must not drop it.
			verdict = v
		} else if t.Revision != "" && sv.Revision != "" {
			// The revision nginx serves (Docker) decides alone: t's
			// serving means it took effect even if m renders another
			// one under t's decision; another one serving means it did
			// not, even if m, edited since, renders that very one under
			// t's decision (a step whose weight an edit of the steps
			// gave to another step).
			verdict = targets.ServesNo
			if sv.Revision == t.Revision {
				verdict = targets.ServesYes
			}
		}
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
