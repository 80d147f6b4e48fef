package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nginx.conf")
	for _, tc := range []struct {
		name string
		data string
		perm os.FileMode
	}{
		{"create", "first", 0o644},
		{"replace", "second, longer", 0o640},
		{"shrink", "3", 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Write(path, []byte(tc.data), tc.perm); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil || string(b) != tc.data {
				t.Fatalf("content %q, %v; want %q", b, err, tc.data)
			}
			fi, _ := os.Stat(path)
			if fi.Mode().Perm() != tc.perm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), tc.perm)
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestWriteIntoMissingDirFails(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "no", "such"), []byte("x"), 0o644); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestWriteIfChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docker-compose.yml")
	for i, tc := range []struct {
		data  string
		wrote bool
	}{{"a", true}, {"a", false}, {"b", true}, {"b", false}} {
		var before os.FileInfo
		if i > 0 {
			before, _ = os.Stat(path)
		}
		wrote, err := WriteIfChanged(path, []byte(tc.data), 0o644)
		if err != nil || wrote != tc.wrote {
			t.Fatalf("step %d (%q): wrote=%v err=%v, want wrote=%v", i, tc.data, wrote, err, tc.wrote)
		}
		if !tc.wrote {
			after, _ := os.Stat(path)
			if !os.SameFile(before, after) {
				t.Errorf("step %d: unchanged bytes replaced the file", i)
			}
		}
	}
}
