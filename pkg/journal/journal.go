package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/failpoint"
)

// ErrClosed is returned by every method of a closed Journal.
var ErrClosed = errors.New("journal is closed")

// maxPending bounds the buffered records: AppendBuffered writes them out
// synchronously when there are this many, and refuses new records if that
// write fails (disk full) instead of growing without limit.
const maxPending = 1024

// maxReusedBuf is the largest write buffer kept between writes.
const maxReusedBuf = 64 << 10

// Options tune a Journal; the zero value is usable.
type Options struct {
	// MaxBytes rotates the active file when the next line would make it
	// larger than this; 0 never rotates. A single line larger than MaxBytes
	// still goes into a file of its own.
	MaxBytes int64
	// FlushInterval is the longest a buffered record waits before it is
	// written and fsynced. Default 1s.
	FlushInterval time.Duration
	// Now stamps records whose Timestamp is zero. Default time.Now.
	Now func() time.Time
	// RetainBytes and RetainAge are the retention of rotated files,
	// applied after each rotation: the oldest rotated files are deleted
	// while the rotated files together exceed RetainBytes, or while the
	// oldest one's last record is older than RetainAge. 0 keeps them (by
	// that measure). Before deleting, the journal writes a journal_pruned
	// record carrying the hashes of the deleted files' last lines, so
	// Verify still passes (see EventJournalPruned).
	RetainBytes int64
	RetainAge   time.Duration
	// Sync makes a write of the active file durable. Default (*os.File).
	// Sync; tests put a slow or failing disk here.
	Sync func(f *os.File) error
}

// Journal is the writer of one journal. It is safe for concurrent use; only
// one Journal (in one process) may have a given path open at a time.
type Journal struct {
	path string
	opts Options
	lock *os.File // holds the advisory lock while open
	torn string   // where Open set aside a torn tail, if it did

	mu      sync.Mutex
	f       *os.File
	size    int64  // bytes of f that are written and fsynced
	rotated int    // number of the newest rotated file, 0 if none
	head    string // hash of the last durable line
	pending []line // buffered lines not yet written, chained after head
	timer   *time.Timer
	buf     []byte
	// flushErr is a failure of a timed flush, reported once by the next
	// AppendBuffered, Flush or Close.
	flushErr error
	// broken is set when a failed write could not be undone: the file may
	// end in a partial line, so nothing more may be appended to it.
	broken error
	closed bool
	// reopened is set when the path stopped naming the open file and the
	// journal reopened it (see follow); TakeReopened reports it once.
	reopened *Reopened
	// marker is the EventJournalReopened record still to be written first
	// into the reopened file (a write that failed is retried).
	marker *Reopened
	// rotatedNow is set by a rotation; the retention runs once the lines
	// being written are durable (retain).
	rotatedNow bool
}

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

// Open opens the journal at path for appending, creating it if needed. It
// takes an advisory lock (failing with ErrLocked if another process holds
// it) and repairs a torn tail left by a crash: the bytes after the last
// valid line are moved to "<path>.torn-<unix seconds>" and the file is
// truncated, so the chain continues from the last valid line.
func Open(path string, o Options) (*Journal, error) {
	if path == "" {
		return nil, errors.New("open journal: path is empty")
	}
	if o.MaxBytes < 0 {
		return nil, fmt.Errorf("open journal %s: option MaxBytes: %d is negative", path, o.MaxBytes)
	}
	if o.RetainBytes < 0 || o.RetainAge < 0 {
		return nil, fmt.Errorf("open journal %s: options RetainBytes %d, RetainAge %v: negative", path, o.RetainBytes, o.RetainAge)
	}
	if o.FlushInterval < 0 {
		return nil, fmt.Errorf("open journal %s: option FlushInterval: %v is negative", path, o.FlushInterval)
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	lock, err := lockJournal(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	j := &Journal{path: path, opts: o, lock: lock, f: f}
	if err := j.recover(); err != nil {
		f.Close()
		lock.Close()
		return nil, err
	}
	// The file may have just been created: make its name durable too.
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		lock.Close()
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	return j, nil
}

// TornFile names the file where Open set aside a torn tail, or "" if the
// journal was intact. The daemon may want to record that it happened.
func (j *Journal) TornFile() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.torn
}

// recover finds the last valid line of the active file, sets aside anything
// after it, and picks up the chain and rotation state.
func (j *Journal) recover() error {
	st, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("stat journal %s: %w", j.path, err)
	}
	size := st.Size()
	good, err := completeEnd(j.f, size)
	if err != nil {
		return err
	}
	// Only the last write can be torn, but a crash can leave a whole line of
	// garbage (e.g. zeros from unwritten blocks): drop invalid lines from
	// the end until a valid one is found.
	for good > 0 {
		start, err := lineStart(j.f, good-1)
		if err != nil {
			return err
		}
		if b, ok := j.validLine(start, good-1); ok {
			j.head = hashLine(b)
			break
		}
		good = start
	}
	if good < size {
		if err := j.setAside(good, size); err != nil {
			return err
		}
	}
	j.size = good

	nums, err := rotatedNumbers(j.path)
	if err != nil {
		return err
	}
	if len(nums) > 0 {
		j.rotated = nums[len(nums)-1]
	}
	if j.size == 0 && j.rotated > 0 {
		// A fresh active file continues the chain of the newest rotated one.
		name := rotatedName(j.path, j.rotated)
		b, err := lastLine(name)
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("open journal %s: rotated file %s has no complete line to continue the chain from", j.path, name)
		}
		j.head = hashLine(b)
	}
	return nil
}

