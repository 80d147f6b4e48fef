package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// journalBytes sums the sizes of the rotated files of the journal at path.
func rotatedBytes(t *testing.T, path string) (int64, int) {
	t.Helper()
	nums, err := rotatedNumbers(path)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, n := range nums {
		fi, err := os.Stat(rotatedName(path, n))
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	return total, len(nums)
}

// With a retention by size, the rotated files stop growing past it, and
// the journal still verifies: the first line left chains to a line that
// was deleted, and the journal_pruned record (in the chain) vouches for
// it. Deleting a file by hand is still caught.
func TestRetentionBySizeKeepsTheChainVerifiable(t *testing.T) {
	const maxBytes, retain = 800, 2000
	j, path := openTemp(t, Options{MaxBytes: maxBytes, RetainBytes: retain, Now: newClock().Now})
	msg := strings.Repeat("m", 150)
	for i := 0; i < 200; i++ {
		mustAppend(t, j, event(msg))
	}
	mustClose(t, j)
	total, files := rotatedBytes(t, path)
	if total > retain || files == 0 {
		t.Fatalf("after 200 records: %d rotated files of %d bytes, want some, at most %d bytes", files, total, retain)
	}
	if nums, _ := rotatedNumbers(path); nums[0] == 1 {
		t.Fatalf("history.1.jsonl is still there: nothing was pruned")
	}
	rep, err := Verify(path)
	if err != nil || !rep.OK {
		t.Fatalf("Verify after retention: %v, first break %v", err, rep.First)
	}
	if rep.Pruned == "" {
		t.Errorf("Verify did not report the pruned head the chain resumes from")
	}
	pruned := 0
	for _, r := range readAll(t, path) {
		if r.Event == EventJournalPruned {
			pruned++
			if len(prunedHeads(r)) == 0 {
				t.Errorf("journal_pruned without heads: %+v", r)
			}
		}
	}
	if pruned == 0 {
		t.Errorf("no %s record in the journal", EventJournalPruned)
	}

	// Pruning by hand (the oldest file left) breaks the chain.
	nums, _ := rotatedNumbers(path)
	if err := os.Remove(rotatedName(path, nums[0])); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(path); err != nil || rep.OK {
		t.Errorf("Verify after a file was deleted by hand: %v OK=%v, want a break", err, rep.OK)
	}
}

// A crash in the middle of a prune (the record written, the oldest file
// deleted, the others not yet) leaves a journal that verifies: the record
// names the head of every file it deletes.
func TestInterruptedPruneStillVerifies(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "history.jsonl")
	// Rotated files first, with no retention.
	j := openAt(t, path, Options{MaxBytes: 600, Now: c.Now})
	for i := 0; i < 30; i++ {
		mustAppend(t, j, event(strings.Repeat("a", 100)))
	}
	mustClose(t, j)
	nums, _ := rotatedNumbers(path)
	if len(nums) < 3 {
		t.Fatalf("%d rotated files, want at least 3", len(nums))
	}
	// The "crash": after the first deletion nothing more is deleted.
	removed := 0
	removeFile = func(name string) error {
		if removed > 0 {
			return errors.New("crashed")
		}
		removed++
		return os.Remove(name)
	}
	t.Cleanup(func() { removeFile = os.Remove })
	j = openAt(t, path, Options{MaxBytes: 600, RetainBytes: 1, Now: c.Now})
	for i := 0; removed == 0; i++ {
		if i == 20 {
			t.Fatal("no prune after 20 records")
		}
		mustAppend(t, j, event(strings.Repeat("b", 100)))
	}
	if err := j.Close(); err == nil || !strings.Contains(err.Error(), "crashed") {
		t.Errorf("Close after a failed prune: %v, want the failure reported", err)
	}
	if _, err := os.Stat(rotatedName(path, nums[0])); err == nil {
		t.Fatalf("the oldest file was not pruned")
	}
	if _, err := os.Stat(rotatedName(path, nums[1])); err != nil {
		t.Fatalf("the second file was pruned too: %v", err)
	}
	rep, err := Verify(path)
	if err != nil || !rep.OK {
		t.Fatalf("with only the oldest file deleted (a crash mid-prune): Verify: %v, first break %v", err, rep.First)
	}
}

// With a retention by age, a rotated file whose last record is older than
// it goes at the next rotation; younger ones stay.
func TestRetentionByAge(t *testing.T) {
	c := newClock()
	j, path := openTemp(t, Options{MaxBytes: 600, RetainAge: 24 * time.Hour, Now: c.Now})
	for i := 0; i < 20; i++ {
		mustAppend(t, j, event(strings.Repeat("a", 100)))
	}
	before, _ := rotatedNumbers(path)
	c.mu.Lock()
	c.t = c.t.Add(48 * time.Hour)
	c.mu.Unlock()
	for i := 0; i < 8; i++ {
		mustAppend(t, j, event(strings.Repeat("b", 100)))
	}
	mustClose(t, j)
	after, _ := rotatedNumbers(path)
	if len(before) == 0 || len(after) == 0 || after[0] <= before[len(before)-1] {
		t.Errorf("rotated files before %v, after two days %v: want every file older than a day deleted", before, after)
	}
	if rep, err := Verify(path); err != nil || !rep.OK {
		t.Errorf("Verify: %v, first break %v", err, rep.First)
	}
}
