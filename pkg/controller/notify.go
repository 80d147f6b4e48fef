package controller

import (
	"fmt"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/notify"
	"github.com/swiftdeploy/swiftdeploy/pkg/redact"
)

// notifyOf maps journal events to the notify events webhooks ask for. A
// notification is sent when its event is journaled, so exactly once.
var notifyOf = map[string]string{
	journal.EventCanaryStep:    "step",
	journal.EventCheckFailed:   "check_failed",
	journal.EventAborted:       "aborted",
	journal.EventPromoted:      "promoted",
	journal.EventPromoteDenied: "denied",
}

// notifyLocked hands a journaled event to the webhooks that want it, with
// the time it was journaled. It only enqueues: it never waits for a
// receiver. Callers hold d.mu.
func (d *Daemon) notifyLocked(name, msg string, details map[string]any, at time.Time) {
	ev, ok := notifyOf[name]
	if !ok || d.current == nil || len(d.current.Notify) == 0 || d.notifier == nil {
		return
	}
	hooks := make([]notify.Hook, len(d.current.Notify))
	for i, h := range d.current.Notify {
		hooks[i] = notify.Hook{URL: h.URL, Events: h.Events, Public: h.AllowPrivate != nil && !*h.AllowPrivate}
	}
	m := notify.Message{Project: d.current.Project, Event: ev, Time: at,
		Text: fmt.Sprintf("[%s] %s", d.current.Project, msg)}
	if img, ok := details["image"].(string); ok {
		m.Image = img
	}
	if w, ok := details["weight"].(int); ok {
		m.Weight = &w
	}
	switch r := details["reasons"].(type) {
	case []string:
		m.Reasons = r
	}
	if f, ok := details["figures"].(map[string]any); ok {
		m.Figures = f
	}
	d.notifier.Send(hooks, m)
}

// notifyFailed journals a notification given up on; never fatal. The
// receiver is named by scheme and host only (redact.URL), and notify's
// errors never quote the URL; the scrubber in event is the last line.
func (d *Daemon) notifyFailed(url string, m notify.Message, err error) {
	why := redact.Error(err)
	d.event(journal.EventNotifyFailed, fmt.Sprintf("%s notification to %s not delivered: %s", m.Event, redact.URL(url), why), "",
		map[string]any{"url": redact.URL(url), "event": m.Event, "error": why})
}