// validLine reads bytes [start, end) of the active file and reports whether
// they are one decodable record.
func (j *Journal) validLine(start, end int64) ([]byte, bool) {
	if end-start > MaxLineBytes {
		return nil, false
	}
	b := make([]byte, end-start)
	if _, err := j.f.ReadAt(b, start); err != nil {
		return nil, false
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, false
	}
	return b, true
}

// setAside copies bytes [from, to) of the active file to a new torn file,
// for forensics, then truncates the active file to from.
func (j *Journal) setAside(from, to int64) error {
	base := j.path + tornInfix + strconv.FormatInt(j.opts.Now().Unix(), 10)
	name := base
	var out *os.File
	for i := 2; ; i++ {
		var err error
		out, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || i > 100 {
			return fmt.Errorf("create torn-line file %s: %w", name, err)
		}
		name = base + "-" + strconv.Itoa(i)
	}
	_, err := io.Copy(out, io.NewSectionReader(j.f, from, to-from))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("save torn tail of journal %s to %s: %w", j.path, name, err)
	}
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		return err
	}
	if err := j.f.Truncate(from); err != nil {
		return fmt.Errorf("truncate journal %s to %d bytes: %w", j.path, from, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal %s: %w", j.path, err)
	}
	j.torn = name
	return nil
}

// Append writes r, and any buffered records before it, and fsyncs them
// before returning. On error r is not in the journal and the file is left
// ending at the last complete line. A zero Timestamp is filled from
// Options.Now; Prev is set to chain r to the previous line.
func (j *Journal) Append(r Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usable(); err != nil {
		return err
	}
	if err := j.follow(); err != nil {
		return fmt.Errorf("append %s: %w", describe(r), err)
	}
	l, err := encode(r, j.tip(), j.opts.Now)
	if err != nil {
		return fmt.Errorf("append to journal %s: %w", j.path, err)
	}
	batch := append(j.pending[:len(j.pending):len(j.pending)], l)
	n, err := j.commit(batch)
	j.pending = j.pending[min(n, len(j.pending)):]
	if err != nil {
		return fmt.Errorf("append %s: %w", describe(r), err)
	}
	j.retain()
	return nil
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

// AppendBuffered queues r to be written and fsynced within FlushInterval,
// on the next Append or Flush, or on Close, whichever comes first. Records
// keep their order with records passed to Append. It fails when r is
// invalid, or when the queue is full and writing it out fails; r is then not
// queued. It also reports, once, that an earlier timed flush failed; r is
// then queued, and the records that were not written are retried.
func (j *Journal) AppendBuffered(r Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usable(); err != nil {
		return err
	}
	if len(j.pending) >= maxPending {
		// A burst, or writes keep failing: write now rather than grow.
		if err := j.flush(); err != nil {
			j.flushErr = nil // superseded by this newer failure
			return fmt.Errorf("buffer %s: %w", describe(r), err)
		}
	}
	l, err := encode(r, j.tip(), j.opts.Now)
	if err != nil {
		return fmt.Errorf("buffer in journal %s: %w", j.path, err)
	}
	j.pending = append(j.pending, l)
	if len(j.pending) == 1 {
		j.armTimer()
	}
	return j.takeFlushErr()
}

// Flush writes and fsyncs every buffered record. It also reports, once, a
// failure of an earlier timed flush.
func (j *Journal) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.usable(); err != nil {
		return err
	}
	if err := j.flush(); err != nil {
		j.flushErr = nil // superseded by this newer failure
		return err
	}
	return j.takeFlushErr()
}

// Close flushes buffered records, closes the file and releases the lock.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return fmt.Errorf("close journal %s: %w", j.path, ErrClosed)
	}
	j.closed = true
	if j.timer != nil {
		j.timer.Stop()
	}
	var flushErr error
	if j.broken == nil {
		flushErr = j.flush()
	} else if len(j.pending) > 0 {
		flushErr = fmt.Errorf("journal %s: %d buffered records lost: %w", j.path, len(j.pending), j.broken)
	}
	err := errors.Join(j.takeFlushErr(), flushErr)
	if cerr := j.f.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close journal %s: %w", j.path, cerr))
	}
	// Closing the lock file releases the flock.
	if cerr := j.lock.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("release journal lock %s: %w", j.lock.Name(), cerr))
	}
	return err
}

func (j *Journal) usable() error {
	if j.closed {
		return fmt.Errorf("journal %s: %w", j.path, ErrClosed)
	}
	if j.broken != nil {
		return fmt.Errorf("journal %s is unusable since a failed write could not be undone: %w", j.path, j.broken)
	}
	return nil
}

