// Package audit turns SwiftDeploy's journal (history.jsonl) into a Markdown
// audit report: a summary, a timeline of what happened, every policy
// violation with the observed value and its threshold, charts of p99
// latency and error rate, and the result of the journal's integrity check.
//
// Render is a pure function of its Input, so a report can be regenerated
// byte for byte from the same journal. It can stream the journal (Input.Read):
// its memory then grows with the report, not with the journal.
package audit

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// Policy names as journaled in decision records.
const (
	policyInfrastructure = "infrastructure"
	policyCanarySafety   = "canary_safety"
)

// Event names the daemon journals that pkg/journal has no constant for.
const eventDown = "down"

// MaxChartPoints bounds the points of each chart; longer series are
// downsampled.
const MaxChartPoints = 50

// Input is everything a report is made from.
type Input struct {
	// Journal names the journal in the report, e.g. "history.jsonl".
	Journal string
	// Records are the journal's records, oldest first. Ignored when Read
	// is set.
	Records []journal.Record
	// Read, when set, streams the journal's records instead: it calls fn
	// for each, oldest first, and returns why it stopped early, if it did
	// (that error is the report's ReadError). Render calls it twice, as
	// the charts need the number of points before drawing the first; the
	// second pass stops at the records the first one saw, so a journal
	// that grows meanwhile does not change the report. An error fn returns
	// must end Read and be returned.
	Read func(fn func(journal.Record) error) error
	// ReadError says why reading stopped before the end of the journal;
	// empty when every record was read.
	ReadError string
	// Verify is the result of journal.Verify, and VerifyError why it
	// could not run at all (then Verify is ignored).
	Verify      journal.VerifyReport
	VerifyError string
	// Thresholds are the limits in force when nothing in the journal says
	// otherwise (normally the current manifest's policy section). Decision
	// records carry the thresholds they were judged against and override
	// these from their time on.
	Thresholds Thresholds
}

// Thresholds are the canary-safety limits used to explain failing
// snapshots; nil means unknown.
type Thresholds struct {
	MaxErrorRate *float64 // fraction, 0-1
	MaxP99Ms     *float64
}

// Render writes the Markdown report.
func Render(in Input) []byte { return Build(in).Markdown }

// Report is a rendered report and what its making found.
type Report struct {
	Markdown []byte
	// Records is the number of records the report covers.
	Records int
	// ReadError is Input.ReadError, or why Input.Read stopped early.
	ReadError string
}

