package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrClosed is returned by every method of a closed Journal.
var ErrClosed = errors.New("journal is closed")

// maxPending bounds the buffered records: AppendBuffered writes them out
// synchronously when there are this many, and refuses new records if that
// write fails (disk full) instead of growing without limit.
const maxPending = 1024

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
