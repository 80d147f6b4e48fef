package controller

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
)

// modeCanary is an env value whose every copy on disk must be private.
const modeCanary = "ENV-MODE-CANARY-5b1f"

// checkModes walks the project directory: every file that holds the
// canary env value is 0600 (no group, no others), every directory the
// daemon made is at most 0750, and nothing the daemon wrote is writable
// by others. nginx's config and run directories, mounted into the nginx
// container, are inside the 0750 state directory and hold no env value.
func checkModes(t *testing.T, dir, after string) {
	t.Helper()
	var holders int
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		rel, _ := filepath.Rel(dir, p)
		mode := fi.Mode()
		switch {
		case mode&0o002 != 0 && mode.Type() != fs.ModeSocket:
			t.Errorf("after %s: %s is writable by others (%v)", after, rel, mode)
		case e.IsDir() && rel == ".swiftdeploy" && mode.Perm() != 0o750:
			t.Errorf("after %s: state directory %s is %v, want drwxr-x---", after, rel, mode)
		case mode.IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			if rel == "manifest.yaml" {
				return nil // the user's own file
			}
			if strings.Contains(string(b), modeCanary) {
				holders++
				if mode.Perm() != 0o600 {
					t.Errorf("after %s: %s holds an env value and is %v, want -rw-------", after, rel, mode)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if holders == 0 {
		t.Errorf("after %s: no file holds the env value: the check checked nothing", after)
	}
}

// TestFileModesAfterEveryApply drives every kind of apply (first deploy, a
// change, a canary, its promotion, a rollback, down and a redeploy, and a
// start over files an older version left 0644) and checks the modes
// after each.
func TestFileModesAfterEveryApply(t *testing.T) {
	env := "  env:\n    API_TOKEN: " + modeCanary + "\n"
	h := newHarness(t, fakeManifest("app:1", 2, env))
	// An older daemon wrote docker-compose.yml world-readable; the bytes
	// are the same, so a write-if-changed alone would leave the mode.
	h.mustConverge()
	compose := filepath.Join(h.dir, "docker-compose.yml")
	if err := os.Chmod(compose, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(h.dir, ".swiftdeploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.d.jr.Close()
	h.d = h.newDaemon()
	h.mustConverge()
	checkModes(t, h.dir, "first deploy (over 0644 files)")

	h.write(fakeManifest("app:2", 2, env))
	h.mustConverge()
	checkModes(t, h.dir, "an image change")

	h.write(fakeManifest("app:2", 2, env+"  canary:\n    image: app:3\n    weight: 20\n"))
	h.mustConverge()
	h.scrape(4)
	checkModes(t, h.dir, "a canary")
	if err := h.promote(); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	checkModes(t, h.dir, "a promotion")

	h.write(fakeManifest("app:2", 2, env+"  canary:\n    image: app:1\n    weight: 20\n"))
	h.mustConverge()
	if err := h.rollback(); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	checkModes(t, h.dir, "a rollback")

	if err := h.d.down(context.Background(), "alice", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	checkModes(t, h.dir, "down and a redeploy")
}

// WriteIfChanged with the same bytes still corrects the mode.
func TestWriteIfChangedCorrectsMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := atomicfile.WriteIfChanged(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode())
	}
}
