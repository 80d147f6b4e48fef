package journal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzRead treats two arbitrary byte strings as a journal: rotated (if not
// empty) as history.1.jsonl and active as history.jsonl, and checks that
// Read and Verify return (no panic, no hang), that their errors and reports
// are consistent with the bytes, and that what Read returns can be served
// again as JSON. The seeds in testdata/fuzz/FuzzRead are the golden file,
// split across two files, torn, and garbled in the ways a disk, an editor
// or an attacker would.
func FuzzRead(f *testing.F) {
	golden, err := os.ReadFile(filepath.Join("testdata", "history.golden.jsonl"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden, []byte(nil))
	// One directory per fuzzing process, rewritten for every input (inputs
	// run one at a time in a process).
	dir := f.TempDir()
	path := filepath.Join(dir, "history.jsonl")
	rotatedPath := filepath.Join(dir, "history.1.jsonl")
	f.Fuzz(func(t *testing.T, active, rotated []byte) {
		// A hang crashes the worker, which records the input.
		watchdog := time.AfterFunc(20*time.Second, func() { panic("journal Read/Verify did not return within 20s") })
		defer watchdog.Stop()

		if err := os.WriteFile(path, active, 0o644); err != nil {
			t.Fatal(err)
		}
		files := []string{path}
		if len(rotated) > 0 {
			if err := os.WriteFile(rotatedPath, rotated, 0o644); err != nil {
				t.Fatal(err)
			}
			files = []string{rotatedPath, path}
		} else if err := os.Remove(rotatedPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}

		rep, err := Verify(path)
		if err != nil {
			t.Fatalf("Verify: %v (the files are readable: problems belong in the report)", err)
		}
		checkReport(t, rep, files, active, rotated)

		var all []Record
		readErr := Read(path, Filter{}, func(r Record) error {
			all = append(all, r)
			return nil
		})
		if readErr != nil {
			msg := readErr.Error()
			if msg == "" || !strings.Contains(msg, dir) {
				t.Fatalf("Read error %q does not name the file", msg)
			}
			if rep.OK {
				t.Fatalf("Verify says the chain holds, Read fails: %v", readErr)
			}
		} else if rep.Lines != len(all) && rep.OK {
			t.Fatalf("Verify checked %d lines, Read returned %d records", rep.Lines, len(all))
		}
		if len(all) > rep.Lines {
			t.Fatalf("Read returned %d records from %d lines", len(all), rep.Lines)
		}
		// /v1/history serves the records again as JSON.
		for _, r := range all {
			if _, err := json.Marshal(r); err != nil {
				t.Fatalf("record %+v read but cannot be encoded: %v", r, err)
			}
		}

		// A filter selects a subset of the same records, in order.
		if readErr == nil && len(all) > 0 {
			since := all[len(all)/2].Timestamp
			filters := []Filter{
				{Types: []string{TypeEvent}},
				{Types: []string{TypeSnapshot, TypeDecision}},
				{Events: []string{EventPromoteDenied}},
				{Since: since},
			}
			for _, fl := range filters {
				var got []Record
				if err := Read(path, fl, func(r Record) error { got = append(got, r); return nil }); err != nil {
					t.Fatalf("Read(%+v) fails where Read(all) did not: %v", fl, err)
				}
				want := slices.DeleteFunc(slices.Clone(all), func(r Record) bool { return !fl.match(r) })
				if len(got) != len(want) {
					t.Fatalf("Read(%+v) returned %d records, want %d", fl, len(got), len(want))
				}
			}
			// An error from fn stops Read and comes back as is.
			stop := errors.New("stop")
			calls := 0
			if err := Read(path, Filter{}, func(Record) error { calls++; return stop }); err != stop || calls != 1 {
				t.Fatalf("Read with a failing fn: %v after %d calls, want the fn's error after 1", err, calls)
			}
		}
	})
}

// checkReport compares a VerifyReport with what the bytes say.
func checkReport(t *testing.T, rep VerifyReport, files []string, active, rotated []byte) {
	t.Helper()
	if !slices.Equal(rep.Files, files) {
		t.Fatalf("Verify checked files %v, want %v", rep.Files, files)
	}
	// Every complete line counts; so does a rotated file's incomplete
	// last line. The active file's incomplete last line is a write in
	// progress and does not.
	lines := bytes.Count(active, []byte("\n")) + bytes.Count(rotated, []byte("\n"))
	tornRotated := len(rotated) > 0 && rotated[len(rotated)-1] != '\n'
	if tornRotated {
		lines++
	}
	if rep.Lines != lines {
		t.Fatalf("Verify checked %d lines, the files have %d", rep.Lines, lines)
	}
	if rep.OK != (rep.First == nil) {
		t.Fatalf("Verify: OK %v but first break %v", rep.OK, rep.First)
	}
	if tornRotated && rep.OK {
		t.Fatal("Verify accepts a rotated file that ends in the middle of a line")
	}
	if rep.First != nil {
		if !slices.Contains(files, rep.First.File) || rep.First.Line < 1 || rep.First.Reason == "" {
			t.Fatalf("Verify: first break %+v is not a line of %v", rep.First, files)
		}
	}
	// Head is the hash of the last line checked.
	var last []byte
	switch {
	case bytes.Contains(active, []byte("\n")):
		body := active[:bytes.LastIndexByte(active, '\n')]
		last = body[bytes.LastIndexByte(body, '\n')+1:]
	case tornRotated:
		last = rotated[bytes.LastIndexByte(rotated, '\n')+1:]
	case len(rotated) > 0:
		body := rotated[:len(rotated)-1]
		last = body[bytes.LastIndexByte(body, '\n')+1:]
	}
	want := ""
	if lines > 0 {
		sum := sha256.Sum256(last)
		want = hex.EncodeToString(sum[:])
	}
	if len(last) <= MaxLineBytes && rep.Head != want {
		t.Fatalf("Verify: head %s, want the hash of the last line %q", rep.Head, last)
	}
}
