package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// EventJournalPruned is written by the journal itself, into the active
// file, before it deletes rotated files under its retention (Options.
// RetainBytes, RetainAge). Its details carry the hash of the last line of
// every file it deletes ("heads", oldest first) and their names ("files"):
// the first line left then chains to one of those heads, and Verify
// accepts that gap because this record, itself in the chain, vouches for
// it. Written before the deletion, so a crash in the middle of it leaves a
// journal that still verifies.
const EventJournalPruned = "journal_pruned"

// pruneCandidates lists the rotated files that retention deletes now, oldest
// first: a prefix of the rotated files, while the rotated files together
// exceed RetainBytes or the file's last record is older than RetainAge. The
// active file is never pruned.
func (j *Journal) pruneCandidates() ([]string, error) {
	if j.opts.RetainBytes <= 0 && j.opts.RetainAge <= 0 {
		return nil, nil
	}
	nums, err := rotatedNumbers(j.path)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(nums))
	sizes := make([]int64, len(nums))
	var total int64
	for i, n := range nums {
		names[i] = rotatedName(j.path, n)
		fi, err := os.Stat(names[i])
		if err != nil {
			return nil, fmt.Errorf("journal retention: %w", err)
		}
		sizes[i] = fi.Size()
		total += sizes[i]
	}
	cutoff := time.Time{}
	if j.opts.RetainAge > 0 {
		cutoff = j.opts.Now().Add(-j.opts.RetainAge)
	}
	var out []string
	for i, name := range names {
		tooBig := j.opts.RetainBytes > 0 && total > j.opts.RetainBytes
		tooOld := false
		if !cutoff.IsZero() {
			last, ok := lastTimestamp(name)
			tooOld = ok && last.Before(cutoff)
		}
		if !tooBig && !tooOld {
			break // keep the rest: only the oldest files go, so the chain stays whole
		}
		out = append(out, name)
		total -= sizes[i]
	}
	return out, nil
}

// prune applies the retention after a rotation: it journals which files go
// and the hashes of their last lines (the checkpoint), then deletes them.
// Callers hold j.mu and have no buffered lines chained past j.head.
func (j *Journal) prune() error {
	names, err := j.pruneCandidates()
	if err != nil || len(names) == 0 {
		return err
	}
	heads := make([]any, 0, len(names))
	files := make([]any, 0, len(names))
	for _, name := range names {
		b, err := lastLine(name)
		if err != nil {
			return fmt.Errorf("journal retention: %w", err)
		}
		if b == nil {
			return fmt.Errorf("journal retention: %s has no complete line", name)
		}
		heads = append(heads, hashLine(b))
		files = append(files, filepath.Base(name))
	}
	why := []string{}
	if j.opts.RetainBytes > 0 {
		why = append(why, fmt.Sprintf("rotated files beyond %d bytes", j.opts.RetainBytes))
	}
	if j.opts.RetainAge > 0 {
		why = append(why, "records older than "+j.opts.RetainAge.String())
	}
	l, err := encode(Record{
		Type:    TypeEvent,
		Event:   EventJournalPruned,
		Message: fmt.Sprintf("retention (%s): deleted %d rotated journal file(s); the chain resumes after %s", strings.Join(why, ", "), len(names), shortHash(heads[len(heads)-1].(string))),
		Details: map[string]any{"files": files, "heads": heads},
	}, j.head, j.opts.Now)
	if err != nil {
		return fmt.Errorf("journal retention: %w", err)
	}
	if _, err := j.commit([]line{l}); err != nil {
		return fmt.Errorf("journal retention: checkpoint: %w", err)
	}
	var errs []error
	for _, name := range names {
		if err := removeFile(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("journal retention: %w", err))
			break // keep the rest: only a prefix may go
		}
	}
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeFile deletes a pruned file; tests make it fail part way (a crash
// in the middle of a prune).
var removeFile = os.Remove

// prunedHeads are the heads a journal_pruned record vouches for.
func prunedHeads(r Record) []string {
	if r.Type != TypeEvent || r.Event != EventJournalPruned {
		return nil
	}
	hs, _ := r.Details["heads"].([]any)
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		if s, ok := h.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// retain applies the retention after a rotation, once nothing buffered is
// chained past the head. r is durable already: a failure is reported once
// by the next AppendBuffered, Flush or Close, and retried at the next
// rotation.
func (j *Journal) retain() {
	if !j.rotatedNow || len(j.pending) > 0 {
		return
	}
	j.rotatedNow = false
	if err := j.prune(); err != nil && j.flushErr == nil {
		j.flushErr = err
	}
}
