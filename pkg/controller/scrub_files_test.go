package controller

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/redact"
	"github.com/swiftdeploy/swiftdeploy/pkg/releases"
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

	// The front door's key rewritten in place, the manifest and every
	// service's files unchanged: its new lines are learned too.
	writePair(t, h.dir, "shop.example.com", 72*time.Hour)
	keyPEM, err = os.ReadFile(filepath.Join(h.dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	newKeyLine := strings.Split(string(keyPEM), "\n")[1]
	if newKeyLine == keyLine {
		t.Fatal("writePair wrote the same key again: the test shows nothing")
	}
	h.mustConverge()
	leaks(newKeyLine)
}

// A withFiles that starts while another is still reading a rotated
// file's values does not take the new digest for learned: it learns the
// values itself before it returns, so nothing it journals next quotes
// them.
func TestScrubberConcurrentRotation(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, "  secrets:\n    db_password: {file: ./secrets/db}\n"))
	writeFile(t, filepath.Join(h.dir, "secrets", "db"), "BEFORE-SCRUB-CANARY-78")
	h.mustConverge()

	const rotated = "AFTER-SCRUB-CANARY-79"
	writeFile(t, filepath.Join(h.dir, "secrets", "db"), rotated)
	orig := readFileSecrets
	t.Cleanup(func() { readFileSecrets = orig })
	var once sync.Once
	entered, release := make(chan struct{}), make(chan struct{})
	readFileSecrets = func(dir string, m *manifest.Manifest) []string {
		hang := false
		once.Do(func() { hang = true })
		if hang {
			close(entered)
			<-release
		}
		return orig(dir, m)
	}
	m := h.d.manifestNow()
	first := make(chan error)
	go func() {
		_, err := h.d.withFiles(m)
		first <- err
	}()
	<-entered
	if _, err := h.d.withFiles(m); err != nil {
		t.Fatal(err)
	}
	if got := h.d.scrubText("said " + rotated); strings.Contains(got, rotated) {
		t.Errorf("a withFiles returned before the rotated value was learned: %s", got)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// A value the manifest prints in clear is not a secret, and the scrubber
// must not rewrite it in journal details the release book is rebuilt
// from: an env file holding the image's tag (APP_VERSION=2024.06.1
// beside image shop/web:2024.06.1) and the service's name
// (OTEL_SERVICE_NAME=checkout, service checkout) leaves the journaled
// release whole, and a release book rebuilt from the journal (releases.json
// lost) lists the right image under the right service. A real secret in
// the same file is still scrubbed.
func TestScrubberKeepsManifestIdentifiers(t *testing.T) {
	const image, service, secret = "shop/web:2024.06.1", "checkout", "PUBLIC-FILTER-SECRET-75"
	h := newHarness(t, `project: demo
services:
  `+service+`:
    image: `+image+`
    port: 3000
    env_file: ./app.env
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
`)
	h.fe.AddImage(image)
	writeFile(t, filepath.Join(h.dir, "app.env"), "APP_VERSION=2024.06.1\nOTEL_SERVICE_NAME="+service+"\nDB_PASSWORD="+secret+"\n")
	h.mustConverge()

	var applied []journal.Record
	for _, r := range h.records(journal.TypeEvent) {
		if r.Event == journal.EventManifestApplied {
			applied = append(applied, r)
		}
	}
	if len(applied) != 1 {
		t.Fatalf("%d manifest_applied records, want 1", len(applied))
	}
	b, err := json.Marshal(applied[0])
	if err != nil {
		t.Fatal(err)
	}
	if raw := string(b); strings.Contains(raw, "[redacted]") || !strings.Contains(raw, `"`+image+`"`) {
		t.Errorf("the journaled release is not whole: %s", raw)
	}
	h.d.event("scrub_probe_public", "the app said "+secret, "", nil)
	if got := h.d.scrubText("the app said " + secret); strings.Contains(got, secret) {
		t.Errorf("the secret beside the public values is not scrubbed: %s", got)
	}

	h.d.jr.Close()
	if err := os.Remove(filepath.Join(h.dir, ".swiftdeploy", releases.File)); err != nil {
		t.Fatal(err)
	}
	h.d = h.newDaemon()
	rs, err := h.d.releasesOf(context.Background(), service)
	if err != nil {
		t.Fatal(err)
	}
	if got := revs(rs); got != "1*:"+image {
		t.Fatalf("releases rebuilt from the journal: %q, want 1*:%s", got, image)
	}
}

// Rebuilding the scrubber reads no file under d.mu: while a read of the
// secret files hangs (a slow disk, a FUSE mount), status answers when a
// pull teaches new credentials. (A new manifest's read still parses it
// and reads its secret files under d.mu: see readManifest.)
func TestScrubberReadsNoFileUnderTheLock(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, "  env_file: ./app.env\n"))
	writeFile(t, filepath.Join(h.dir, "app.env"), "DB_PASSWORD=LOCK-SCRUB-CANARY-76\n")
	h.mustConverge()

	orig := readFileSecrets
	t.Cleanup(func() { readFileSecrets = orig })
	check := func(what string, fn func()) {
		t.Helper()
		var once sync.Once
		entered, release := make(chan struct{}), make(chan struct{})
		// Only the first read hangs: status may read the new manifest too.
		readFileSecrets = func(dir string, m *manifest.Manifest) []string {
			hang := false
			once.Do(func() { hang = true })
			if hang {
				close(entered)
				<-release
			}
			return orig(dir, m)
		}
		done := make(chan struct{})
		go func() { fn(); close(done) }()
		select {
		case <-entered:
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: neither read the files nor returned", what)
		}
		answered := make(chan struct{})
		go func() { h.d.Status(context.Background()); close(answered) }()
		select {
		case <-answered:
		case <-time.After(3 * time.Second):
			t.Errorf("%s: status waits on a read of the secret files", what)
		}
		close(release)
		<-done
		<-answered
	}
	check("a pull's new credentials", func() { h.d.notePullSecrets([]string{"PULL-SCRUB-CANARY-77"}) })
	for _, c := range []string{"LOCK-SCRUB-CANARY-76", "PULL-SCRUB-CANARY-77"} {
		if got := h.d.scrubText("said " + c); strings.Contains(got, c) {
			t.Errorf("the scrubber does not know %s after the reads: %s", c, got)
		}
	}
}

// publicOf names every identifier the manifest prints in clear, of both
// forms: services' and canaries' images, nginx's, service names, hosts.
func TestPublicOfNamesTheManifestIdentifiers(t *testing.T) {
	m, err := manifest.Parse([]byte(`project: shop
services:
  checkout:
    image: shop/web:2024.06.1
    port: 3000
    health_path: /healthz-checkout
    canary: {image: shop/web:2024.07.0-rc1, weight: 10}
  worker:
    image: registry.example.com/shop/worker@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
nginx:
  image: nginx:1.27.0-alpine
  port: 8080
  tls: {hosts: [shop.example.com], cert_file: tls.crt, key_file: tls.key}
network: {name: shop-net}
`), "shop")
	if err != nil {
		t.Fatal(err)
	}
	pub := publicOf(m)
	for _, v := range []string{"shop", "checkout", "worker", "2024.06.1", "2024.07.0-rc1", "1.27.0-alpine",
		"0123456789abcdef0123456789abcdef", "registry.example.com", "shop.example.com", "/healthz-checkout"} {
		if !redact.Public(v, pub) {
			t.Errorf("%q is not public in %q", v, pub)
		}
	}
	if redact.Public("not-in-the-manifest", pub) {
		t.Errorf("public %q holds what the manifest does not say", pub)
	}
}
