package controller

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// DefaultJournalMaxBytes is the size at which the daemon rotates the
// journal's active file (history.jsonl → history.N.jsonl); the hash chain
// continues into the new file. 8 MiB is some weeks of an active project.
const DefaultJournalMaxBytes = 8 << 20

// The journal's retention of rotated files (journal.Options.RetainBytes,
// RetainAge): the oldest rotated files go once they together pass 64 MiB
// (about a month of an idle project at 2 MB a day, eight rotations) or
// once their last record is 90 days old, with a journal_pruned record
// that keeps the chain verifiable.
const (
	DefaultJournalRetainBytes = 64 << 20
	DefaultJournalRetainAge   = 90 * 24 * time.Hour
)

// Journal events of the daemon's own health.
const (
	eventJournalTornTail  = "journal_torn_tail"
	eventJournalRecovered = "journal_recovered"
	// eventSocketRecreated: the control socket was removed (its directory
	// deleted) and the daemon listens on its path again.
	eventSocketRecreated = "control_socket_recreated"
)

// journalHealth is what status says of the journal. A failing journal
// (disk full, read-only file system) never stops the daemon: what runs
// keeps running and converging, and status says what is not recorded.
type journalHealth struct {
	err      string    // the last append failure; "" while appends succeed
	since    time.Time // first failure of the current run of failures
	lost     int       // records not written since
	tornFile string    // where Open set aside a torn tail found at start
	reopened time.Time // when the journal last reopened its removed or replaced file
}

// noteJournal records the outcome of an append. Once the journal works
// again after failing, the failure itself is journaled with how many
// records it lost, so the gap in the history is explained. That record is
// written (and fsynced) after d.mu is released: a slow disk must not stall
// status, the scrape loop and manifest reads.
func (d *Daemon) noteJournal(what string, err error) {
	d.mu.Lock()
	rec, was := d.noteJournalLocked(what, err)
	d.mu.Unlock()
	if rec == nil {
		return
	}
	rerr := d.jr.Append(*rec)
	if rerr == nil {
		return
	}
	// Still failing: the gap goes on, from when it started.
	d.mu.Lock()
	defer d.mu.Unlock()
	h := &d.journal
	if h.err == "" {
		h.since, h.lost = was.since, was.lost
	} else {
		// Failures noted meanwhile started a run of their own: one gap.
		h.since, h.lost = was.since, h.lost+was.lost
	}
	h.err = rerr.Error()
}

// noteJournalLocked updates the journal's health with an append's outcome
// and returns the journal_recovered record to write, if the journal just
// recovered, with the health as it was before.
func (d *Daemon) noteJournalLocked(what string, err error) (*journal.Record, journalHealth) {
	d.metrics.JournalAppend(err)
	h := &d.journal
	if err == nil {
		if r := d.jr.TakeReopened(); r != nil {
			d.journalReopenedLocked(r)
		}
	}
	if err != nil {
		if h.err == "" {
			h.since = time.Now().UTC()
			d.log.Error("journal failing: records are not being written; the daemon keeps converging", zap.String("record", what), zap.Error(err))
		}
		h.err = err.Error()
		h.lost++
		return nil, journalHealth{}
	}
	if h.err == "" {
		return nil, journalHealth{}
	}
	was := *h
	h.err, h.lost, h.since = "", 0, time.Time{}
	d.log.Info("journal writable again", zap.Int("lost", was.lost))
	return &journal.Record{
		Type: journal.TypeEvent, Timestamp: time.Now().UTC(), Event: eventJournalRecovered,
		Message: fmt.Sprintf("journal writable again; %d record(s) could not be written since %s: %s", was.lost, was.since.Format(time.RFC3339), was.err),
		Details: map[string]any{"lost": was.lost, "since": was.since.Format(time.RFC3339Nano), "error": was.err},
	}, was
}

// journalReopenedLocked notes that the journal's file was removed or
// replaced and the daemon now writes to the file at its path; the journal
// itself wrote journal_reopened first into it. Status says so until the
// daemon restarts.
func (d *Daemon) journalReopenedLocked(r *journal.Reopened) {
	d.journal.reopened = time.Now().UTC()
	d.log.Warn("journal file was removed or replaced; writing to the file now at its path", zap.String("path", d.cfg.JournalPath), zap.String("previous_head", r.PrevHead))
}

// journalStatusLocked is the journal's part of status; nil when healthy.
func (d *Daemon) journalStatusLocked() *api.JournalStatus {
	h := d.journal
	if h.err == "" && h.tornFile == "" && h.reopened.IsZero() {
		return nil
	}
	s := &api.JournalStatus{Error: h.err, LostRecords: h.lost, TornTail: h.tornFile}
	if !h.since.IsZero() {
		s.FailingSince = h.since
	}
	if !h.reopened.IsZero() {
		t := h.reopened
		s.Reopened = &t
	}
	return s
}

// noteTornTail journals that Open found a torn tail (a write cut by a
// crash) and set it aside; status keeps saying so until the daemon restarts.
func (d *Daemon) noteTornTail() {
	torn := d.jr.TornFile()
	if torn == "" {
		return
	}
	d.mu.Lock()
	d.journal.tornFile = torn
	d.mu.Unlock()
	d.log.Warn("journal had a torn tail (a write cut by a crash); set aside, the chain continues from the last whole record", zap.String("file", torn))
	d.event(eventJournalTornTail, "journal had a torn tail at start (a write cut by a crash); its bytes were set aside in "+torn, "", map[string]any{"file": torn})
}

// snapshot journals a track's figures. Snapshots of an idle track (no
// data, or no requests) repeat identically every scrape: they coalesce
// into one record and a summary (journal.Repeats) instead of one line a
// scrape. A busy track's snapshots are buffered as before.
func (d *Daemon) snapshot(rec journal.Record) {
	key := "snapshot/" + rec.Track
	var err error
	if rec.ReqPerSec == nil || *rec.ReqPerSec == 0 {
		err = d.repeats.Append(d.jr, key, rec)
	} else if err = d.repeats.End(d.jr, key); err == nil {
		err = d.jr.AppendBuffered(rec)
	}
	d.noteJournal("snapshot", err)
}
