package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/internal/citest"
)

func TestOpenRecoversTornLastLineAtEveryOffset(t *testing.T) {
	j, path := openTemp(t, Options{Now: newClock().Now})
	mustAppend(t, j, event("one"), event("two"), event("three"))
	mustClose(t, j)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lastStart := bytes.LastIndexByte(whole[:len(whole)-1], '\n') + 1

	// Cutting at lastStart is a clean cut; every later cut tears the last
	// line, the final one only losing its newline.
	for cut := lastStart; cut < len(whole); cut++ {
		dir := t.TempDir()
		p := filepath.Join(dir, "history.jsonl")
		if err := os.WriteFile(p, whole[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		j, err := Open(p, Options{Now: newClock().Now})
		if err != nil {
			t.Fatalf("cut at %d: Open: %v", cut, err)
		}
		torn := j.TornFile()
		if err := j.Append(event("after")); err != nil {
			t.Fatalf("cut at %d: Append after recovery: %v", cut, err)
		}
		mustClose(t, j)

		if got, want := messages(readAll(t, p)), []string{"one", "two", "after"}; !slices.Equal(got, want) {
			t.Fatalf("cut at %d: records %q, want %q", cut, got, want)
		}
		mustVerifyOK(t, p, 3)
		if cut == lastStart {
			if torn != "" {
				t.Fatalf("cut at %d: clean cut set aside %s", cut, torn)
			}
			continue
		}
		if !strings.HasPrefix(torn, p+".torn-") {
			t.Fatalf("cut at %d: TornFile() = %q, want %s.torn-<ts>", cut, torn, p)
		}
		saved, err := os.ReadFile(torn)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if !bytes.Equal(saved, whole[lastStart:cut]) {
			t.Fatalf("cut at %d: torn file holds %q, want %q", cut, saved, whole[lastStart:cut])
		}
	}
}

func TestOpenSetsAsideInvalidCompleteLines(t *testing.T) {
	tests := []struct {
		name string
		tail string // appended after two good lines
	}{
		{"half a record then newline", `{"type":"event","timest` + "\n"},
		{"zeros from unwritten blocks", strings.Repeat("\x00", 300) + "\n"},
		{"two garbage lines", "garbage\n" + `{"type":` + "\n"},
		{"garbage then torn tail", "garbage\n{\"type\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, path := openTemp(t, Options{Now: newClock().Now})
			mustAppend(t, j, event("one"), event("two"))
			mustClose(t, j)
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(tt.tail); err != nil {
				t.Fatal(err)
			}
			f.Close()

			j = openAt(t, path, Options{Now: newClock().Now})
			saved, err := os.ReadFile(j.TornFile())
			if err != nil {
				t.Fatalf("torn file: %v", err)
			}
			if string(saved) != tt.tail {
				t.Errorf("torn file holds %q, want %q", saved, tt.tail)
			}
			mustAppend(t, j, event("three"))
			mustClose(t, j)
			if got, want := messages(readAll(t, path)), []string{"one", "two", "three"}; !slices.Equal(got, want) {
				t.Errorf("records %q, want %q", got, want)
			}
			mustVerifyOK(t, path, 3)
		})
	}
}

// TestOpenRecoversAfterLongLines makes the backward scan for line starts
// cross several read blocks.
func TestOpenRecoversAfterLongLines(t *testing.T) {
	long := strings.Repeat("y", 100<<10)
	j, path := openTemp(t, Options{Now: newClock().Now})
	mustAppend(t, j, event("one"), event(long), event(long))
	mustClose(t, j)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lastStart := bytes.LastIndexByte(whole[:len(whole)-1], '\n') + 1
	cut := lastStart + (len(whole)-lastStart)/2
	if err := os.WriteFile(path, whole[:cut], 0o644); err != nil {
		t.Fatal(err)
	}

	j = openAt(t, path, Options{Now: newClock().Now})
	saved, err := os.ReadFile(j.TornFile())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(saved, whole[lastStart:cut]) {
		t.Errorf("torn file holds %d bytes, want the %d after the last complete line", len(saved), cut-lastStart)
	}
	mustAppend(t, j, event("after"))
	mustClose(t, j)
	if got, want := messages(readAll(t, path)), []string{"one", long, "after"}; !slices.Equal(got, want) {
		t.Errorf("got %d records, want %d", len(got), len(want))
	}
	mustVerifyOK(t, path, 3)
}

func TestOpenTwiceIsLocked(t *testing.T) {
	j, path := openTemp(t, Options{})
	if _, err := Open(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: err = %v, want ErrLocked", err)
	}
	mustClose(t, j)
	j2 := openAt(t, path, Options{})
	mustClose(t, j2)
}

func TestOpenRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		o    Options
		want string
	}{
		{"empty path", "", Options{}, "path is empty"},
		{"negative MaxBytes", filepath.Join(dir, "h.jsonl"), Options{MaxBytes: -1}, "MaxBytes"},
		{"negative FlushInterval", filepath.Join(dir, "h.jsonl"), Options{FlushInterval: -time.Second}, "FlushInterval"},
		{"missing directory", filepath.Join(dir, "nope", "h.jsonl"), Options{}, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := Open(tt.path, tt.o)
			if err == nil {
				j.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestClosedJournalRefusesWrites(t *testing.T) {
	j, _ := openTemp(t, Options{})
	mustClose(t, j)
	for name, call := range map[string]func() error{
		"Append":         func() error { return j.Append(event("x")) },
		"AppendBuffered": func() error { return j.AppendBuffered(event("x")) },
		"Flush":          j.Flush,
		"Close":          j.Close,
	} {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}

func TestAppendBufferedIsWrittenOnAppendFlushAndClose(t *testing.T) {
	// An hour-long interval keeps the timer out of this test.
	j, path := openTemp(t, Options{FlushInterval: time.Hour, Now: newClock().Now})
	snapshot := func(msg string) Record {
		return Record{Type: TypeSnapshot, Mode: "stable", Policy: PolicyPass, Message: msg}
	}
	steps := []struct {
		name  string
		do    func() error
		wants []string
	}{
		{"buffered only", func() error { return j.AppendBuffered(snapshot("s1")) }, nil},
		{"next Append writes it first", func() error { return j.Append(event("e1")) }, []string{"s1", "e1"}},
		{"buffered again", func() error { return j.AppendBuffered(snapshot("s2")) }, []string{"s1", "e1"}},
		{"Flush", j.Flush, []string{"s1", "e1", "s2"}},
		{"buffered before close", func() error { return j.AppendBuffered(snapshot("s3")) }, []string{"s1", "e1", "s2"}},
		{"Close", j.Close, []string{"s1", "e1", "s2", "s3"}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := messages(readAll(t, path)); !slices.Equal(got, s.wants) {
			t.Fatalf("after %s: file holds %q, want %q", s.name, got, s.wants)
		}
	}
	mustVerifyOK(t, path, 4)
}

func TestAppendBufferedIsWrittenWithinInterval(t *testing.T) {
	j, path := openTemp(t, Options{FlushInterval: 20 * time.Millisecond})
	if err := j.AppendBuffered(Record{Type: TypeSnapshot, Policy: PolicyNoData}); err != nil {
		t.Fatal(err)
	}
	// Generous deadline: this checks that the timer fires, not how fast.
	deadline := time.Now().Add(10 * time.Second)
	for len(readAll(t, path)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("buffered record not written by the flush timer")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mustVerifyOK(t, path, 1)
}

func TestConcurrentAppends(t *testing.T) {
	const goroutines, each = 8, 40
	j, path := openTemp(t, Options{FlushInterval: 5 * time.Millisecond})
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r := NewEvent(EventContainerCreated, fmt.Sprintf("g%d-%d", g, i))
				add := j.Append
				if i%2 == 1 {
					// Snapshots interleave with events in the same chain.
					r = Record{Type: TypeSnapshot, Message: r.Message}
					add = j.AppendBuffered
				}
				if err := add(r); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mustClose(t, j)

	mustVerifyOK(t, path, goroutines*each)
	// Every line whole, and each goroutine's records in its own order.
	next := make(map[string]int)
	for _, r := range readAll(t, path) {
		var g string
		var i int
		if _, err := fmt.Sscanf(strings.Replace(r.Message, "-", " ", 1), "%s %d", &g, &i); err != nil {
			t.Fatalf("unexpected message %q: %v", r.Message, err)
		}
		if i != next[g] {
			t.Fatalf("%s: record %d follows %d", g, i, next[g]-1)
		}
		next[g]++
	}
	for g := range goroutines {
		if n := next[fmt.Sprintf("g%d", g)]; n != each {
			t.Errorf("g%d: %d records, want %d", g, n, each)
		}
	}
}

func TestRotationBySize(t *testing.T) {
	const maxBytes = 600
	dir := t.TempDir()
	path := filepath.Join(dir, "history.jsonl")
	j := openAt(t, path, Options{MaxBytes: maxBytes, Now: newClock().Now})
	var want []string
	for i := range 20 {
		msg := fmt.Sprintf("event %02d", i)
		want = append(want, msg)
		mustAppend(t, j, event(msg))
	}
	mustClose(t, j)

	rep := mustVerifyOK(t, path, 20)
	if len(rep.Files) < 3 {
		t.Fatalf("expected several files, got %q", rep.Files)
	}
	for i, name := range rep.Files[:len(rep.Files)-1] {
		if wantName := filepath.Join(dir, fmt.Sprintf("history.%d.jsonl", i+1)); name != wantName {
			t.Errorf("file %d is %s, want %s", i, name, wantName)
		}
	}
	if last := rep.Files[len(rep.Files)-1]; last != path {
		t.Errorf("last file is %s, want the active file %s", last, path)
	}
	for _, name := range rep.Files {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > maxBytes {
			t.Errorf("%s is %d bytes, over MaxBytes %d", name, st.Size(), maxBytes)
		}
	}
	// The chain crosses files: history.2's first line points at history.1's last.
	first, second := fileLines(t, rep.Files[0]), fileLines(t, rep.Files[1])
	if !bytes.Contains(second[0], []byte(`"prev":"`+hashLine(first[len(first)-1])+`"`)) {
		t.Errorf("first line of %s does not chain to the last line of %s", rep.Files[1], rep.Files[0])
	}
	if got := messages(readAll(t, path)); !slices.Equal(got, want) {
		t.Errorf("Read across files = %q, want %q", got, want)
	}

	// Reopening continues both the numbering and the chain.
	j = openAt(t, path, Options{MaxBytes: maxBytes, Now: newClock().Now})
	for i := 20; i < 30; i++ {
		mustAppend(t, j, event(fmt.Sprintf("event %02d", i)))
	}
	mustClose(t, j)
	rep2 := mustVerifyOK(t, path, 30)
	if len(rep2.Files) <= len(rep.Files) {
		t.Errorf("no further rotation after reopen: %q", rep2.Files)
	}
}

func TestOpenAfterRotationWithoutActiveFile(t *testing.T) {
	// A crash between renaming the active file and creating the new one
	// leaves only rotated files; Open must continue their chain.
	j, path := openTemp(t, Options{MaxBytes: 400, Now: newClock().Now})
	for i := range 6 {
		mustAppend(t, j, event(fmt.Sprint(i)))
	}
	mustClose(t, j)
	nums, err := rotatedNumbers(path)
	if err != nil || len(nums) == 0 {
		t.Fatalf("rotatedNumbers = %v, %v; want some rotated files", nums, err)
	}
	if err := os.Rename(path, rotatedName(path, nums[len(nums)-1]+1)); err != nil {
		t.Fatal(err)
	}

	j = openAt(t, path, Options{MaxBytes: 400, Now: newClock().Now})
	mustAppend(t, j, event("6"))
	mustClose(t, j)
	mustVerifyOK(t, path, 7)
}

// TestAppendOnFullDisk fills a tiny tmpfs so writes fail with ENOSPC part
// way through a line, and checks no half line stays behind and the journal
// works again once space is freed.
func TestAppendOnFullDisk(t *testing.T) {
	dir, filler := fullDisk(t)
	path := filepath.Join(dir, "history.jsonl")
	j := openAt(t, path, Options{FlushInterval: time.Hour})

	var written []string
	var appendErr error
	for i := 0; appendErr == nil && i < 1000; i++ {
		// 150-odd bytes a line does not divide the 4 KiB page, so the
		// failing write is a partial one.
		msg := fmt.Sprintf("record %03d %s", i, strings.Repeat("x", 90))
		if appendErr = j.Append(event(msg)); appendErr == nil {
			written = append(written, msg)
		}
	}
	if !errors.Is(appendErr, syscall.ENOSPC) {
		t.Fatalf("Append on a full disk: err = %v, want ENOSPC", appendErr)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 || data[len(data)-1] != '\n' {
		t.Fatalf("file does not end with a complete line after ENOSPC (%d bytes)", len(data))
	}
	if got := messages(readAll(t, path)); !slices.Equal(got, written) {
		t.Fatalf("file holds %d records, want the %d acknowledged ones", len(got), len(written))
	}

	// A buffered record cannot be written either, and stays queued.
	if err := j.AppendBuffered(Record{Type: TypeSnapshot, Message: "queued"}); err != nil {
		t.Fatalf("AppendBuffered: %v", err)
	}
	if err := j.Flush(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Flush on a full disk: err = %v, want ENOSPC", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := j.Flush(); err != nil {
		t.Fatalf("Flush after freeing space: %v", err)
	}
	mustAppend(t, j, event("after"))
	mustClose(t, j)
	written = append(written, "queued", "after")
	if got := messages(readAll(t, path)); !slices.Equal(got, written) {
		t.Fatalf("records after recovery: got %d, want %d (last %q)", len(got), len(written), got[len(got)-1])
	}
	mustVerifyOK(t, path, len(written))
}

func TestTimedFlushFailureIsReported(t *testing.T) {
	dir, filler := fullDisk(t)
	path := filepath.Join(dir, "history.jsonl")
	j := openAt(t, path, Options{FlushInterval: 10 * time.Millisecond})
	// Fill the rest of the disk so the timer's write fails.
	fill, err := os.Create(filepath.Join(dir, "rest"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = fill.Write(make([]byte, 16<<10))
	fill.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: err = %v, want ENOSPC", err)
	}

	if err := j.AppendBuffered(Record{Type: TypeSnapshot, Message: "s1"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !timedFlushFailed(j) {
		if time.Now().After(deadline) {
			t.Fatal("timed flush did not run")
		}
		time.Sleep(5 * time.Millisecond)
	}
	err = j.AppendBuffered(Record{Type: TypeSnapshot, Message: "s2"})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("AppendBuffered after a failed timed flush: err = %v, want ENOSPC", err)
	}

	for _, name := range []string{filler, fill.Name()} {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, j)
	if got, want := messages(readAll(t, path)), []string{"s1", "s2"}; !slices.Equal(got, want) {
		t.Errorf("records %q, want %q: queued records must survive the failed flush", got, want)
	}
	mustVerifyOK(t, path, 2)
}

func timedFlushFailed(j *Journal) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.flushErr != nil
}

// fullDisk mounts a 16 KiB tmpfs on a temporary directory, half filled by
// the returned filler file, and unmounts it when the test ends.
func fullDisk(t *testing.T) (dir, filler string) {
	t.Helper()
	dir = t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16k"); err != nil {
		citest.Unavailable(t, "cannot mount a tmpfs to fill (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	filler = filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 8<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, filler
}
