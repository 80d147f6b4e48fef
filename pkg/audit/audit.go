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

// finish ends the second pass.
func (r *report) finish() {
	r.endRun()
}

func (r *report) printf(format string, a ...any) { fmt.Fprintf(&r.buf, format, a...) }
