package controller

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// modeCanary is an env value whose every copy on disk must be private.
const modeCanary = "ENV-MODE-CANARY-5b1f"

// privateFiles are the state directory's files that hold secrets or
// what identifies them, and must be 0600 whenever they exist: the applied
// stack (env values), the release book, the secret-file digests' key.
var privateFiles = []string{".swiftdeploy/applied.json", ".swiftdeploy/releases.json", ".swiftdeploy/secrets.key"}

// nginxExempt says whether rel, a directory under the state directory,
// is one of nginx's documented in docs/security.md as exempt from 0750
// (0755, mounted into the nginx container whose workers run as nobody):
// the config directory and what is under it (the ACME webroot), and
// nginx -t's transient run directories. The certificate store under the
// config directory is not exempt (0700), nor is the run directory, which
// holds nginx's status socket (0750).
func nginxExempt(rel string) bool {
	switch {
	case rel == ".swiftdeploy/nginx/tls", strings.HasPrefix(rel, ".swiftdeploy/nginx/tls/"):
		return false
	case rel == ".swiftdeploy/nginx", strings.HasPrefix(rel, ".swiftdeploy/nginx/"),
		strings.HasPrefix(rel, ".swiftdeploy/nginx-check-"):
		return true
	}
	return false
}

// checkModes walks the project directory: every file that holds the
// canary env value is 0600 (no group, no others), so are privateFiles
// and the certificate store's files (the store itself 0700), every
// directory the daemon made (under the state directory) is at most 0750
// except nginx's (nginxExempt), and nothing the daemon wrote is writable
// by others.
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
		case e.IsDir() && rel == ".swiftdeploy/nginx/tls" && mode.Perm() != 0o700:
			t.Errorf("after %s: the certificate store %s is %v, want drwx------", after, rel, mode)
		case e.IsDir() && strings.HasPrefix(rel, ".swiftdeploy/") && !nginxExempt(rel) && mode.Perm()&^0o750 != 0:
			t.Errorf("after %s: directory %s is %v, want at most drwxr-x---", after, rel, mode)
		case mode.IsRegular() && (slices.Contains(privateFiles, rel) || strings.HasPrefix(rel, ".swiftdeploy/nginx/tls/")) && mode.Perm() != 0o600:
			t.Errorf("after %s: %s is %v, want -rw-------", after, rel, mode)
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
// change, a canary, its promotion, a rollback, down and a redeploy, a
// start over files an older version left 0644, env files and secrets,
// rollback --to, traffic stop/pause/resume, a named volume and down
// --volumes) and checks the modes after each.
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

	// env_file and secrets: the digests' key is made (0600).
	writeFile(t, filepath.Join(h.dir, "app.env"), "FROM_FILE=ENVFILE-MODE-CANARY\n")
	writeFile(t, filepath.Join(h.dir, "secrets", "db"), "SECRET-MODE-CANARY")
	files := env + "  env_file: ./app.env\n  secrets:\n    db_password: {file: ./secrets/db}\n"
	h.write(fakeManifest("app:2", 2, files))
	h.mustConverge()
	if _, err := os.Stat(filepath.Join(h.dir, ".swiftdeploy", "secrets.key")); err != nil {
		t.Fatalf("no secrets.key after a deploy with secret files: %v", err)
	}
	checkModes(t, h.dir, "env_file and secrets")

	// rollback --to 1: the release book is rewritten.
	if err := h.rollbackTo("1"); err != nil {
		t.Fatal(err)
	}
	h.mustConverge()
	if _, err := os.Stat(filepath.Join(h.dir, ".swiftdeploy", "releases.json")); err != nil {
		t.Fatalf("no releases.json after rollback --to: %v", err)
	}
	checkModes(t, h.dir, "rollback --to 1")

	// Traffic changes: stop, pause (the hold socket), resume.
	for _, tr := range []*stack.Traffic{
		{Mode: stack.TrafficStop, Message: "back soon"},
		{Mode: stack.TrafficPause, Max: 30 * time.Second},
		nil,
	} {
		if err := h.d.setTraffic(context.Background(), "alice", tr, func(string) {}); err != nil {
			t.Fatalf("traffic %+v: %v", tr, err)
		}
		checkModes(t, h.dir, fmt.Sprintf("traffic %+v", tr))
	}

	// A named volume, then down --volumes and a redeploy.
	h.write(fakeManifest("app:2", 2, files+volumeService))
	h.mustConverge()
	if err := h.d.down(context.Background(), "alice", true, func(string) {}); err != nil {
		t.Fatal(err)
	}
	checkModes(t, h.dir, "down --volumes")
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	checkModes(t, h.dir, "a redeploy after down --volumes")
}

// The named form (several services, each with its env) and a front door
// with a certificate from files: the same modes, and the certificate
// store 0700 with its files 0600.
func TestFileModesNamedFormAndTLS(t *testing.T) {
	named := strings.Replace(namedManifest("app:1", "app:1", "app:3"), "    replicas: 2\n",
		"    replicas: 2\n    env:\n      API_TOKEN: "+modeCanary+"\n", 1)
	named = strings.Replace(named, "    kind: accessory\n", "    kind: accessory\n    env:\n      DB_PASSWORD: "+modeCanary+"\n", 1)
	h := newHarness(t, named)
	h.mustConverge()
	checkModes(t, h.dir, "a named-form deploy")

	h.write(strings.Replace(named, "image: app:1", "image: app:2", 1))
	h.mustConverge()
	checkModes(t, h.dir, "a named-form change")
	if err := h.d.down(context.Background(), "alice", true, func(string) {}); err != nil {
		t.Fatal(err)
	}
	checkModes(t, h.dir, "a named-form down --volumes")

	writePair(t, h.dir, "shop.example.com", 48*time.Hour)
	withTLS := strings.Replace(named, "nginx: {image: nginx:latest, port: 8080}",
		"nginx:\n  image: nginx:latest\n  port: 8080\n  tls:\n    hosts: [shop.example.com]\n    cert_file: tls.crt\n    key_file: tls.key\n", 1)
	h.write(withTLS)
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(h.dir, ".swiftdeploy", "nginx", stack.TLSDir)
	entries, err := os.ReadDir(store)
	if err != nil || len(entries) == 0 {
		t.Fatalf("certificate store %s after a deploy with nginx.tls: %v entries, %v", store, len(entries), err)
	}
	checkModes(t, h.dir, "a certificate installed")
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
