package controller

import (
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// event journals an event durably; a journal failure is logged, never fatal.
func (d *Daemon) event(name, msg, user string, details map[string]any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.eventLocked(name, msg, user, details)
}

// eventLocked is event for callers holding d.mu (the journal has its own
// lock; d.mu only keeps the order of events consistent with state changes).
func (d *Daemon) eventLocked(name, msg, user string, details map[string]any) {
	now := time.Now().UTC()
	err := d.jr.Append(journal.Record{
		Type:      journal.TypeEvent,
		Timestamp: now,
		Event:     name,
		Message:   msg,
		User:      user,
		Details:   details,
	})
	if err != nil {
		d.log.Error("journal append failed", zap.String("event", name), zap.Error(err))
	}
	d.noteJournalLocked("event "+name, err)
	d.notifyLocked(name, msg, details, now)
}

func (d *Daemon) journalPath() string { return d.cfg.JournalPath }

// manifestTookEffect journals manifest_applied once per manifest, when a
// reconcile has made it what runs (its plan applied, or nothing to do):
// not when the file is parsed, read by status or diff, or denied. The
// hash last journaled is read back from the journal once, so a restart
// does not journal the same manifest again. Called from the reconcile
// only (callers hold d.runMu), so the read and the write cannot race.
func (d *Daemon) manifestTookEffect(m *manifest.Manifest) {
	h := m.Hash()
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
			last, _ = r.Details["manifest_hash"].(string)
		}
	}
	if last != h {
		d.event(journal.EventManifestApplied, "manifest applied: what runs follows it", "",
			map[string]any{"stable_image": m.Services.Image, "manifest_hash": h})
	}
	d.mu.Lock()
	d.appliedManifest, d.appliedManifestKnown = h, true
	d.mu.Unlock()
}
