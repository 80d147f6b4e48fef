package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Reopened says that the journal's file was removed or replaced under it
// (its directory deleted and recreated, a backup restored) and the journal
// reopened the path instead of writing on into an unlinked file.
type Reopened struct {
	// PrevHead is the hash of the last line written to the old file. The
	// chain in the reopened file does not continue from it: a new file
	// starts a chain of its own, a restored one (or, if only the active
	// file went, the newest rotated one) continues its own last line, so
	// Verify may well pass. The journal_reopened record the journal writes
	// first into the reopened file names PrevHead, so a reader can tie the
	// two histories together and see that the records between are gone.
	PrevHead string
	// Head is what the reopened file's chain continues from ("" for a new,
	// empty file).
	Head string
}

// follow makes sure the path still names the open file before a write.
// Without it, a journal whose file (or directory) was removed would keep
// "succeeding" into an unlinked inode that no reader will ever see. If the
// path names another file, or none while its directory exists, the journal
// reopens it as Open would (lock, torn-tail repair, rotated files), and the
// lines being written are re-chained to the new head. If the directory is
// gone, the write fails: the journal does not recreate directories.
func (j *Journal) follow() error {
	cur, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("stat journal %s: %w", j.path, err)
	}
	on, err := os.Stat(j.path)
	if err == nil && os.SameFile(cur, on) {
		if j.marker != nil {
			if err := j.writeMarker(); err != nil {
				return err
			}
			return j.rechainPending()
		}
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stat journal %s: %w", j.path, err)
	}
	if _, derr := os.Stat(filepath.Dir(j.path)); derr != nil {
		return fmt.Errorf("journal %s was removed with its directory: %w", j.path, derr)
	}
	// The lock file may have survived (only the journal was replaced): it
	// is still ours, and a second flock on it would conflict with our own.
	lock := j.lock
	held, _ := j.lock.Stat()
	if now, err := os.Stat(j.path + lockSuffix); err != nil || held == nil || !os.SameFile(held, now) {
		if lock, err = lockJournal(j.path); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(j.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		if lock != j.lock {
			lock.Close()
		}
		return fmt.Errorf("reopen journal %s: %w", j.path, err)
	}
	prev := j.head
	oldF, oldLock, oldSize, oldRotated, oldTorn := j.f, j.lock, j.size, j.rotated, j.torn
	j.f, j.lock, j.head, j.size, j.rotated, j.torn = f, lock, "", 0, 0, ""
	if err := j.recover(); err != nil {
		f.Close()
		if lock != oldLock {
			lock.Close()
		}
		j.f, j.lock, j.head, j.size, j.rotated, j.torn = oldF, oldLock, prev, oldSize, oldRotated, oldTorn
		return fmt.Errorf("reopen journal %s: %w", j.path, err)
	}
	oldF.Close()
	if lock != oldLock {
		oldLock.Close()
	}
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		return fmt.Errorf("reopen journal %s: %w", j.path, err)
	}
	j.reopened = &Reopened{PrevHead: prev, Head: j.head}
	j.marker = j.reopened
	if err := j.writeMarker(); err != nil {
		return err
	}
	// The buffered lines were chained to the old head: chain them anew.
	return j.rechainPending()
}

// writeMarker writes the pending journal_reopened record, first in the
// reopened file (before the record whose write found the file gone).
func (j *Journal) writeMarker() error {
	r := j.marker
	if r == nil {
		return nil
	}
	l, err := encode(Record{
		Type:    TypeEvent,
		Event:   EventJournalReopened,
		Message: "journal file was removed or replaced while open (its directory deleted and recreated, or a backup restored); the records written after " + shortHash(r.PrevHead) + " and before this one are not in it",
		Details: map[string]any{"previous_head": r.PrevHead, "continues_from": r.Head},
	}, j.head, j.opts.Now)
	if err != nil {
		return fmt.Errorf("journal %s: reopen marker: %w", j.path, err)
	}
	if err := j.write([]line{l}); err != nil {
		return err
	}
	j.marker = nil
	return nil
}

func shortHash(h string) string {
	if h == "" {
		return "the start"
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// rechainPending re-chains the buffered lines to the current head. The
// records are decoded with their numbers kept as written, so only Prev
// changes.
func (j *Journal) rechainPending() error {
	prev := j.head
	for i, l := range j.pending {
		dec := json.NewDecoder(bytes.NewReader(l.bytes))
		dec.UseNumber()
		var r Record
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("re-chain buffered record in %s: %w", j.path, err)
		}
		r.Prev = prev
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("re-chain buffered record in %s: %w", j.path, err)
		}
		j.pending[i] = line{bytes: b, hash: hashLine(b)}
		prev = j.pending[i].hash
	}
	return nil
}

// TakeReopened reports, once, that the journal reopened its path because
// the file it had open was removed or replaced.
func (j *Journal) TakeReopened() *Reopened {
	j.mu.Lock()
	defer j.mu.Unlock()
	r := j.reopened
	j.reopened = nil
	return r
}
