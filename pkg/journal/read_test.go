package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeMixed writes a journal of the three record types, one second apart
// starting at 12:00:01, and returns its path.
func writeMixed(t *testing.T) string {
	t.Helper()
	j, path := openTemp(t, Options{Now: newClock().Now})
	mustAppend(t, j,
		Record{Type: TypeEvent, Event: EventDeployStarted, Message: "e1"},    // 12:00:01
		Record{Type: TypeSnapshot, Policy: PolicyPass, Message: "s1"},        // 12:00:02
		Record{Type: TypeEvent, Event: EventPromoteRequested, Message: "e2"}, // 12:00:03
		NewDecision("canary_safety", true, nil, nil),                         // 12:00:04
		Record{Type: TypeEvent, Event: EventPromoted, Message: "e3"},         // 12:00:05
		Record{Type: TypeSnapshot, Policy: PolicyFail, Message: "s2"},        // 12:00:06
	)
	mustClose(t, j)
	return path
}

func TestReadFilter(t *testing.T) {
	path := writeMixed(t)
	at := func(sec int) time.Time { return time.Date(2026, 5, 6, 12, 0, sec, 0, time.UTC) }
	tests := []struct {
		name   string
		filter Filter
		want   []string // messages; the decision has none
	}{
		{"everything", Filter{}, []string{"e1", "s1", "e2", "", "e3", "s2"}},
		{"snapshots", Filter{Types: []string{TypeSnapshot}}, []string{"s1", "s2"}},
		{"events and decisions", Filter{Types: []string{TypeEvent, TypeDecision}}, []string{"e1", "e2", "", "e3"}},
		{"named events", Filter{Events: []string{EventPromoted, EventDeployStarted}}, []string{"e1", "e3"}},
		{"event with no match", Filter{Events: []string{EventRollback}}, nil},
		{"since is inclusive", Filter{Since: at(3)}, []string{"e2", "", "e3", "s2"}},
		{"until is exclusive", Filter{Until: at(3)}, []string{"e1", "s1"}},
		{"window", Filter{Since: at(2), Until: at(5)}, []string{"s1", "e2", ""}},
		{"type and window", Filter{Types: []string{TypeEvent}, Since: at(2), Until: at(6)}, []string{"e2", "e3"}},
		{"since in another zone", Filter{Since: at(5).In(time.FixedZone("UTC-7", -7*3600))}, []string{"e3", "s2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := Read(path, tt.filter, func(r Record) error {
				got = append(got, r.Message)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadRejectsBadFilter(t *testing.T) {
	path := writeMixed(t)
	now := time.Now()
	tests := []struct {
		name   string
		filter Filter
		want   string
	}{
		{"unknown type", Filter{Types: []string{"snapshots"}}, `"snapshots"`},
		{"bad event name", Filter{Events: []string{"Promoted!"}}, `"Promoted!"`},
		{"until before since", Filter{Since: now, Until: now.Add(-time.Hour)}, "until"},
		{"empty window", Filter{Since: now, Until: now}, "until"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Read(path, tt.filter, func(Record) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestReadStopsOnCallbackError(t *testing.T) {
	path := writeMixed(t)
	stop := errors.New("stop")
	calls := 0
	err := Read(path, Filter{}, func(Record) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Errorf("Read returned %v after %d calls, want the callback's error after 1", err, calls)
	}
}

func TestReadAndVerifyMissingJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	if err := Read(path, Filter{}, func(Record) error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := Verify(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Verify: err = %v, want fs.ErrNotExist", err)
	}
}

func TestReadToleratesUnknownFieldsAndSkipsWriteInProgress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	data := `{"type":"event","timestamp":"2026-05-06T12:00:00Z","event":"future_event","added_later":{"x":1},"prev":""}` + "\n" +
		`{"type":"event","timestamp":"2026-05-06T12:00:01Z","ev` // being written
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	rs := readAll(t, path)
	if len(rs) != 1 || rs[0].Event != "future_event" {
		t.Fatalf("Read = %+v, want only the complete future_event record", rs)
	}
	mustVerifyOK(t, path, 1)
}

func TestReadReportsCorruptLine(t *testing.T) {
	path := writeMixed(t)
	lines := fileLines(t, path)
	lines[2] = []byte("not json")
	if err := os.WriteFile(path, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Read(path, Filter{}, func(Record) error { return nil })
	if err == nil || !strings.Contains(err.Error(), path+":3:") {
		t.Errorf("err = %v, want one naming %s:3", err, path)
	}
}

// TestVerifyDetectsEveryByteFlip flips each byte of a small journal in turn.
// A line can only be checked by the line after it, so a flip in the last
// line is caught through VerifyReport.Head instead (see its doc).
func TestVerifyDetectsEveryByteFlip(t *testing.T) {
	path := writeMixed(t)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head := mustVerifyOK(t, path, 6).Head
	lastStart := bytes.LastIndexByte(orig[:len(orig)-1], '\n') + 1

	for off := range orig {
		for _, mask := range []byte{0x01, 0x80} {
			tampered := bytes.Clone(orig)
			tampered[off] ^= mask
			if err := os.WriteFile(path, tampered, 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(path)
			if err != nil {
				t.Fatalf("offset %d mask %#x: Verify: %v", off, mask, err)
			}
			if off >= lastStart {
				if rep.OK && rep.Head == head {
					t.Fatalf("offset %d mask %#x (last line): neither OK nor Head changed", off, mask)
				}
				continue
			}
			if rep.OK || rep.First == nil {
				t.Fatalf("offset %d mask %#x: flip not detected", off, mask)
			}
			// The break is at the flipped line or the one after it.
			line := bytes.Count(orig[:off], []byte("\n")) + 1
			if rep.First.File != path || (rep.First.Line != line && rep.First.Line != line+1) {
				t.Fatalf("offset %d mask %#x (line %d): break reported at %v", off, mask, line, rep.First)
			}
		}
	}
}

func TestVerifyNamesFirstBreak(t *testing.T) {
	tests := []struct {
		name     string
		tamper   func(lines [][]byte) [][]byte
		wantLine int
		reason   string
	}{
		{"line removed", func(ls [][]byte) [][]byte { return slices.Delete(ls, 2, 3) }, 3, "prev does not match line 2"},
		{"lines swapped", func(ls [][]byte) [][]byte { ls[1], ls[2] = ls[2], ls[1]; return ls }, 2, "prev does not match line 1"},
		{"line inserted", func(ls [][]byte) [][]byte { return slices.Insert(ls, 4, ls[0]) }, 5, "prev does not match line 4"},
		{"first line removed", func(ls [][]byte) [][]byte { return ls[1:] }, 1, "first line"},
		{"line replaced by garbage", func(ls [][]byte) [][]byte { ls[3] = []byte("{oops"); return ls }, 4, "not a valid record"},
		{"field renamed", func(ls [][]byte) [][]byte {
			ls[1] = bytes.Replace(ls[1], []byte(`"policy"`), []byte(`"polizy"`), 1)
			return ls
		}, 3, "prev does not match line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeMixed(t)
			lines := tt.tamper(fileLines(t, path))
			if err := os.WriteFile(path, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(path)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.First == nil {
				t.Fatal("tampering not detected")
			}
			if rep.First.File != path || rep.First.Line != tt.wantLine || !strings.Contains(rep.First.Reason, tt.reason) {
				t.Errorf("first break = %v, want %s:%d containing %q", rep.First, path, tt.wantLine, tt.reason)
			}
			if rep.Lines != len(lines) {
				t.Errorf("Lines = %d, want %d", rep.Lines, len(lines))
			}
		})
	}
}

func TestVerifyAcrossRotatedFiles(t *testing.T) {
	rotated := func(t *testing.T) (string, []string) {
		t.Helper()
		j, path := openTemp(t, Options{MaxBytes: 400, Now: newClock().Now})
		for i := range 12 {
			mustAppend(t, j, event(fmt.Sprint(i)))
		}
		mustClose(t, j)
		rep := mustVerifyOK(t, path, 12)
		if len(rep.Files) < 4 {
			t.Fatalf("want at least 4 files, got %q", rep.Files)
		}
		return path, rep.Files
	}
	t.Run("middle file removed", func(t *testing.T) {
		path, files := rotated(t)
		if err := os.Remove(files[1]); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(path)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || rep.First.File != files[2] || rep.First.Line != 1 || !strings.Contains(rep.First.Reason, files[0]) {
			t.Errorf("first break = %v, want %s:1 naming %s", rep.First, files[2], files[0])
		}
	})
	t.Run("oldest file removed", func(t *testing.T) {
		path, files := rotated(t)
		if err := os.Remove(files[0]); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(path)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || rep.First.File != files[1] || rep.First.Line != 1 {
			t.Errorf("first break = %v, want %s:1", rep.First, files[1])
		}
	})
	t.Run("rotated file truncated mid-line", func(t *testing.T) {
		path, files := rotated(t)
		data, err := os.ReadFile(files[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(files[1], data[:len(data)-5], 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(path)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || rep.First.File != files[1] || !strings.Contains(rep.First.Reason, "incomplete") {
			t.Errorf("first break = %v, want an incomplete line in %s", rep.First, files[1])
		}
	})
}

// A query for recent records reads only the files that can hold them, and
// Latest reads from the newest file back: neither costs the whole history.
// Proved by damaging a line in the middle of the oldest file, which a full
// read trips over.
func TestRecentQueriesSkipOldFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	clock := newClock()
	j := openAt(t, path, Options{MaxBytes: 600, Now: clock.Now})
	for i := range 20 {
		r := event(fmt.Sprintf("event %02d", i)) // 12:00:01 + i seconds
		if i == 3 {
			r = Record{Type: TypeEvent, Event: EventPromoted, Message: "old promotion"}
		}
		mustAppend(t, j, r)
	}
	mustClose(t, j)
	files, err := journalFiles(path)
	if err != nil || len(files) < 4 {
		t.Fatalf("files %v, %v: want several", files, err)
	}
	oldest := files[0]
	orig, err := os.ReadFile(oldest)
	if err != nil {
		t.Fatal(err)
	}
	lines := fileLines(t, oldest)
	lines[0] = []byte(`{"damaged":`)
	if err := os.WriteFile(oldest, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Read(path, Filter{}, func(Record) error { return nil }); err == nil {
		t.Fatal("a full read passed over the damaged line: the test proves nothing")
	}

	since := time.Date(2026, 5, 6, 12, 0, 18, 0, time.UTC)
	var got []string
	if err := Read(path, Filter{Since: since}, func(r Record) error { got = append(got, r.Message); return nil }); err != nil {
		t.Fatalf("Read since %s read the oldest file: %v", since.Format(time.TimeOnly), err)
	}
	if want := []string{"event 17", "event 18", "event 19"}; !slices.Equal(got, want) {
		t.Errorf("Read since: %q, want %q", got, want)
	}

	r, ok, err := Latest(path, Filter{Types: []string{TypeEvent}})
	if err != nil || !ok || r.Message != "event 19" {
		t.Errorf("Latest event: %q %v %v, want event 19", r.Message, ok, err)
	}
	// A match only in an older file is found there, reading back.
	if err := os.WriteFile(oldest, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	r, ok, err = Latest(path, Filter{Events: []string{EventPromoted}})
	if err != nil || !ok || r.Message != "old promotion" {
		t.Errorf("Latest promoted: %q %v %v, want the old promotion", r.Message, ok, err)
	}
}

// Tail reads the newest files only: with enough records in the newest
// files, an older file is never opened (here, one that cannot be read).
func TestTailReadsOnlyTheNewestFiles(t *testing.T) {
	j, path := openTemp(t, Options{MaxBytes: 400, Now: newClock().Now})
	for i := 0; i < 40; i++ {
		mustAppend(t, j, event(fmt.Sprintf("record %02d", i)))
	}
	mustClose(t, j)
	nums, _ := rotatedNumbers(path)
	if len(nums) < 3 {
		t.Fatalf("%d rotated files, want several", len(nums))
	}
	// The oldest file cannot be read: Read fails, Tail never needs it.
	if err := os.WriteFile(rotatedName(path, nums[0]), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Read(path, Filter{}, func(Record) error { return nil }); err == nil {
		t.Fatal("Read of a journal with a garbage file succeeded; the test proves nothing")
	}
	got, err := Tail(path, Filter{}, 5)
	if err != nil {
		t.Fatalf("Tail(5): %v", err)
	}
	if want := []string{"record 35", "record 36", "record 37", "record 38", "record 39"}; !slices.Equal(messages(got), want) {
		t.Errorf("Tail(5) = %v, want %v", messages(got), want)
	}
	// Asking for more than the readable files hold reaches the bad file.
	if _, err := Tail(path, Filter{}, 1000); err == nil {
		t.Errorf("Tail(1000) read past the garbage file without an error")
	}
}
