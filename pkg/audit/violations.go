package audit

import (
	"fmt"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

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
