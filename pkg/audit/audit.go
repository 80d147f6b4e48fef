// Package audit turns SwiftDeploy's journal (history.jsonl) into a Markdown
// audit report: a summary, a timeline of what happened, every policy
// violation with the observed value and its threshold, charts of p99
// latency and error rate, and the result of the journal's integrity check.
//
// Render is a pure function of its Input, so a report can be regenerated
// byte for byte from the same journal.
package audit

import (
	"bytes"
	"fmt"
	"math"
	"path/filepath"
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
	// Records are the journal's records, oldest first.
	Records []journal.Record
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
func Render(in Input) []byte {
	r := &report{in: in}
	r.header()
	r.summary()
	r.timeline()
	r.violations()
	r.charts()
	r.integrity()
	return r.buf.Bytes()
}

type report struct {
	in  Input
	buf bytes.Buffer
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
	if r.in.ReadError != "" {
		r.printf("> **⚠️ Reading stopped early:** %s. This report covers the %d records before that point.\n\n", md(r.in.ReadError), len(r.in.Records))
	}
	recs := r.in.Records
	r.printf("- Journal: `%s` (%d records)\n", r.in.Journal, len(recs))
	if len(recs) == 0 {
		r.printf("- Period: no records\n\n")
		return
	}
	first, last := recs[0].Timestamp.UTC(), recs[len(recs)-1].Timestamp.UTC()
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

func (r *report) summary() {
	var c struct {
		deployOK, deployFailed, deployDenied, promoted, promoteDenied int
		decisionsDenied, chaos, recovered, rollbacks, rejected        int
		snapshots, snapshotsFailed                                    int
	}
	for _, rec := range r.in.Records {
		switch rec.Type {
		case journal.TypeEvent:
			switch rec.Event {
			case journal.EventDeploySucceeded:
				c.deployOK++
			case journal.EventDeployFailed:
				c.deployFailed++
			case journal.EventDeployDenied:
				c.deployDenied++
			case journal.EventPromoted:
				c.promoted++
			case journal.EventPromoteDenied:
				c.promoteDenied++
			case journal.EventChaosInjected:
				c.chaos++
			case journal.EventChaosRecovered:
				c.recovered++
			case journal.EventRollback:
				c.rollbacks++
			case journal.EventManifestRejected:
				c.rejected++
			}
		case journal.TypeDecision:
			if rec.Allowed != nil && !*rec.Allowed {
				c.decisionsDenied++
			}
		case journal.TypeSnapshot:
			c.snapshots++
			if rec.Policy == journal.PolicyFail {
				c.snapshotsFailed++
			}
		}
	}
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
	journal.EventManifestApplied:     "Manifest applied",
	journal.EventManifestRejected:    "Manifest rejected",
	journal.EventNginxConfigRejected: "Nginx config rejected",
	journal.EventEngineUnreachable:   "Docker engine unreachable",
	journal.EventEngineReconnected:   "Docker engine reachable again",
	journal.EventDaemonStarted:       "Daemon started",
	journal.EventDaemonStopped:       "Daemon stopped",
	eventDown:                        "Stack removed (down)",
}

// routineEvents are left out of the timeline; any event not listed here
// or in timelineTitles (a newer daemon's) is shown under its own name.
var routineEvents = map[string]bool{
	journal.EventDeployStarted:      true, // the outcome is what matters
	journal.EventPromoteRequested:   true,
	journal.EventPromoteAllowed:     true,
	journal.EventContainerCreated:   true,
	journal.EventContainerRemoved:   true,
	journal.EventContainerRestarted: true,
	journal.EventNginxReloaded:      true,
}

func (r *report) timeline() {
	// Journals from daemons that do not record mode switches get them
	// derived from the mode of consecutive snapshots.
	explicitSwitches := false
	for _, rec := range r.in.Records {
		if rec.Type == journal.TypeEvent && rec.Event == journal.EventModeSwitched {
			explicitSwitches = true
			break
		}
	}
	var entries []entry
	mode := ""
	for _, rec := range r.in.Records {
		switch rec.Type {
		case journal.TypeSnapshot:
			if !explicitSwitches && rec.Mode != "" {
				if mode != "" && rec.Mode != mode {
					entries = append(entries, entry{rec.Timestamp, "Mode switched to " + md(rec.Mode) + " (seen in metric snapshots)"})
				}
				mode = rec.Mode
			}
		case journal.TypeEvent:
			if routineEvents[rec.Event] {
				continue
			}
			title, ok := timelineTitles[rec.Event]
			if !ok {
				title = "Event `" + rec.Event + "`"
			}
			text := title
			switch msg := eventText(rec); {
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
			entries = append(entries, entry{rec.Timestamp, text})
		}
	}
	r.printf("## Timeline\n\n")
	r.writeEntries(entries, "Nothing happened in this period.")
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

func (r *report) violations() {
	var entries []entry
	limits := r.in.Thresholds
	limitsSource := "current manifest"
	var run *failRun
	flush := func() {
		if run != nil {
			entries = append(entries, run.entry())
			run = nil
		}
	}
	for _, rec := range r.in.Records {
		switch rec.Type {
		case journal.TypeDecision:
			if t, ok := decisionThresholds(rec); ok {
				limits, limitsSource = t, "policy decision of "+rec.Timestamp.UTC().Format(time.TimeOnly)
			}
			if rec.Allowed != nil && !*rec.Allowed {
				flush()
				entries = append(entries, entry{rec.Timestamp, deniedDecision(rec)})
			}
		case journal.TypeSnapshot:
			if rec.Policy != journal.PolicyFail {
				// Only a failing snapshot of the same track ends a run:
				// snapshots of the other track interleave.
				if run != nil && rec.Track == run.track {
					flush()
				}
				continue
			}
			if run != nil && rec.Track != run.track {
				flush()
			}
			if run == nil {
				run = &failRun{track: rec.Track, mode: rec.Mode, first: rec.Timestamp, limits: limits, limitsSource: limitsSource}
			}
			run.add(rec)
		}
	}
	flush()
	r.printf("## Violations\n\n")
	r.writeEntries(entries, "No policy violation in this period.")
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

func (f *failRun) add(rec journal.Record) {
	f.n++
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
	if len(observed) > 0 {
		b.WriteString(". Observed: " + strings.Join(observed, ", "))
	}
	return b.String()
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
