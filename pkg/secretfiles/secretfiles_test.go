package secretfiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

func write(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The digest changes with any file's content and with the key, holds no
// byte of the content, and is stable otherwise.
func TestDigest(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.env", "A=1\n")
	write(t, dir, "s/pw", "hunter2")
	s := &manifest.Services{EnvFile: manifest.StringList{"./a.env"}, Secrets: manifest.Secrets{{Name: "pw", File: "s/pw"}}}
	key, err := Key(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := Key(dir); string(again) != string(key) {
		t.Fatal("the key changed between two reads")
	}
	if fi, _ := os.Stat(filepath.Join(dir, KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file is %v, want -rw-------", fi.Mode())
	}
	d1, err := Digest("services", dir, key, s)
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := Digest("services", dir, key, s); d2 != d1 {
		t.Error("the digest is not stable")
	}
	if strings.Contains(d1, "hunter2") {
		t.Error("the digest holds the secret")
	}
	write(t, dir, "s/pw", "hunter3")
	if d3, _ := Digest("services", dir, key, s); d3 == d1 {
		t.Error("a changed secret gives the same digest")
	}
	if d4, _ := Digest("services", dir, []byte("another key"), s); d4 == d1 {
		t.Error("another key gives the same digest")
	}
	if d, _ := Digest("services", dir, key, &manifest.Services{}); d != "" {
		t.Errorf("no files: digest %q, want empty", d)
	}
}

// Errors name the field and the file, never the content.
func TestErrorsNeverQuoteContent(t *testing.T) {
	dir := t.TempDir()
	const secret = "SECRET-CANARY-77"
	for _, tc := range []struct{ content, field string }{
		{"BROKEN LINE " + secret + "\n", "services.env_file[0]"},
		{"PORT=" + secret + "\n", "services.env_file[0]"},
		{"1BAD=" + secret + "\n", "services.env_file[0]"},
	} {
		write(t, dir, "x.env", tc.content)
		_, err := EnvFiles("services", dir, []string{"x.env"})
		if err == nil {
			t.Errorf("%q accepted", tc.content)
			continue
		}
		if strings.Contains(err.Error(), secret) || !strings.HasPrefix(err.Error(), tc.field) {
			t.Errorf("error %q: want it to name %s and not quote the content", err, tc.field)
		}
	}
	if _, err := Read("services.secrets.pw", dir, "missing"); err == nil || !strings.HasPrefix(err.Error(), "services.secrets.pw:") {
		t.Errorf("missing file: %v", err)
	}
	write(t, dir, "ok.env", "# comment\nexport A=1\nB=\"two words\"\nC=${HOME}\n")
	env, err := EnvFiles("services", dir, []string{"ok.env"})
	if err != nil {
		t.Fatal(err)
	}
	if env["A"] != "1" || env["B"] != "two words" || env["C"] != "" {
		t.Errorf("env %q: want A=1, B=two words, C empty (no expansion from the daemon's environment)", env)
	}
}
