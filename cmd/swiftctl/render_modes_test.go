package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenderedFilesAreOwnerOnly: every file render and init write from the
// manifest carries its env values inline, so it is 0600 whatever the
// umask, a directory render makes is 0750, and a file an older version
// left 0644 with the same bytes is tightened rather than kept.
func TestRenderedFilesAreOwnerOnly(t *testing.T) {
	const secret = "s3cr3t-render-canary"
	manifest := strings.Replace(articleManifest, "  port: 3000\n", "  port: 3000\n  env:\n    DB_PASSWORD: "+secret+"\n", 1)

	dir := filepath.Join(t.TempDir(), "shop")
	path := filepath.Join(dir, manifestFile)
	writeFile(t, path, manifest)

	assertMode := func(t *testing.T, p string, want os.FileMode) {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s is %#o, want %#o", p, got, want)
		}
	}

	t.Run("beside the manifest", func(t *testing.T) {
		if _, stderr, code := runCLI(t, "render", "--manifest", path); code != exitOK {
			t.Fatalf("render exited %d: %s", code, stderr)
		}
		if !strings.Contains(string(readFile(t, filepath.Join(dir, composeFile))), secret) {
			t.Fatal("the env value is not in docker-compose.yml: the test no longer shows what the mode protects")
		}
		// nginx.conf holds no env value: 0640, as the daemon's own copy.
		assertMode(t, filepath.Join(dir, composeFile), 0o600)
		assertMode(t, filepath.Join(dir, nginxFile), 0o640)
		// An older version's 0644 copy with the same bytes: "unchanged",
		// but no longer world-readable.
		if err := os.Chmod(filepath.Join(dir, composeFile), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := runCLI(t, "render", "--manifest", path)
		if code != exitOK {
			t.Fatalf("render exited %d: %s", code, stderr)
		}
		if !strings.Contains(stdout, "unchanged    "+filepath.Join(dir, composeFile)) {
			t.Errorf("second render does not say docker-compose.yml is unchanged:\n%s", stdout)
		}
		assertMode(t, filepath.Join(dir, composeFile), 0o600)
	})

	for _, target := range []struct{ name, file string }{
		{"docker", composeFile},
		{"kubernetes", "kubernetes.yaml"},
		{"argo-rollouts", "argo-rollouts.yaml"},
	} {
		t.Run("--out new directory --target "+target.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+target.name, "nested")
			args := []string{"render", "--manifest", path, "--out", out, "--target", target.name}
			if target.name == "argo-rollouts" {
				args = append(args, "--prometheus", "http://prom:9090")
			}
			if _, stderr, code := runCLI(t, args...); code != exitOK {
				t.Fatalf("render exited %d: %s", code, stderr)
			}
			if !strings.Contains(string(readFile(t, filepath.Join(out, target.file))), secret) {
				t.Fatalf("the env value is not in %s", target.file)
			}
			entries, err := os.ReadDir(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				want := os.FileMode(0o600)
				if e.Name() == nginxFile {
					want = 0o640
				}
				assertMode(t, filepath.Join(out, e.Name()), want)
			}
			assertMode(t, out, 0o750)
			assertMode(t, filepath.Dir(out), 0o750)
		})
	}

	t.Run("init", func(t *testing.T) {
		initDir := filepath.Join(t.TempDir(), "shop")
		writeFile(t, filepath.Join(initDir, manifestFile), manifest)
		if _, stderr, code := runCLI(t, "init", initDir); code != exitOK {
			t.Fatalf("init exited %d: %s", code, stderr)
		}
		assertMode(t, filepath.Join(initDir, composeFile), 0o600)
		assertMode(t, filepath.Join(initDir, nginxFile), 0o640)
		// init again over 0644 copies with the same bytes tightens them.
		for _, name := range []string{composeFile, nginxFile} {
			if err := os.Chmod(filepath.Join(initDir, name), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if _, stderr, code := runCLI(t, "init", initDir); code != exitOK {
			t.Fatalf("init exited %d: %s", code, stderr)
		}
		assertMode(t, filepath.Join(initDir, composeFile), 0o600)
		assertMode(t, filepath.Join(initDir, nginxFile), 0o640)
	})

	// init makes the project's directory and policies/ 0750, as every
	// directory swiftctl and the daemon make: the manifest in it holds
	// env values.
	t.Run("init new directory", func(t *testing.T) {
		initDir := filepath.Join(t.TempDir(), "fresh")
		if _, stderr, code := runCLI(t, "init", initDir); code != exitOK {
			t.Fatalf("init exited %d: %s", code, stderr)
		}
		assertMode(t, initDir, 0o750)
		assertMode(t, filepath.Join(initDir, policiesDir), 0o750)
	})
}
