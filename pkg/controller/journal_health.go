package controller

import (
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
	eventJournalRecovered = journal.EventJournalRecovered
	// eventSocketRecreated: the control socket was removed (its directory
	// deleted) and the daemon listens on its path again.
	eventSocketRecreated = "control_socket_recreated"
)

// noteJournal records the outcome of an append in d.journal (a
// journal.Health: a failing journal never stops the daemon, what runs
// keeps running and converging, and status says what is not recorded).
// Once the journal works again after failing, the failure itself is
// journaled with how many records it lost, so the gap in the history is
// explained. That record is written (and fsynced) after d.mu is released:
// a slow disk must not stall status, the scrape loop and manifest reads.
func (d *Daemon) noteJournal(what string, err error) {
	d.mu.Lock()
	rec, was := d.noteJournalLocked(what, err)
	d.mu.Unlock()
	if rec == nil {
		return
	}
	if rerr := d.jr.Append(*rec); rerr != nil {
		// Still failing: the gap goes on, from when it started.
		d.mu.Lock()
		d.journal.RecoveryFailed(was, rerr)
		d.mu.Unlock()
	}
}

// noteJournalLocked updates the journal's health with an append's outcome
// and returns the journal_recovered record to write, if the journal just
// recovered, with the health as it was before.
func (d *Daemon) noteJournalLocked(what string, err error) (*journal.Record, journal.Health) {
	d.metrics.JournalAppend(err)
	if err != nil {
		if d.journal.Failed(err, time.Now().UTC()) {
			d.log.Error("journal failing: records are not being written; the daemon keeps converging", zap.String("record", what), zap.Error(err))
		}
		return nil, journal.Health{}
	}
	if r := d.jr.TakeReopened(); r != nil {
		d.journalReopenedLocked(r)
	}
	rec, was := d.journal.Succeeded(time.Now().UTC())
	if rec != nil {
		d.log.Info("journal writable again", zap.Int("lost", was.Lost))
	}
	return rec, was
}

// journalReopenedLocked notes that the journal's file was removed or
// replaced and the daemon now writes to the file at its path; the journal
// itself wrote journal_reopened first into it. Status says so until the
// daemon restarts.
func (d *Daemon) journalReopenedLocked(r *journal.Reopened) {
	d.journal.Reopened = time.Now().UTC()
	d.log.Warn("journal file was removed or replaced; writing to the file now at its path", zap.String("path", d.cfg.JournalPath), zap.String("previous_head", r.PrevHead))
}

// journalStatusLocked is the journal's part of status; nil when healthy.
func (d *Daemon) journalStatusLocked() *api.JournalStatus {
	h := d.journal
	if h.Healthy() {
		return nil
	}
	s := &api.JournalStatus{Error: h.Err, LostRecords: h.Lost, TornTail: h.TornFile}
	if !h.Since.IsZero() {
		s.FailingSince = h.Since
	}
	if !h.Reopened.IsZero() {
		t := h.Reopened
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
	d.journal.TornFile = torn
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
