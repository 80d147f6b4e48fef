package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

func swiftctlRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), args, &out, &errb)
	code = exitCode(&errb, err)
	return out.String(), errb.String(), code
}

// import writes a manifest that loads, 0600, lists what it left out on
// stderr, exits 0; never over an existing file without --force; with
// --strict it writes nothing and exits 1 when something was left out.
func TestImportCommand(t *testing.T) {
	src := filepath.Join("..", "..", "pkg", "composeimport", "testdata", "web-db-redis", "docker-compose.yml")
	dir := t.TempDir()
	out := filepath.Join(dir, "manifest.yaml")

	_, stderr, code := swiftctlRun(t, "import", src, "--strict", "-o", out)
	if code != exitFailure || !strings.Contains(stderr, "nothing written (--strict)") {
		t.Fatalf("--strict: exit %d, stderr:\n%s", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("--strict wrote %s (%v)", out, err)
	}

	_, stderr, code = swiftctlRun(t, "import", src, "-o", out)
	if code != exitOK || !strings.Contains(stderr, `services.db.healthcheck.test: ["CMD", "pg_isready"] (an accessory is judged healthy by running and accepting connections on port 5432)`) ||
		!strings.Contains(stderr, "wrote "+out+" from "+src+" (services db, redis, web)") {
		t.Fatalf("import: exit %d, stderr:\n%s", code, stderr)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("manifest mode %v (%v), want 0600: its env may hold secrets", fi.Mode().Perm(), err)
	}
	m, err := manifest.Load(out)
	if err != nil {
		t.Fatalf("the written manifest does not load: %v", err)
	}
	if w := m.Named["web"]; w == nil || w.Image != "example/shop-web:1.8.2" || w.Port != 5000 || m.Nginx.Port != 8000 || w.Replicas != 2 ||
		m.Named["db"] == nil || m.Named["db"].Kind != manifest.KindAccessory || m.Named["redis"] == nil {
		t.Errorf("manifest %+v", m.Named)
	}

	_, stderr, code = swiftctlRun(t, "import", src, "-o", out)
	if code != exitFailure || !strings.Contains(stderr, "exists; --force replaces it") {
		t.Errorf("over an existing file: exit %d, stderr:\n%s", code, stderr)
	}
	_, _, code = swiftctlRun(t, "import", src, "-o", out, "--force", "--service", "db")
	if m, err := manifest.Load(out); code != exitOK || err != nil || m.Services.Image != "postgres:16" || m.Services.Port != 5432 {
		t.Errorf("--force --service db: exit %d, %v, %+v", code, err, m)
	}

	// -o -: the manifest on stdout, clean (stderr has the notes).
	stdout, _, code := swiftctlRun(t, "import", filepath.Join(filepath.Dir(src), "..", "single", "docker-compose.yml"), "-o", "-", "--strict")
	if _, err := manifest.Parse([]byte(stdout), "x"); code != exitOK || err != nil {
		t.Errorf("-o - --strict on a fully expressible file: exit %d, %v:\n%s", code, err, stdout)
	}

	// A file that is not compose, a missing file: exit 1, named.
	_, stderr, code = swiftctlRun(t, "import", filepath.Join(dir, "nope.yml"), "-o", "-")
	if code != exitFailure || !strings.Contains(stderr, "nope.yml") {
		t.Errorf("missing file: exit %d, stderr %s", code, stderr)
	}
	_, _, code = swiftctlRun(t, "import")
	if code != exitUsage {
		t.Errorf("no argument: exit %d, want %d", code, exitUsage)
	}
}
