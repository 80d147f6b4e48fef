package journal

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// Filter selects records for Read. Zero fields select everything.
type Filter struct {
	Types  []string // record types to keep
	Events []string // event names to keep; when set, only events match
	Since  time.Time
	Until  time.Time // exclusive
}

func (f Filter) validate() error {
	for _, t := range f.Types {
		switch t {
		case TypeSnapshot, TypeEvent, TypeDecision:
		default:
			return fmt.Errorf("journal filter types: %q is not %s, %s or %s", t, TypeSnapshot, TypeEvent, TypeDecision)
		}
	}
	for _, e := range f.Events {
		if !eventName.MatchString(e) {
			return fmt.Errorf("journal filter events: %q is not an event name (snake_case, e.g. %q)", e, EventDeployStarted)
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return fmt.Errorf("journal filter: until %s is not after since %s", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	}
	return nil
}

func (f Filter) match(r Record) bool {
	if len(f.Types) > 0 && !slices.Contains(f.Types, r.Type) {
		return false
	}
	if len(f.Events) > 0 && (r.Type != TypeEvent || !slices.Contains(f.Events, r.Event)) {
		return false
	}
	if !f.Since.IsZero() && r.Timestamp.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !r.Timestamp.Before(f.Until) {
		return false
	}
	return true
}

// Read calls fn for every record that matches f, oldest first: rotated
// files in order, then the active file. It does not verify the chain (see
// Verify). An incomplete last line of the active file is skipped: it is a
// write in progress or a torn write the next Open sets aside. An error
// returned by fn stops Read and is returned as is.
func Read(path string, f Filter, fn func(Record) error) error {
	if err := f.validate(); err != nil {
		return err
	}
	files, err := journalFiles(path)
	if err != nil {
		return err
	}
	for _, name := range files {
		active := name == path
		if !active && !f.Since.IsZero() {
			// Records are appended in time order: a rotated file whose
			// last record is older than Since has nothing to give, and
			// skipping it keeps a recent query from reading all history.
			if last, ok := lastTimestamp(name); ok && last.Before(f.Since) {
				continue
			}
		}
		err := scanLines(name, func(l rawLine) error {
			r, ok, err := decodeLine(name, active, l)
			if !ok {
				return err
			}
			if !f.match(r) {
				return nil
			}
			return fn(r)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// lastTimestamp is the timestamp of a file's last complete record.
func lastTimestamp(name string) (time.Time, bool) {
	b, err := lastLine(name)
	if err != nil || b == nil {
		return time.Time{}, false
	}
	var r struct {
		Timestamp time.Time `json:"timestamp"`
	}
	if json.Unmarshal(b, &r) != nil || r.Timestamp.IsZero() {
		return time.Time{}, false
	}
	return r.Timestamp, true
}

// Latest returns the newest record that matches f, reading the files from
// the newest back and stopping at the first that has one: the cost is the
// newest files', not the whole history's.
func Latest(path string, f Filter) (Record, bool, error) {
	if err := f.validate(); err != nil {
		return Record{}, false, err
	}
	files, err := journalFiles(path)
	if err != nil {
		return Record{}, false, err
	}
	for i := len(files) - 1; i >= 0; i-- {
		name := files[i]
		var last Record
		found := false
		err := scanLines(name, func(l rawLine) error {
			if !l.complete || l.tooLong {
				return nil // as Read does for the active file; others fail Verify
			}
			var r Record
			if err := json.Unmarshal(l.bytes, &r); err != nil {
				return fmt.Errorf("%s:%d: invalid record: %w", name, l.no, err)
			}
			if f.match(r) {
				last, found = r, true
			}
			return nil
		})
		if err != nil {
			return Record{}, false, err
		}
		if found {
			return last, true, nil
		}
	}
	return Record{}, false, nil
}

// Break is the first place where the chain does not hold.
type Break struct {
	File   string
	Line   int // 1-based, within File
	Reason string
}

func (b Break) String() string { return fmt.Sprintf("%s:%d: %s", b.File, b.Line, b.Reason) }

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Files []string // files checked, in chain order
	Lines int      // complete lines checked across all files
	OK    bool     // every line is a record chained to the one before it
	First *Break   // the first line that breaks the chain; nil when OK
	// Head is the hash of the last line. A line can only be checked against
	// the one after it, so the last line (and truncation of the tail) is
	// protected only by recording Head somewhere else and comparing later.
	Head string
	// Pruned is the hash the first line chains to when older files were
	// deleted by the retention: a journal_pruned record later in the chain
	// names it among the heads it deleted. "" for a journal that starts at
	// its first line.
	Pruned string
}

// Verify walks every file of the journal at path in chain order and checks
// that each line is a record whose prev is the SHA-256 of the line before
// it ("" for the very first line). Problems with the chain go into the
// report; the error is for a journal that cannot be read at all.
func Verify(path string) (VerifyReport, error) {
	files, err := journalFiles(path)
	if err != nil {
		return VerifyReport{}, err
	}
	rep := VerifyReport{Files: files}
	var prev string
	prevFile := ""
	// The first line may chain to a line deleted by the retention: that
	// gap is a break unless a journal_pruned record further on vouches
	// for exactly that head.
	var gap *Break
	gapHead := ""
	for _, name := range files {
		active := name == path
		err := scanLines(name, func(l rawLine) error {
			if !l.complete && active {
				return nil // a write in progress, or a torn write Open sets aside
			}
			rep.Lines++
			reason := ""
			switch {
			case l.tooLong:
				reason = fmt.Sprintf("line longer than %d bytes", MaxLineBytes)
			case !l.complete:
				reason = "incomplete line (no trailing newline) in a rotated file"
			default:
				var r Record
				if err := json.Unmarshal(l.bytes, &r); err != nil {
					reason = "not a valid record: " + err.Error()
				} else if rep.Lines == 1 && r.Prev != "" {
					gap = &Break{File: name, Line: l.no, Reason: chainReason(rep.Lines, l.no, prevFile)}
					gapHead = r.Prev
				} else if r.Prev != prev {
					reason = chainReason(rep.Lines, l.no, prevFile)
				} else if gap != nil && slices.Contains(prunedHeads(r), gapHead) {
					gap, rep.Pruned = nil, gapHead
				}
			}
			if reason != "" && rep.First == nil {
				rep.First = &Break{File: name, Line: l.no, Reason: reason}
			}
			// Chain on from the bytes actually there, so that one edited
			// line is reported once, at itself or at its successor.
			prev = hashLine(l.bytes)
			return nil
		})
		if err != nil {
			return rep, err
		}
		prevFile = name
	}
	if gap != nil {
		rep.First = gap // it comes before any other break
	}
	rep.OK = rep.First == nil
	rep.Head = prev
	return rep, nil
}

func chainReason(overall, no int, prevFile string) string {
	switch {
	case overall == 1:
		return "prev is set but this is the first line of the journal, and no journal_pruned record vouches for it (were earlier lines or files removed by hand?)"
	case no == 1:
		return fmt.Sprintf("prev does not match the last line of %s (was that line edited, or a file removed?)", prevFile)
	}
	return fmt.Sprintf("prev does not match line %d (was line %d edited, or a line removed or inserted?)", no-1, no-1)
}

// rawLine is one line as scanned; bytes exclude the newline and are only
// valid during the callback.
type rawLine struct {
	no       int // 1-based
	bytes    []byte
	complete bool // ended with a newline
	tooLong  bool // longer than MaxLineBytes; bytes hold only its start
}

// scanLines calls fn for each line of the file at name, stopping at the
// first error fn returns, which is returned unchanged.
func scanLines(name string, fn func(rawLine) error) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("open journal file %s: %w", name, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var acc []byte
	l := rawLine{}
	for {
		chunk, err := br.ReadSlice('\n')
		if !l.tooLong {
			if len(acc)+len(chunk) > MaxLineBytes+1 { // +1: the newline
				l.tooLong = true
			} else {
				acc = append(acc, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(acc) == 0 && !l.tooLong {
				return nil
			}
			l.no++
			l.bytes, l.complete = acc, false
			return fn(l)
		case err != nil:
			return fmt.Errorf("read journal file %s: %w", name, err)
		}
		l.no++
		l.bytes, l.complete = acc[:len(acc)-1], true
		if l.tooLong {
			l.bytes = acc
		}
		if err := fn(l); err != nil {
			return err
		}
		acc, l.tooLong = acc[:0], false
	}
}

// Tail returns the newest n records that match f, oldest first. It reads
// the files from the newest back and stops at the first file that
// completes the n (or whose records all come before f.Since): a history
// query costs the newest files', not the whole history's. An incomplete
// last line of the active file is skipped, as by Read.
func Tail(path string, f Filter, n int) ([]Record, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, fmt.Errorf("journal tail: n %d is not positive", n)
	}
	files, err := journalFiles(path)
	if err != nil {
		return nil, err
	}
	var out []Record // newest file's records last
	for i := len(files) - 1; i >= 0 && len(out) < n; i-- {
		name := files[i]
		active := name == path
		if !active && !f.Since.IsZero() {
			if last, ok := lastTimestamp(name); ok && last.Before(f.Since) {
				break // this file and every older one end before Since
			}
		}
		var got []Record
		err := scanLines(name, func(l rawLine) error {
			r, ok, err := decodeLine(name, active, l)
			if !ok {
				return err
			}
			if f.match(r) {
				got = append(got, r)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out = append(got, out...)
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}

// decodeLine is one line of a journal file as a record. ok is false for a
// line to skip (the active file's unfinished last line, err nil) or one
// that is not a record (err says which line of which file).
func decodeLine(name string, active bool, l rawLine) (r Record, ok bool, err error) {
	switch {
	case !l.complete && active:
		return r, false, nil
	case !l.complete:
		return r, false, fmt.Errorf("%s:%d: incomplete line (no trailing newline)", name, l.no)
	case l.tooLong:
		return r, false, fmt.Errorf("%s:%d: line longer than %d bytes", name, l.no, MaxLineBytes)
	}
	if err := json.Unmarshal(l.bytes, &r); err != nil {
		return r, false, fmt.Errorf("%s:%d: invalid record: %w", name, l.no, err)
	}
	return r, true, nil
}
