package controller

import (
	"context"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/releases"
)

// event journals an event durably; a journal failure is logged, never
// fatal. It returns once the event (and any queued before it) is written.
func (d *Daemon) event(name, msg, user string, details map[string]any) {
	d.mu.Lock()
	d.eventLocked(name, msg, user, details)
	d.mu.Unlock()
	d.drainJournal()
}

// eventLocked is event for callers holding d.mu: it queues the event in
// d.outbox, keeping its order with the state changes made under d.mu, and
// the caller calls drainJournal once it has released d.mu. The write and
// its fsync never run under d.mu: a slow disk would stall status, the
// scrape loop and manifest reads.
func (d *Daemon) eventLocked(name, msg, user string, details map[string]any) {
	now := time.Now().UTC()
	// The last line of the redaction rule: no message quotes a secret by
	// design, and the scrubber removes one quoted by a path nobody foresaw
	// before it reaches the append-only journal or a webhook body.
	if !d.scrub.Empty() {
		msg = d.scrub.String(msg)
		details, _ = d.scrub.Any(details).(map[string]any)
	}
	d.queued++
	d.outbox = append(d.outbox, journal.Record{
		Type:      journal.TypeEvent,
		Timestamp: now,
		Event:     name,
		Message:   msg,
		User:      user,
		Details:   details,
	})
	project := ""
	if d.current != nil {
		project = d.current.Project
	}
	d.metrics.Event(project, name, user, details)
	d.notifyLocked(name, msg, details, now)
}

// journalMark is how many events have been queued so far; a function that
// may queue events defers drainJournalAfter(d.journalMark()).
func (d *Daemon) journalMark() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queued
}

// drainJournalAfter is drainJournal if any event was queued since mark:
// a function that queued nothing does not wait for another goroutine's
// write (a status or manifest read behind a slow fsync).
func (d *Daemon) drainJournalAfter(mark uint64) {
	d.mu.Lock()
	none := d.queued == mark
	d.mu.Unlock()
	if !none {
		d.drainJournal()
	}
}

// drainJournal writes the events queued by eventLocked, in order, and
// fsyncs them; callers must not hold d.mu. When it returns, every event
// queued before the call is durable (or its failure noted).
func (d *Daemon) drainJournal() {
	d.jmu.Lock()
	defer d.jmu.Unlock()
	d.mu.Lock()
	recs := d.outbox
	d.outbox = nil
	d.mu.Unlock()
	for _, rec := range recs {
		err := d.jr.Append(rec)
		if err != nil {
			d.log.Error("journal append failed", zap.String("event", rec.Event), zap.Error(err))
		}
		d.noteJournal("event "+rec.Event, err)
	}
}

func (d *Daemon) journalPath() string { return d.cfg.JournalPath }

// manifestTookEffect journals manifest_applied once per manifest, when a
// reconcile has made it what runs (its plan applied, or nothing to do):
// not when the file is parsed, read by status or diff, or denied. The
// hash last journaled is read back from the journal once, so a restart
// does not journal the same manifest again. Called from the reconcile
// only (callers hold d.runMu), so the read and the write cannot race.
func (d *Daemon) manifestTookEffect(ctx context.Context, m *manifest.Manifest, user string) {
	// A worker whose new revision stands rejected runs its old one while
	// the rest of m took effect: that is journaled too (the other
	// services' releases went live), the worker named as held, and the
	// worker's revision recorded as no release. The key tells such a
	// partial apply from m's whole one, which is journaled again if the
	// worker passes later under the same m (after a restart).
	held := d.heldWorkers(m)
	h := m.Hash()
	key := appliedKey(h, held)
	d.mu.Lock()
	last, known := d.appliedManifest, d.appliedManifestKnown
	d.mu.Unlock()
	if !known {
		_ = d.jr.Flush()
		r, ok, err := journal.Latest(d.journalPath(), journal.Filter{Events: []string{journal.EventManifestApplied}})
		if err != nil {
			// Unknown whether it is journaled: try again next reconcile
			// rather than journal it twice.
			d.log.Warn("journal: last applied manifest not read", zap.Error(err))
			return
		}
		if ok {
			hash, _ := r.Details["manifest_hash"].(string)
			last = appliedKey(hash, heldOf(r.Details))
		}
	}
	if last != key {
		det := map[string]any{"stable_image": m.Main().Image, "manifest_hash": h}
		msg := "manifest applied: what runs follows it"
		if len(held) > 0 {
			det["held"] = held
			msg = "manifest applied but for " + strings.Join(held, ", ") + ": held at the revision running (its new one failed its judgement on its own metrics)"
		}
		// A stable that differs from the one in force is a new release:
		// it rides in this record, journaled once with it.
		d.mu.Lock()
		s := d.state
		if user == "" {
			// A deploy that arrived while this reconcile applied the
			// manifest asked for what it applied (its own reconcile
			// will find nothing to do).
			for _, w := range d.waiters {
				if w.user != "" {
					user = w.user
					break
				}
			}
		}
		d.mu.Unlock()
		// Every service's: in the named form each service whose stable
		// spec changed is a release of its own, all in this one record.
		var made []api.Release
		d.continueLegacy(m, det)
		for _, svc := range serviceNames(m) {
			if slices.Contains(held, svc) {
				continue
			}
			image, spec := stableSpecOf(m, s, svc)
			if rel, isNew := d.newRelease(ctx, svc, image, spec, user, releases.CauseDeploy); isNew {
				made = append(made, rel)
			}
		}
		releases.Put(det, made)
		d.event(journal.EventManifestApplied, msg, user, det)
		if len(made) > 0 {
			rec := journal.Record{Event: journal.EventManifestApplied, Details: map[string]any{}}
			releases.Put(rec.Details, made)
			d.noteReleased(rec)
		}
	}
	d.mu.Lock()
	d.appliedManifest, d.appliedManifestKnown = key, true
	d.mu.Unlock()
}

// appliedKey is what manifestTookEffect compares: the manifest's hash,
// and the workers held at their running revision, if any.
func appliedKey(hash string, held []string) string {
	if len(held) == 0 {
		return hash
	}
	return hash + " held:" + strings.Join(held, ",")
}

// heldOf is a manifest_applied record's held workers.
func heldOf(det map[string]any) []string {
	var out []string
	switch v := det["held"].(type) {
	case []string:
		out = v
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// logErr logs err, if any, as msg.
func logErr(log *zap.Logger, msg string, err error) {
	if err != nil {
		log.Error(msg, zap.Error(err))
	}
}