// Build renders the report, like Render, and says what it covered.
func Build(in Input) Report {
	read := in.Read
	if read == nil {
		read = func(fn func(journal.Record) error) error {
			for _, rec := range in.Records {
				if err := fn(rec); err != nil {
					return err
				}
			}
			return nil
		}
	}
	r := &report{in: in, readError: in.ReadError}
	// First pass: what the sections need to know before their first line.
	if err := read(func(rec journal.Record) error { r.scan(rec); return nil }); err != nil && r.readError == "" {
		r.readError = err.Error()
	}
	// Second pass: the sections' content, over the same records.
	r.start()
	seen := 0
	err := read(func(rec journal.Record) error {
		if seen == r.records {
			return errEnough
		}
		seen++
		r.add(rec)
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) && r.readError == "" {
		r.readError = err.Error()
	}
	r.finish()

	r.header()
	r.summary()
	r.writeTimeline()
	r.writeViolations()
	r.charts()
	r.integrity()
	return Report{Markdown: r.buf.Bytes(), Records: r.records, ReadError: r.readError}
}

// errEnough ends the second pass at the records the first one saw.
var errEnough = errors.New("audit: read enough")

// report is one report in the making: the first pass fills the scan
// fields, the second the sections, and only then is anything written.
type report struct {
	in        Input
	readError string
	buf       bytes.Buffer

	// First pass.
	records          int
	first, last      time.Time
	explicitSwitches bool // the journal records mode switches itself
	points           int  // chart points

	// Second pass.
	counts     counts
	timeline   []entry
	violations []entry
	mode       string     // the last snapshot's mode, to derive switches
	limits     Thresholds // in force for failing snapshots
	limitsFrom string
	run        *failRun
	denials    *denialRun
	chart      downsampler
	// firsts are recent records that may begin a streak whose summary
	// comes later, by streakKind; a few each, so memory stays bounded.
	firsts map[string][]first
}

// denialRun is consecutive denied decisions of one policy for the same
// reasons (by code; the figures in the text move), shown as one violation
// like a streak: a daemon journals every decision with its own input, so
// a busy host retrying a deploy writes one denied decision per retry.
type denialRun struct {
	key   string
	index int // its line in violations
	first time.Time
	count int
}

// denialKey is what consecutive denials share to be one run.
func denialKey(rec journal.Record) string {
	reasons := rec.Codes
	if len(reasons) == 0 {
		reasons = rec.Reasons
	}
	return strings.Join(append([]string{rec.PolicyName, rec.User}, reasons...), "\x00")
}

// addDenial adds a denied decision (n occurrences) to violations: a new
// line, or the line of the run it continues, rewritten with the count and
// the latest reasons and figures. It returns the index of an added line,
// else -1. of is the streak's first record when rec is its summary.
func (r *report) addDenial(rec journal.Record, n int, of *first) int {
	key := denialKey(rec)
	d := r.denials
	continues := d != nil && d.key == key && d.index == len(r.violations)-1 && (of == nil || of.violation == d.index)
	if !continues {
		if of != nil && of.violation >= 0 {
			return place(&r.violations, rec, deniedDecision(rec), of.violation)
		}
		// A run of failing snapshots that began earlier comes first.
		r.endRun()
		i := place(&r.violations, rec, deniedDecision(rec), -1)
		start := rec.Timestamp
		if rec.Count > 1 {
			start = rec.FirstSeen
		}
		r.denials = &denialRun{key: key, index: i, first: start, count: n}
		return i
	}
	d.count += n
	sum := rec
	last := rec.Timestamp
	if rec.Count > 1 {
		last = rec.LastSeen
	}
	sum.Count, sum.FirstSeen, sum.LastSeen = d.count, d.first, last
	r.violations[d.index].text = deniedDecision(sum)
	return -1
}

// first is a record that may be the first of a streak, and where its
// lines went (-1: it has none) so that the summary can take them over.
type first struct {
	at                  time.Time
	timeline, violation int
}

// maxFirsts bounds the records remembered per kind. Repeats ends a streak
// before writing another record under its key, so the first of a streak
// is normally the latest record of its kind.
const maxFirsts = 8

// scan takes one record of the first pass.
func (r *report) scan(rec journal.Record) {
	if r.records == 0 {
		r.first = rec.Timestamp
	}
	r.records++
	r.last = rec.Timestamp
	if rec.Type == journal.TypeEvent && rec.Event == journal.EventModeSwitched {
		// Journals from daemons that do not record mode switches get
		// them derived from the mode of consecutive snapshots.
		r.explicitSwitches = true
	}
	if _, ok := chartPoint(rec); ok {
		r.points++
	}
}

// start prepares the second pass.
func (r *report) start() {
	r.limits, r.limitsFrom = r.in.Thresholds, "current manifest"
	r.chart = newDownsampler(r.points)
}

// add takes one record of the second pass.
//
// A streak (see journal.Repeats) is two records: its first occurrence and,
// later, a summary with Count, FirstSeen and LastSeen. The summary's lines
// replace those of the first, so a streak is one line, and it counts
// Count-1 more occurrences; all Count if its first line is not there.
func (r *report) add(rec journal.Record) {
	weight, of := 1, (*first)(nil)
	if rec.Count > 1 {
		weight, of = rec.Count, r.takeFirst(rec)
		if of != nil {
			weight--
		}
	}
	r.counts.add(rec, weight)
	tl := r.addTimeline(rec, of)
	vi := r.addViolation(rec, weight, of)
	if rec.Count <= 1 {
		r.noteFirst(rec, tl, vi)
	}
	if p, ok := chartPoint(rec); ok {
		r.chart.add(p)
	}
}

// streakKind is what a streak's first record and its summary share besides
// the time: Repeats compares these, so they are equal.
func streakKind(rec journal.Record) string {
	return strings.Join([]string{rec.Type, rec.Event, rec.PolicyName, rec.User}, "\x00")
}

func (r *report) noteFirst(rec journal.Record, timeline, violation int) {
	if r.firsts == nil {
		r.firsts = map[string][]first{}
	}
	k := streakKind(rec)
	l := append(r.firsts[k], first{at: rec.Timestamp, timeline: timeline, violation: violation})
	r.firsts[k] = l[max(0, len(l)-maxFirsts):]
}

// takeFirst finds and forgets the first record of the streak rec sums up.
func (r *report) takeFirst(rec journal.Record) *first {
	k := streakKind(rec)
	l := r.firsts[k]
	for i := len(l) - 1; i >= 0; i-- {
		if l[i].at.Equal(rec.FirstSeen) {
			f := l[i]
			r.firsts[k] = slices.Delete(l, i, i+1)
			return &f
		}
	}
	return nil
}

// streak says how often and when a summary's record occurred:
// "32 times from 19:06:00 to 19:16:40".
func streak(rec journal.Record) string {
	return fmt.Sprintf("%d times from %s to %s", rec.Count,
		rec.FirstSeen.UTC().Format(time.TimeOnly), rec.LastSeen.UTC().Format(time.TimeOnly))
}

// place adds text at rec's time to entries, or, for a summary whose first
// record has a line there (index of), rewrites that line: the streak is
// shown where it began. It returns the index of an added line, else -1.
func place(entries *[]entry, rec journal.Record, text string, of int) int {
	if of >= 0 {
		(*entries)[of].text = text
		return -1
	}
	*entries = append(*entries, entry{rec.Timestamp, text})
	return len(*entries) - 1
}

// finish ends the second pass.
func (r *report) finish() {
	r.endRun()
}

func (r *report) printf(format string, a ...any) { fmt.Fprintf(&r.buf, format, a...) }

// intact reports whether the chain verified end to end.
func (r *report) intact() bool { return r.in.VerifyError == "" && r.in.Verify.OK }

func (r *report) header() {
	r.printf("# SwiftDeploy audit report\n\n")
	if !r.intact() {
		// Said first, before any figure the reader might otherwise trust.
		r.printf("> **⚠️ JOURNAL INTEGRITY CHECK FAILED.** %s The records below may have been altered; see [Journal integrity](#journal-integrity).\n\n", r.integrityProblem())
	}
	if r.readError != "" {
		r.printf("> **⚠️ Reading stopped early:** %s. This report covers the %d records before that point.\n\n", md(r.readError), r.records)
	}
	r.printf("- Journal: `%s` (%d records)\n", r.in.Journal, r.records)
	if r.records == 0 {
		r.printf("- Period: no records\n\n")
		return
	}
	first, last := r.first.UTC(), r.last.UTC()
	r.printf("- Period: %s to %s (%s)\n\n", first.Format(dateTime), last.Format(dateTime), last.Sub(first).Round(time.Second))
}

// dateTime is how the report writes a full timestamp; every time in the
// report is UTC, like the journal.
const dateTime = "2006-01-02 15:04:05 UTC"

func (r *report) integrityProblem() string {
	if r.in.VerifyError != "" {
		return "The journal could not be verified: " + md(r.in.VerifyError) + "."
	}
	if b := r.in.Verify.First; b != nil {
		return fmt.Sprintf("The hash chain breaks at `%s` line %d: %s.", filepath.Base(b.File), b.Line, md(b.Reason))
	}
	return "The hash chain did not verify."
}

// counts are the summary's figures.
type counts struct {
	deployOK, deployFailed, deployDenied, promoted, promoteDenied int
	decisionsDenied, chaos, recovered, rollbacks, rejected        int
	snapshots, snapshotsFailed                                    int
	// Progressive delivery; their rows are shown only when not 0, so a
	// report of a journal without steps reads as before.
	steps, checksFailed, aborts int
	// refused counts refused control API calls (access_denied, whose
	// repeats are journaled as counted summaries).
	refused int
}

// add counts rec as n occurrences (more than one for a streak).
func (c *counts) add(rec journal.Record, n int) {
	switch rec.Type {
	case journal.TypeEvent:
		switch rec.Event {
		case journal.EventDeploySucceeded:
			c.deployOK += n
		case journal.EventDeployFailed:
			c.deployFailed += n
		case journal.EventDeployDenied:
			c.deployDenied += n
		case journal.EventPromoted:
			c.promoted += n
		case journal.EventPromoteDenied:
			c.promoteDenied += n
		case journal.EventChaosInjected:
			c.chaos += n
		case journal.EventChaosRecovered:
			c.recovered += n
		case journal.EventRolledBack, journal.EventRollback:
			c.rollbacks += n
		case journal.EventManifestRejected:
			c.rejected += n
		case journal.EventCanaryStep:
			c.steps += n
		case journal.EventCheckFailed:
			c.checksFailed += n
		case journal.EventAborted:
			c.aborts += n
		case journal.EventAccessDenied:
			c.refused += n
		}
	case journal.TypeDecision:
		if rec.Allowed != nil && !*rec.Allowed {
			c.decisionsDenied += n
		}
	case journal.TypeSnapshot:
		c.snapshots += n
		if rec.Policy == journal.PolicyFail {
			c.snapshotsFailed += n
		}
	}
}

func (r *report) summary() {
	c := r.counts
	r.printf("## Summary\n\n")
	r.printf("| | Count |\n|---|---:|\n")
	rows := []struct {
		name string
		n    int
	}{
		{"Deploys succeeded", c.deployOK},
		{"Deploys failed", c.deployFailed},
		{"Deploys denied by policy", c.deployDenied},
		{"Promotions", c.promoted},
		{"Promotions denied by policy", c.promoteDenied},
		{"Policy denials (all decisions)", c.decisionsDenied},
		{"Chaos injected", c.chaos},
		{"Chaos recovered", c.recovered},
		{"Rollbacks", c.rollbacks},
		{"Manifest rejections", c.rejected},
		{"Metric snapshots", c.snapshots},
		{"Snapshots with policy FAIL", c.snapshotsFailed},
	}
	for _, row := range []struct {
		name string
		n    int
	}{{"Canary steps", c.steps}, {"Failed canary checks", c.checksFailed}, {"Canaries aborted", c.aborts}, {"Refused calls", c.refused}} {
		if row.n > 0 {
			rows = append(rows, row)
		}
	}
	for _, row := range rows {
		r.printf("| %s | %d |\n", row.name, row.n)
	}
	r.printf("\n")
}

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

// addViolation adds rec's violation, if it is one, as weight occurrences,
// and returns its index, or -1 (see addTimeline).
func (r *report) addViolation(rec journal.Record, weight int, of *first) int {
	switch rec.Type {
	case journal.TypeEvent:
		// A failed canary check and an abort are violations in their own
		// right: the analysis acted on them.
		if title, ok := violationEvents[rec.Event]; ok {
			text := title
			if msg := eventText(rec); msg != "" {
				text += ": " + md(msg)
			}
			if rec.User != "" {
				text += " (by " + md(rec.User) + ")"
			}
			r.endRun()
			at := -1
			if of != nil {
				at = of.violation
			}
			return place(&r.violations, rec, text, at)
		}
	case journal.TypeDecision:
		if t, ok := decisionThresholds(rec); ok {
			r.limits, r.limitsFrom = t, "policy decision of "+rec.Timestamp.UTC().Format(time.TimeOnly)
		}
		if rec.Allowed != nil && !*rec.Allowed {
			return r.addDenial(rec, weight, of)
		}
		if d := r.denials; d != nil && strings.HasPrefix(d.key, rec.PolicyName+"\x00") {
			r.denials = nil // the policy allowed: its run of denials ended
		}
	case journal.TypeSnapshot:
		if rec.Policy != journal.PolicyFail {
			// Only a passing snapshot of the same track ends a run:
			// snapshots of the other track interleave.
			if r.run != nil && rec.Track == r.run.track {
				r.endRun()
			}
			return -1
		}
		if r.run != nil && rec.Track != r.run.track {
			r.endRun()
		}
		if r.run == nil {
			r.run = &failRun{track: rec.Track, mode: rec.Mode, first: rec.Timestamp, limits: r.limits, limitsSource: r.limitsFrom}
		}
		r.run.add(rec, weight)
	}
	return -1
}

// violationEvents are the events the Violations list shows, by title.
var violationEvents = map[string]string{
	journal.EventCheckFailed: "Canary check failed",
	journal.EventAborted:     "Canary aborted",
}

// endRun ends a run of failing snapshots as one violation.
func (r *report) endRun() {
	if r.run != nil {
		r.violations = append(r.violations, r.run.entry())
		r.run = nil
	}
}

func (r *report) writeViolations() {
	r.printf("## Violations\n\n")
	r.writeEntries(r.violations, "No policy violation in this period.")
}

// failRun is a series of consecutive failing snapshots of one track,
// reported as one violation with the worst figures seen.
type failRun struct {
	track, mode  string
	first, last  time.Time
	n            int
	worstP99     *float64
	worstErr     *float64
	limits       Thresholds
	limitsSource string
}

func (f *failRun) add(rec journal.Record, n int) {
	f.n += n
	f.last = rec.Timestamp
	f.worstP99 = maxPtr(f.worstP99, rec.P99Latency)
	f.worstErr = maxPtr(f.worstErr, rec.ErrorRate)
}

func maxPtr(a, b *float64) *float64 {
	if a == nil || (b != nil && *b > *a) {
		return b
	}
	return a
}

func (f *failRun) entry() entry {
	var b strings.Builder
	track := f.track
	if track == "" {
		track = f.mode
	}
	fmt.Fprintf(&b, "Canary safety FAIL on the %s track", md(track))
	if f.n > 1 {
		fmt.Fprintf(&b, " until %s (%d snapshots)", f.last.UTC().Format(time.TimeOnly), f.n)
	}
	var figures []string
	if f.worstErr != nil {
		figures = append(figures, "error rate "+pct(*f.worstErr)+versus(f.worstErr, f.limits.MaxErrorRate, pct))
	}
	if f.worstP99 != nil {
		figures = append(figures, "p99 latency "+ms(*f.worstP99)+versus(f.worstP99, f.limits.MaxP99Ms, ms))
	}
	if len(figures) == 0 {
		b.WriteString(": no figures recorded")
	} else {
		label := ": "
		if f.n > 1 {
			label = ": worst "
		}
		b.WriteString(label + strings.Join(figures, ", "))
		if f.limits.MaxErrorRate != nil || f.limits.MaxP99Ms != nil {
			b.WriteString(" (thresholds from the " + f.limitsSource + ")")
		}
	}
	return entry{f.first, b.String()}
}

// versus compares an observed value with its limit: " > 500ms" when it
// exceeds it, " (limit 500ms)" when not, " (threshold unknown)" without one.
func versus(v, limit *float64, format func(float64) string) string {
	switch {
	case limit == nil:
		return " (threshold unknown)"
	case *v > *limit:
		return " > " + format(*limit) + " threshold"
	default:
		return " (within " + format(*limit) + ")"
	}
}

// decisionThresholds reads the canary-safety thresholds a decision was
// judged against.
func decisionThresholds(rec journal.Record) (Thresholds, bool) {
	if rec.PolicyName != policyCanarySafety {
		return Thresholds{}, false
	}
	th, _ := rec.Input["thresholds"].(map[string]any)
	t := Thresholds{MaxErrorRate: number(th["max_error_rate"]), MaxP99Ms: number(th["max_p99_ms"])}
	return t, t.MaxErrorRate != nil || t.MaxP99Ms != nil
}

// comparison is one observed input value and the threshold it is judged
// against.
type comparison struct {
	label, value, threshold string
	format                  func(float64) string
	min                     bool // the threshold is a minimum, not a maximum
}

var comparisons = map[string][]comparison{
	policyCanarySafety: {
		{label: "error rate", value: "error_rate", threshold: "max_error_rate", format: pct},
		{label: "p99 latency", value: "p99_latency", threshold: "max_p99_ms", format: ms},
		{label: "requests", value: "requests", threshold: "min_requests", format: count, min: true},
		// nginx's view, from its access log (absent from older records).
		{label: "proxy error rate", value: "proxy_error_rate", threshold: "max_error_rate", format: pct},
		{label: "proxy p99 latency", value: "proxy_p99_latency", threshold: "max_p99_ms", format: ms},
		{label: "proxy requests", value: "proxy_requests", threshold: "min_requests", format: count, min: true},
	},
	policyInfrastructure: {
		{label: "free disk", value: "disk_free_gb", threshold: "min_disk_gb", format: gb, min: true},
		{label: "CPU load", value: "cpu_load", threshold: "max_cpu_load", format: plain},
	},
}

func deniedDecision(rec journal.Record) string {
	var b strings.Builder
	switch rec.PolicyName {
	case policyCanarySafety:
		b.WriteString("Promotion denied (canary\\_safety)")
	case policyInfrastructure:
		b.WriteString("Deploy denied (infrastructure)")
	default:
		fmt.Fprintf(&b, "Denied by policy %s", md(rec.PolicyName))
	}
	if rec.Count > 1 {
		b.WriteString(" " + streak(rec))
	}
	if rec.User != "" {
		fmt.Fprintf(&b, ", asked by %s", md(rec.User))
	}
	reasons := make([]string, len(rec.Reasons))
	for i, s := range rec.Reasons {
		reasons[i] = md(s)
	}
	if len(reasons) > 0 {
		b.WriteString(": " + strings.Join(reasons, "; "))
	}
	th, _ := rec.Input["thresholds"].(map[string]any)
	var observed []string
	for _, c := range comparisons[rec.PolicyName] {
		if _, present := rec.Input[c.value]; !present {
			continue
		}
		if c.value == "cpu_load" && perCore(rec) {
			observed = append(observed, cpuPerCore(rec.Input, number(th[c.threshold])))
			continue
		}
		v, limit := number(rec.Input[c.value]), number(th[c.threshold])
		s := c.label + " "
		if v == nil {
			s += "unknown"
		} else {
			s += c.format(*v)
		}
		if limit != nil {
			kind := "max"
			if c.min {
				kind = "min"
			}
			s += " (" + kind + " " + c.format(*limit) + ")"
		}
		observed = append(observed, s)
	}
	switch {
	case len(observed) > 0 && rec.Count > 1:
		// A summary carries the figures of the streak's last denial.
		b.WriteString(". Last observed: " + strings.Join(observed, ", "))
	case len(observed) > 0:
		b.WriteString(". Observed: " + strings.Join(observed, ", "))
	}
	return b.String()
}

// perCore reports whether rec was judged by the per-core CPU limit: the
// input looks the same before and after max_cpu_load became per core, but
// policies of that kind give codes, and their CPU reason says "per core".
func perCore(rec journal.Record) bool {
	if len(rec.Codes) > 0 {
		return true
	}
	return slices.ContainsFunc(rec.Reasons, func(s string) bool { return strings.Contains(s, " per core") })
}

// cpuPerCore writes the observed load per core and its limit:
// "CPU load 2.4 per core, 4.8 on 2 CPUs (max 2 per core)".
func cpuPerCore(input map[string]any, limit *float64) string {
	load, cpus := number(input["cpu_load"]), number(input["cpu_count"])
	var s string
	switch {
	case load == nil:
		s = "CPU load unknown"
	case cpus == nil || *cpus <= 0:
		s = "CPU load " + plain(*load) + " on an unknown number of CPUs"
	default:
		s = fmt.Sprintf("CPU load %s per core, %s on %s CPUs", plain(*load / *cpus), plain(*load), count(*cpus))
	}
	if limit != nil {
		s += " (max " + plain(*limit) + " per core)"
	}
	return s
}

// number reads a JSON number; nil for null, absent or anything else.
func number(v any) *float64 {
	switch x := v.(type) {
	case float64:
		return &x
	case int:
		f := float64(x)
		return &f
	}
	return nil
}

func (r *report) integrity() {
	r.printf("## Journal integrity\n\n")
	v := r.in.Verify
	switch {
	case r.in.VerifyError != "":
		r.printf("**❌ NOT VERIFIED.** %s\n\n", r.integrityProblem())
		return
	case !v.OK:
		r.printf("**❌ CHAIN BROKEN.** %s\n\n", r.integrityProblem())
		r.printf("Every line from that point on may have been edited, removed or inserted; the lines before it are intact.\n\n")
	default:
		r.printf("**✅ Chain intact.** Every line is chained to the one before it by its SHA-256.\n\n")
	}
	names := make([]string, len(v.Files))
	for i, f := range v.Files {
		names[i] = "`" + filepath.Base(f) + "`"
	}
	r.printf("- Lines checked: %d\n", v.Lines)
	r.printf("- Files, in chain order: %s\n", strings.Join(names, ", "))
	if v.Head != "" {
		r.printf("- Head hash: `%s`\n", v.Head)
		r.printf("\nThe last line can only be protected by keeping the head hash somewhere else: compare it with a later report to detect a truncated tail.\n")
	}
}

// Number formats used in the report.

func pct(f float64) string { return strconv.FormatFloat(round(f*100, 2), 'f', -1, 64) + "%" }

func ms(f float64) string { return strconv.FormatFloat(round(f, 1), 'f', -1, 64) + "ms" }

func gb(f float64) string { return strconv.FormatFloat(round(f, 1), 'f', -1, 64) + "GB" }

func plain(f float64) string { return strconv.FormatFloat(round(f, 2), 'f', -1, 64) }

func count(f float64) string { return strconv.FormatFloat(round(f, 0), 'f', -1, 64) }

func round(f float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(f*p) / p
}

// mdEscaper escapes the characters that would turn journal text (which
// anyone who can write the manifest or call the API influences) into
// Markdown or HTML structure.
var mdEscaper = strings.NewReplacer(
	"\\", "\\\\", "`", "\\`", "*", "\\*", "_", "\\_", "[", "\\[", "]", "\\]",
	"<", "&lt;", ">", "&gt;", "|", "\\|", "#", "\\#", "\r\n", " ", "\n", " ", "\r", " ",
)

// md makes free text safe to embed in a Markdown line.
func md(s string) string { return mdEscaper.Replace(s) }
