package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

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
