package controller

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// The journal's last-line scrubber knows what env files, secret files
// and the front door's key file hold, not only the manifest's env values:
// a journaled message or detail, or a log line (scrubText), quoting one
// is scrubbed, and so is a secret file's new content after a rotation
// under an unchanged manifest.
func TestScrubberKnowsFileSecrets(t *testing.T) {
	const envFile, secret, multi = "ENVFILE-SCRUB-CANARY-71", "SECRETFILE-SCRUB-CANARY-72", "MULTILINE-SCRUB-CANARY-73"
	svc := "  env_file: ./app.env\n  secrets:\n    db_password: {file: ./secrets/db}\n    cert: {file: ./secrets/multi}\n"
	h := newHarness(t, fakeManifest("app:1", 1, svc))
	writeFile(t, filepath.Join(h.dir, "app.env"), "FROM_FILE="+envFile+"\n")
	writeFile(t, filepath.Join(h.dir, "secrets", "db"), secret+"\n")
	writeFile(t, filepath.Join(h.dir, "secrets", "multi"), "first line is long enough\n"+multi+"\n")
	h.mustConverge()

	// A key file of the front door, its lines without the PEM armour.
	writePair(t, h.dir, "shop.example.com", 48*time.Hour)
	keyPEM, err := os.ReadFile(filepath.Join(h.dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	keyLine := strings.Split(string(keyPEM), "\n")[1]
	withTLS := strings.Replace(fakeManifest("app:1", 1, svc), "nginx:\n  image: nginx:latest\n  port: 8080\n",
		"nginx:\n  image: nginx:latest\n  port: 8080\n  tls:\n    hosts: [shop.example.com]\n    cert_file: tls.crt\n    key_file: tls.key\n", 1)
	h.write(withTLS)
	h.mustConverge()

	leaks := func(canaries ...string) {
		t.Helper()
		for i, c := range canaries {
			msg := "the app said: " + c + " (quoted by a path nobody foresaw)"
			ev := "scrub_probe_" + string(rune('a'+i))
			h.d.event(ev, msg, "", map[string]any{"error": msg, "list": []string{c}})
			if got := h.d.scrubText(msg); strings.Contains(got, c) {
				t.Errorf("a log line keeps %q: %s", c, got)
			}
			found := false
			for _, r := range h.records(journal.TypeEvent) {
				if r.Event != ev {
					continue
				}
				found = true
				b, err := json.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				if raw := string(b); strings.Contains(raw, c) {
					t.Errorf("the journal keeps %q: %s", c, raw)
				}
			}
			if !found {
				t.Fatalf("event %s not journaled", ev)
			}
		}
	}
	leaks(envFile, secret, multi, keyLine)

	// A rotation under the same manifest: the reconcile that reads the
	// new content teaches it to the scrubber.
	const rotated = "ROTATED-SCRUB-CANARY-74"
	writeFile(t, filepath.Join(h.dir, "secrets", "db"), rotated)
	h.mustConverge()
	leaks(rotated)
}
