package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkACMEAccountKey: the ACME account key is 0600 in 0700 directories
// under .swiftdeploy/acme, and no line of it is in any other file of the
// project (the journal, the daemon's log, the state, the certificate
// store) nor in status or history.
func checkACMEAccountKey(t *testing.T, e *env) {
	t.Helper()
	acme := filepath.Join(e.dir, ".swiftdeploy", "acme")
	var keys []string
	var lines []string
	err := filepath.WalkDir(acme, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(e.dir, p)
		switch {
		case d.IsDir() && fi.Mode().Perm() != 0o700:
			t.Errorf("%s is %v, want drwx------", rel, fi.Mode())
		case !d.IsDir() && fi.Mode().Perm() != 0o600:
			t.Errorf("%s is %v, want -rw-------", rel, fi.Mode())
		}
		if d.Name() == "account.key" {
			keys = append(keys, p)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, l := range strings.Split(string(b), "\n") {
				if l = strings.TrimSpace(l); len(l) >= 16 && !strings.HasPrefix(l, "-----") {
					lines = append(lines, l)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", acme, err)
	}
	if len(keys) == 0 || len(lines) == 0 {
		t.Fatalf("no ACME account key under %s: the check checked nothing", acme)
	}
	grep := func(where, text string) {
		for _, l := range lines {
			if strings.Contains(text, l) {
				t.Errorf("%s holds a line of the ACME account key", where)
			}
		}
	}
	err = filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		for _, k := range keys {
			if p == k {
				return nil
			}
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(e.dir, p)
		grep(rel, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"status", "-o", "json"}, {"history", "-o", "json", "--limit", "10000"}} {
		out, _ := e.swiftctl(args...)
		grep(strings.Join(args, " "), out)
	}
}
