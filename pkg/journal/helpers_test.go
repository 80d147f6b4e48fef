package journal

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// clock is a deterministic Options.Now: every call is one second later.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 5, 6, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// openTemp opens a journal in a fresh temporary directory and closes it
// when the test ends (if the test has not already closed it).
func openTemp(t *testing.T, o Options) (*Journal, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.jsonl")
	return openAt(t, path, o), path
}

func openAt(t *testing.T, path string, o Options) *Journal {
	t.Helper()
	j, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func mustAppend(t *testing.T, j *Journal, rs ...Record) {
	t.Helper()
	for _, r := range rs {
		if err := j.Append(r); err != nil {
			t.Fatalf("Append(%s): %v", describe(r), err)
		}
	}
}

func mustClose(t *testing.T, j *Journal) {
	t.Helper()
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// readAll returns every record of the journal at path.
func readAll(t *testing.T, path string) []Record {
	t.Helper()
	var rs []Record
	if err := Read(path, Filter{}, func(r Record) error {
		rs = append(rs, r)
		return nil
	}); err != nil {
		t.Fatalf("Read(%s): %v", path, err)
	}
	return rs
}

// messages lists the Message of each record, to compare sequences.
func messages(rs []Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Message
	}
	return out
}

// mustVerifyOK fails the test unless the journal verifies with lines lines.
func mustVerifyOK(t *testing.T, path string, lines int) VerifyReport {
	t.Helper()
	rep, err := Verify(path)
	if err != nil {
		t.Fatalf("Verify(%s): %v", path, err)
	}
	if !rep.OK || rep.First != nil {
		t.Fatalf("Verify(%s) not OK: first break %v", path, rep.First)
	}
	if rep.Lines != lines {
		t.Fatalf("Verify(%s) checked %d lines, want %d", path, rep.Lines, lines)
	}
	return rep
}

// fileLines splits a journal file into its lines, newline excluded.
func fileLines(t *testing.T, name string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func event(msg string) Record { return NewEvent(EventDeployStarted, msg) }
