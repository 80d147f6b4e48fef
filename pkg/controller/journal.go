package controller

import (
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
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
