package journal

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The journal's file is removed or replaced while the journal is open.
// Without following the path, every later record would be "written" into
// an unlinked inode and never seen by a reader.
func TestJournalFollowsItsPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		// fault changes the files under the open journal; it returns the
		// messages the file at path holds afterwards, before the append.
		fault    func(t *testing.T, path string) []string
		wantHead bool // the reopened file continues a chain (not empty)
	}{
		{
			name: "file removed",
			fault: func(t *testing.T, path string) []string {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				return nil
			},
		},
		{
			name: "directory removed and recreated",
			fault: func(t *testing.T, path string) []string {
				if err := os.RemoveAll(filepath.Dir(path)); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				return nil
			},
		},
		{
			name: "replaced by a backup of an earlier state",
			fault: func(t *testing.T, path string) []string {
				backup := path + ".bak"
				lines := fileLines(t, path)
				var b []byte
				for _, l := range lines[:1] {
					b = append(append(b, l...), '\n')
				}
				if err := os.WriteFile(backup, b, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(backup, path); err != nil {
					t.Fatal(err)
				}
				return []string{"one"}
			},
			wantHead: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state", "history.jsonl")
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			j := openAt(t, path, Options{})
			defer j.Close()
			mustAppend(t, j, event("one"), event("two"))
			oldHead := mustVerifyOK(t, path, 2).Head
			// A buffered record, chained to the old file's head, must be
			// re-chained into the new file rather than break it.
			if err := j.AppendBuffered(event("buffered")); err != nil {
				t.Fatal(err)
			}
			before := tc.fault(t, path)
			mustAppend(t, j, event("after"))

			r := j.TakeReopened()
			if r == nil || r.PrevHead != oldHead || (r.Head != "") != tc.wantHead {
				t.Fatalf("TakeReopened = %+v, want PrevHead %s and a head only if the new file has lines (%v)", r, oldHead, tc.wantHead)
			}
			if again := j.TakeReopened(); again != nil {
				t.Errorf("TakeReopened reported twice: %+v", again)
			}
			// First in the reopened file: the marker naming the old head.
			recs := readAll(t, path)
			if len(recs) != len(before)+3 {
				t.Fatalf("file at path holds %q, want %q, the reopen marker, buffered, after", messages(recs), before)
			}
			if m := recs[len(before)]; m.Event != EventJournalReopened || m.Details["previous_head"] != oldHead {
				t.Errorf("record after the reopen: %+v, want %s naming previous head %s", m, EventJournalReopened, oldHead)
			}
			got := messages(append(recs[:len(before):len(before)], recs[len(before)+1:]...))
			if want := append(before, "buffered", "after"); !slices.Equal(got, want) {
				t.Errorf("file at path holds %q (marker aside), want %q", got, want)
			}
			mustVerifyOK(t, path, len(recs))
			// Still locked: a second writer is refused.
			if _, err := Open(path, Options{}); !errors.Is(err, ErrLocked) {
				t.Errorf("second Open after the reopen: %v, want ErrLocked", err)
			}
		})
	}
}

// With the directory gone, appends fail (the journal does not recreate
// it) and say why; once the directory is back they succeed again.
func TestJournalWithoutItsDirectoryFailsThenRecovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "history.jsonl")
	j := openAt(t, path, Options{})
	defer j.Close()
	mustAppend(t, j, event("one"))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err := j.Append(event("lost"))
	if err == nil || !strings.Contains(err.Error(), "removed with its directory") {
		t.Fatalf("append without the directory: %v, want an error saying it was removed", err)
	}
	if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("the journal recreated its directory: %v", serr)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, j, event("back"))
	recs := readAll(t, path)
	if len(recs) != 2 || recs[0].Event != EventJournalReopened || recs[1].Message != "back" {
		t.Errorf("after the directory came back: %q, want the reopen marker and back", messages(recs))
	}
	if j.TakeReopened() == nil {
		t.Error("no reopen reported")
	}
}
