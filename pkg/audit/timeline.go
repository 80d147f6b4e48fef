package audit

import (
	"fmt"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// entry is one dated line of the timeline or of the violations.
type entry struct {
	at   time.Time
	text string // Markdown, after the time
}

// writeEntries writes entries grouped under a heading per UTC date.
func (r *report) writeEntries(entries []entry, none string) {
	if len(entries) == 0 {
		r.printf("%s\n\n", none)
		return
	}
	day := ""
	for _, e := range entries {
		at := e.at.UTC()
		if d := at.Format(time.DateOnly); d != day {
			if day != "" {
				r.printf("\n")
			}
			day = d
			r.printf("### %s\n\n", d)
		}
		r.printf("- %s — %s\n", at.Format(time.TimeOnly), e.text)
	}
	r.printf("\n")
}

// timelineTitles names the events the timeline shows. Routine events
// (container_created, nginx_reloaded, ...) are left out: they are in the
// journal for debugging, not for an audit.
var timelineTitles = map[string]string{
	journal.EventDeploySucceeded:     "Deploy succeeded",
	journal.EventDeployFailed:        "Deploy failed",
	journal.EventDeployDenied:        "Deploy denied",
	journal.EventModeSwitched:        "Mode switched",
	journal.EventChaosInjected:       "Chaos injected",
	journal.EventChaosRecovered:      "Chaos recovered",
	journal.EventChaosDenied:         "Chaos denied",
	journal.EventChaosFailed:         "Chaos failed",
	journal.EventPromoteDenied:       "Promotion denied",
	journal.EventPromoted:            "Promoted",
	journal.EventRollback:            "Rolled back",
	journal.EventRolledBack:          "Rolled back",
	journal.EventPromoteFailed:       "Promotion did not take effect",
	journal.EventRollbackFailed:      "Rollback did not take effect",
	journal.EventStepFailed:          "Canary step did not take effect",
	journal.EventPolicyReloadFailed:  "Policy reload failed",
	journal.EventJournalPruned:       "Journal pruned (retention; the chain resumes at the checkpoint)",
	journal.EventTransitionAborted:   "Interrupted transition settled",
	journal.EventScrapeFailed:        "Metrics scrape failing",
	journal.EventScrapeRecovered:     "Metrics scrape recovered",
	journal.EventAccessDenied:        "Access denied",
	journal.EventManifestApplied:     "Manifest applied",
	journal.EventManifestRejected:    "Manifest rejected",
	journal.EventNginxConfigRejected: "Nginx config rejected",
	journal.EventEngineUnreachable:   "Docker engine unreachable",
	journal.EventEngineReconnected:   "Docker engine reachable again",
	journal.EventDaemonStarted:       "Daemon started",
	journal.EventDaemonStopped:       "Daemon stopped",
	eventDown:                        "Stack removed (down)",
	journal.EventCanaryStep:          "Canary step",
	journal.EventCheckPassed:         "Canary check passed",
	journal.EventCheckFailed:         "Canary check failed",
	journal.EventCheckGrace:          "Canary check without data (grace, not counted)",
	journal.EventStepsCompleted:      "Canary steps completed",
	journal.EventAborted:             "Canary aborted",
	journal.EventRolloutPaused:       "Rollout paused",
	journal.EventRolloutResumed:      "Rollout resumed",
	journal.EventNotifyFailed:        "Notification not delivered",
}

// routineEvents are left out of the timeline; any event not listed here
// or in timelineTitles (a newer daemon's) is shown under its own name.
var routineEvents = map[string]bool{
	journal.EventDeployStarted:      true, // the outcome is what matters
	journal.EventPromoteRequested:   true,
	journal.EventPromoteAllowed:     true,
	journal.EventRollbackRequested:  true,
	journal.EventImagePulled:        true,
	journal.EventContainerCreated:   true,
	journal.EventContainerRemoved:   true,
	journal.EventContainerRestarted: true,
	journal.EventNginxReloaded:      true,
}

// addTimeline adds rec's timeline line, if it has one, and returns its
// index, or -1; of is the first record of the streak rec sums up, if any.
func (r *report) addTimeline(rec journal.Record, of *first) int {
	switch rec.Type {
	case journal.TypeSnapshot:
		if !r.explicitSwitches && rec.Mode != "" {
			if r.mode != "" && rec.Mode != r.mode {
				r.timeline = append(r.timeline, entry{rec.Timestamp, "Mode switched to " + md(rec.Mode) + " (seen in metric snapshots)"})
			}
			r.mode = rec.Mode
		}
	case journal.TypeEvent:
		if routineEvents[rec.Event] {
			return -1
		}
		title, ok := timelineTitles[rec.Event]
		if !ok {
			title = "Event `" + rec.Event + "`"
		}
		text := title
		switch msg := eventText(rec); {
		case rec.Count > 1:
			text += " " + streak(rec)
			if msg != "" {
				text += ": " + md(msg)
			}
		case msg == "":
		case len(msg) > len(title) && strings.EqualFold(msg[:len(title)], title):
			// The message restates the event ("Mode switched to
			// canary ..."): it says it better than title + message.
			text = title + md(msg[len(title):])
		default:
			text += ": " + md(msg)
		}
		if rec.User != "" {
			text += " (by " + md(rec.User) + ")"
		}
		at := -1
		if of != nil {
			at = of.timeline
		}
		return place(&r.timeline, rec, text, at)
	}
	return -1
}

func (r *report) writeTimeline() {
	r.printf("## Timeline\n\n")
	r.writeEntries(r.timeline, "Nothing happened in this period.")
}

// denialEvents are the events that say a policy denied; their messages
// repeat "DENIED: ", which the timeline's title already says.
var denialEvents = map[string]bool{journal.EventDeployDenied: true, journal.EventPromoteDenied: true}

// eventText is an event's message as text for the timeline. Daemons have
// written a denial's reasons with fmt.Sprint ("DENIED: [a b]"), which reads
// as a Go slice: the reasons in the event's details, joined by "; ",
// replace it, or without details the brackets are dropped.
func eventText(rec journal.Record) string {
	msg := rec.Message
	if denialEvents[rec.Event] {
		msg = strings.TrimPrefix(msg, "DENIED: ")
	}
	reasons := detailReasons(rec.Details)
	switch {
	case msg == "":
		return strings.Join(reasons, "; ")
	case len(reasons) > 0:
		return strings.Replace(msg, fmt.Sprint(reasons), strings.Join(reasons, "; "), 1)
	case denialEvents[rec.Event] && len(msg) >= 2 && msg[0] == '[' && msg[len(msg)-1] == ']':
		return msg[1 : len(msg)-1]
	}
	return msg
}

// detailReasons reads details.reasons, a list of strings, as the daemon
// writes it for denials; nil for anything else.
func detailReasons(details map[string]any) []string {
	list, _ := details["reasons"].([]any)
	var reasons []string
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			return nil
		}
		reasons = append(reasons, s)
	}
	return reasons
}
