package journal

import (
	"fmt"
	"time"
)

// EventJournalRecovered is the record its owner writes once a failing
// journal is writable again (Health.Succeeded): how many records the gap
// lost, since when, and the last failure.
const EventJournalRecovered = "journal_recovered"

// Health is what the owner of a Journal tells of it (in status): the run
// of append failures going on, a torn tail Open set aside, when the file
// was last reopened. A failing journal (disk full, read-only file system)
// need not stop its owner: Health says what is not recorded, and the
// record that ends the run explains the gap. It is not safe for
// concurrent use: the owner locks it.
type Health struct {
	Err      string    // the last append failure; "" while appends succeed
	Since    time.Time // first failure of the current run of failures
	Lost     int       // records not written since
	TornFile string    // where Open set aside a torn tail found at start
	Reopened time.Time // when the journal last reopened its removed or replaced file
}

// Healthy: appends succeed, no torn tail was set aside, the file was
// never reopened.
func (h *Health) Healthy() bool {
	return h.Err == "" && h.TornFile == "" && h.Reopened.IsZero()
}

// Failed notes an append that failed at now; first says it starts a run
// of failures.
func (h *Health) Failed(err error, now time.Time) (first bool) {
	first = h.Err == ""
	if first {
		h.Since = now
	}
	h.Err = err.Error()
	h.Lost++
	return first
}

// Succeeded notes an append that worked. When it ends a run of failures
// it returns the EventJournalRecovered record to write (at now), and the
// run it ended; else nil.
func (h *Health) Succeeded(now time.Time) (*Record, Health) {
	if h.Err == "" {
		return nil, Health{}
	}
	was := *h
	h.Err, h.Lost, h.Since = "", 0, time.Time{}
	return &Record{
		Type: TypeEvent, Timestamp: now, Event: EventJournalRecovered,
		Message: fmt.Sprintf("journal writable again; %d record(s) could not be written since %s: %s", was.Lost, was.Since.Format(time.RFC3339), was.Err),
		Details: map[string]any{"lost": was.Lost, "since": was.Since.Format(time.RFC3339Nano), "error": was.Err},
	}, was
}

// RecoveryFailed notes that writing Succeeded's record failed with err:
// the run it ended (was) goes on from when it started, one gap with any
// failures noted meanwhile.
func (h *Health) RecoveryFailed(was Health, err error) {
	if h.Err == "" {
		h.Since, h.Lost = was.Since, was.Lost
	} else {
		h.Since, h.Lost = was.Since, h.Lost+was.Lost
	}
	h.Err = err.Error()
}
