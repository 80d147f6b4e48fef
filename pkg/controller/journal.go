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
	// The last line of the redaction rule: no message quotes a secret by
	// design, and the scrubber removes one quoted by a path nobody foresaw
	// before it reaches the append-only journal or a webhook body.
	if !d.scrub.Empty() {
		msg = d.scrub.String(msg)
		details, _ = d.scrub.Any(details).(map[string]any)
	}
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
	project := ""
	if d.current != nil {
		project = d.current.Project
	}
	d.metrics.Event(project, name, user, details)
	d.notifyLocked(name, msg, details, now)
}

func (d *Daemon) journalPath() string { return d.cfg.JournalPath }

// secretsOf lists the values of m that may be secret: every env value and
// every webhook URL. Other secret sources (env files, secret files,
// registry credentials, TLS keys) add theirs here.
func secretsOf(m *manifest.Manifest) []string {
	var out []string
	for _, v := range m.Services.Env {
		out = append(out, v)
	}
	for _, h := range m.Notify {
		out = append(out, h.URL)
	}
	return out
}