// tip is the hash the next record chains to.
func (j *Journal) tip() string {
	if n := len(j.pending); n > 0 {
		return j.pending[n-1].hash
	}
	return j.head
}

func (j *Journal) takeFlushErr() error {
	err := j.flushErr
	j.flushErr = nil
	return err
}

func (j *Journal) armTimer() {
	if j.timer == nil {
		j.timer = time.AfterFunc(j.opts.FlushInterval, j.timedFlush)
		return
	}
	j.timer.Reset(j.opts.FlushInterval)
}

func (j *Journal) timedFlush() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.broken != nil || len(j.pending) == 0 {
		return
	}
	if err := j.flush(); err != nil {
		j.flushErr = err
		if j.broken == nil {
			j.armTimer() // retry: the disk may have room again
		}
	}
}

// flush commits the buffered records; those not written stay queued.
func (j *Journal) flush() error {
	if len(j.pending) == 0 {
		return nil
	}
	if err := j.follow(); err != nil {
		return fmt.Errorf("flush %d buffered records: %w", len(j.pending), err)
	}
	total := len(j.pending)
	n, err := j.commit(j.pending)
	j.pending = j.pending[n:]
	if err != nil {
		return fmt.Errorf("flush %d buffered records (%d written): %w", total, n, err)
	}
	j.retain()
	return nil
}

// commit writes lines in order, rotating the active file whenever the next
// line would take it past MaxBytes, and returns how many lines are durable.
func (j *Journal) commit(lines []line) (int, error) {
	done := 0
	for done < len(lines) {
		var n int
		var size int64
		for _, l := range lines[done:] {
			next := int64(len(l.bytes)) + 1
			if j.opts.MaxBytes > 0 && j.size+size > 0 && j.size+size+next > j.opts.MaxBytes {
				break
			}
			size += next
			n++
		}
		if n == 0 {
			if err := j.rotate(); err != nil {
				return done, err
			}
			continue
		}
		if err := j.write(lines[done : done+n]); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// write appends lines to the active file and fsyncs it. On failure it cuts
// the file back to its last complete line so no half line remains.
func (j *Journal) write(lines []line) error {
	buf := j.buf[:0]
	for _, l := range lines {
		buf = append(buf, l.bytes...)
		buf = append(buf, '\n')
	}
	if cap(buf) <= maxReusedBuf {
		j.buf = buf
	}
	_, err := j.writeBuf(buf)
	if err != nil {
		err = fmt.Errorf("write journal: %w", err) // err names the file
	} else if serr := j.sync(); serr != nil {
		// After a failed fsync the written bytes may or may not reach the
		// disk; cutting them off makes the outcome certain.
		err = fmt.Errorf("sync journal: %w", serr)
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr != nil {
			j.broken = fmt.Errorf("truncate journal %s back to %d bytes: %w", j.path, j.size, terr)
			return errors.Join(err, j.broken)
		}
		return err
	}
	j.size += int64(len(buf))
	j.head = lines[len(lines)-1].hash
	return nil
}

func (j *Journal) sync() error {
	if j.opts.Sync != nil {
		return j.opts.Sync(j.f)
	}
	return j.f.Sync()
}

// writeBuf writes buf to the active file. With failpoints armed it writes
// the first half, hits failpoint.JournalAppend (which may kill the process,
// leaving a torn line for the next Open to set aside), then the rest.
func (j *Journal) writeBuf(buf []byte) (int, error) {
	if !failpoint.Armed() || len(buf) < 2 {
		return j.f.Write(buf)
	}
	n, err := j.f.Write(buf[:len(buf)/2])
	if err != nil {
		return n, err
	}
	failpoint.Hit(failpoint.JournalAppend)
	m, err := j.f.Write(buf[len(buf)/2:])
	return n + m, err
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

// rotate renames the active file to the next rotated name and starts a new,
// empty active file; the chain simply continues into it.
func (j *Journal) rotate() error {
	next := j.rotated + 1
	dst := rotatedName(j.path, next)
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("rotate journal %s: %s already exists", j.path, dst)
	}
	if err := os.Rename(j.path, dst); err != nil {
		return fmt.Errorf("rotate journal %s to %s: %w", j.path, dst, err)
	}
	f, err := os.OpenFile(j.path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		err = fmt.Errorf("create journal %s after rotation: %w", j.path, err)
		if rerr := os.Rename(dst, j.path); rerr != nil {
			j.broken = fmt.Errorf("undo rotation of %s: %w", j.path, rerr)
			return errors.Join(err, j.broken)
		}
		return err
	}
	// Everything in the old file was fsynced when written; closing it
	// cannot lose data, so its error is not interesting.
	j.f.Close()
	j.f, j.size, j.rotated = f, 0, next
	j.rotatedNow = true
	return syncDir(filepath.Dir(j.path))
}

// describe names a record in error messages.
func describe(r Record) string {
	switch {
	case r.Type == TypeEvent && r.Event != "":
		return "event " + r.Event
	case r.Type == TypeDecision && r.PolicyName != "":
		return "decision of " + r.PolicyName
	case r.Type != "":
		return r.Type + " record"
	}
	return "record"
}
