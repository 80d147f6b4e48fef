package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// secretSource is one place a user can put a secret. TestSecretsNeverLeak
// puts a fresh canary into each, drives the daemon through deploy,
// failure, denial, webhook failure and audit, then greps every byte the
// project wrote for every canary.
//
// This list is where each new secret source registers: env files, secret
// files, registry credentials and TLS keys add an entry here when they land
// (its services/top fragments and any files it writes), and the test then
// proves they stay out of the journal, the logs, the state, the rendered
// files and the API's answers.
type secretSource struct {
	name string
	// place returns the manifest fragments that put the secrets in, and
	// the canaries that must appear nowhere but in the user's own files
	// and the secret holders.
	place func(t *testing.T, w *secretWorld) placement
}

// placement is where a source put its secrets.
type placement struct {
	// services (indented two spaces, for the service's keys), nginx (for
	// nginx's keys, unindented: the test indents it) and top (at the top
	// level) are manifest fragments.
	services, nginx, top string
	// canaries must appear nowhere but in own and the holders.
	canaries []string
	// own are the user's files beside the manifest that hold the secret
	// by design (a key file the manifest names), relative to its directory.
	own []string
	// holders are patterns (filepath.Match, relative to the manifest's
	// directory) of the files the project writes that may hold the
	// secrets: each must match a file, and each such file must be 0600.
	holders []string
}

// secretWorld is what sources may use: the test's directory, its webhook
// receiver and its registry (host:port, answering 401 to everything: the
// failed deploy pulls its image from there with the credentials).
type secretWorld struct {
	dir      string
	hookURL  func(user, pass, path, query string) string
	registry string
}

var secretSources = []secretSource{
	{"env values", func(t *testing.T, w *secretWorld) placement {
		tok, pw := canary("ENVTOKEN"), canary("ENVPW")
		return placement{
			services: fmt.Sprintf("  env:\n    API_TOKEN: %q\n    DB_PASSWORD: %q\n", tok, pw),
			canaries: []string{tok, pw},
			holders: []string{
				"docker-compose.yml",        // the stack's env, for `docker compose`
				".swiftdeploy/applied.json", // the applied stack, for heals
			},
		}
	}},
	{"env files and secret files", func(t *testing.T, w *secretWorld) placement {
		// The user's env file and secret files, which the daemon reads
		// when it starts a container and never copies anywhere.
		fromFile, file, asEnv := canary("ENVFILE"), canary("SECRETFILE"), canary("SECRETENV")
		files := map[string]string{
			"app-secrets.env":     "# settings\nFROM_ENV_FILE=" + fromFile + "\n",
			"secrets/db_password": file,
			"secrets/api_key":     asEnv,
		}
		var own []string
		for rel, content := range files {
			if err := os.MkdirAll(filepath.Join(w.dir, "secrets"), 0o700); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(w.dir, rel), []byte(content))
			own = append(own, rel)
		}
		return placement{
			services: "  env_file: ./app-secrets.env\n  secrets:\n    db_password: {file: ./secrets/db_password}\n    api_key: {file: ./secrets/api_key, env: SECRET_API_KEY}\n",
			canaries: []string{fromFile, file, asEnv},
			own:      own,
		}
	}},
	{"webhook URLs", func(t *testing.T, w *secretWorld) placement {
		user, pass, path, tok := canary("HOOKUSER"), canary("HOOKPASS"), canary("HOOKPATH"), canary("HOOKTOKEN")
		u := w.hookURL(user, pass, "/services/"+path, "token="+tok)
		return placement{top: fmt.Sprintf("notify:\n  - url: %q\n", u), canaries: []string{user, pass, path, tok}}
	}},
	{"registry credentials", func(t *testing.T, w *secretWorld) placement {
		// A Docker client config.json named by registries[]: its user,
		// password and their base64 form are the secret.
		user, pass := canary("REGUSER"), canary("REGPASS")
		auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		cfg := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, w.registry, auth)
		if err := os.MkdirAll(filepath.Join(w.dir, "regcfg"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(w.dir, "regcfg", "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return placement{
			top:      fmt.Sprintf("registries:\n  - host: %q\n    config: regcfg/config.json\n", w.registry),
			canaries: []string{user, pass, auth},
			own:      []string{filepath.Join("regcfg", "config.json")},
		}
	}},
	{"TLS keys", func(t *testing.T, w *secretWorld) placement {
		// A key file named by nginx.tls: its PEM body is the secret. The
		// daemon keeps its own copy in the certificate store (0600 in a
		// 0700 directory); the key's bytes must appear nowhere else.
		ca := newTestCA(t)
		certPEM, keyPEM := ca.issue(t, 48*time.Hour, testHost)
		writeFile(t, filepath.Join(w.dir, "tls-cert.pem"), certPEM)
		writeFile(t, filepath.Join(w.dir, "tls-key.pem"), keyPEM)
		var canaries []string
		lines := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")
		for _, l := range lines[1 : len(lines)-1] { // every base64 line of the key
			if len(l) >= 16 {
				canaries = append(canaries, l)
			}
		}
		return placement{
			nginx:    fmt.Sprintf("tls:\n  port: %d\n  hosts: [%s]\n  cert_file: tls-cert.pem\n  key_file: tls-key.pem\n", freePort(t), testHost),
			canaries: canaries,
			own:      []string{"tls-key.pem"},
			holders:  []string{filepath.Join(".swiftdeploy", "nginx", "tls", "*.key")},
		}
	}},
}

func canary(kind string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "SDCANARY-" + kind + "-" + hex.EncodeToString(b)
}

// TestSecretsNeverLeak: secrets placed in every source (secretSources) are
// found nowhere in what the project wrote or answered: the journal, the
// daemon's log, the state directory, the rendered files (but the 0600
// holders), status, history, diff, validate, metrics, the audit report,
// webhook bodies, releases, the replicas' logs and the containers' labels,
// after a deploy, a promotion denied by policy, a webhook that fails,
// manifests rejected for a NUL in an env value and a malformed webhook URL
// (both quoting a canary before the fix), a deploy denied by the
// infrastructure policy, a failed deploy and an audit.
func TestSecretsNeverLeak(t *testing.T) {
	// The webhook receiver fails every delivery (so notify_failed is
	// journaled) and keeps what it was sent.
	var mu sync.Mutex
	var bodies []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		// The body and the headers but Authorization: the receiver is
		// sent its own URL's path, query and user:password (as Basic
		// auth) by design.
		r.Header.Del("Authorization")
		bodies = append(bodies, fmt.Sprint(r.Header)+" "+string(b))
		mu.Unlock()
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer rcv.Close()
	host := rcv.Listener.Addr().String()

	// A registry that refuses every credential: the failed deploy's pull
	// sends it the registry source's user and password.
	var pulls, authed atomic.Int64
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pulls.Add(1)
		if strings.HasPrefix(r.Header.Get("Authorization"), "Basic ") {
			authed.Add(1)
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="secrets-test"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}))
	defer reg.Close()

	e := newEnv(t)
	w := &secretWorld{dir: e.dir, hookURL: func(user, pass, path, query string) string {
		return "http://" + user + ":" + pass + "@" + host + path + "?" + query
	}, registry: reg.Listener.Addr().String()}
	var services, nginx, top string
	var canaries, holders []string
	placed := make([]placement, 0, len(secretSources))
	own := map[string]bool{"manifest.yaml": true, ".manifest.yaml.swp": true}
	for _, src := range secretSources {
		p := src.place(t, w)
		placed = append(placed, p)
		if len(p.canaries) == 0 {
			t.Fatalf("source %s placed no canary", src.name)
		}
		services, nginx, top = services+p.services, nginx+p.nginx, top+p.top
		canaries, holders = append(canaries, p.canaries...), append(holders, p.holders...)
		for _, f := range p.own {
			own[f] = true
		}
	}
	// Canaries only a refused manifest carries.
	nulCanary, urlCanary := canary("NULENV"), canary("BADURL")
	canaries = append(canaries, nulCanary, urlCanary)

	withSecrets := func(m string) string {
		m = strings.Replace(m, "  replicas: 2\n", "  replicas: 2\n"+services, 1)
		if nginx != "" {
			// Under nginx:, which the harness's manifest ends with network: after.
			m = strings.Replace(m, "\nnetwork:\n", "\n"+indent(nginx)+"network:\n", 1)
		}
		return m + top
	}
	good := withSecrets(withCanary(e.manifest(images.AppImage, 2, ""), images.AppImageV2, 20))
	e.writeManifest(good)
	e.startDaemon()

	// Deploy.
	if out, code := e.swiftctl("deploy"); code != 0 {
		t.Fatalf("deploy: exit %d\n%s", code, out)
	}
	e.converged(map[string]int{images.AppImage: 2, images.AppImageV2: 1})

	// A promotion denied by canary safety (no traffic yet): the denied
	// webhook fails, and notify_failed is journaled.
	if out, code := e.swiftctl("promote"); code == 0 {
		t.Fatalf("promote without traffic was allowed:\n%s", out)
	}
	e.waitFor(30*time.Second, "notify_failed journaled", func() (bool, string) {
		return len(e.events(journal.EventNotifyFailed)) > 0, "no notify_failed yet"
	})

	// Refused manifests: a NUL in an env value, a malformed webhook URL.
	rejected := len(e.events(journal.EventManifestRejected))
	for _, bad := range []string{
		strings.Replace(good, "  env:\n", "  env:\n    BROKEN: \""+nulCanary+"\\0tail\"\n", 1),
		good + "  - url: \"http://u:" + urlCanary + "@bad host/" + urlCanary + "\"\n",
	} {
		if bad == good {
			t.Fatal("the manifest has no env map to add the NUL value to")
		}
		e.writeManifest(bad)
		rejected++
		want := rejected
		e.waitFor(30*time.Second, "manifest rejected", func() (bool, string) {
			n := len(e.events(journal.EventManifestRejected))
			return n >= want, fmt.Sprintf("%d rejections", n)
		})
		e.swiftctl("status")
		e.swiftctl("validate")
	}

	// A deploy denied by the infrastructure policy (free disk).
	denied := strings.Replace(withSecrets(e.manifest(images.AppImageV2, 2, "")), "min_disk_gb: 0.1", "min_disk_gb: 1000000", 1)
	e.writeManifest(denied)
	if out, code := e.swiftctl("deploy"); code == 0 {
		t.Fatalf("deploy with min_disk_gb 1000000 was not denied:\n%s", out)
	}
	// A failed deploy: an image that does not exist.
	e.writeManifest(withSecrets(e.manifest(w.registry+"/swiftdeploy-no-such-image:1", 2, "")))
	e.swiftctl("deploy")
	e.swiftctl("validate")
	if pulls.Load() == 0 || authed.Load() == 0 {
		t.Errorf("the registry was asked %d times, %d with credentials: the registry credentials were not exercised", pulls.Load(), authed.Load())
	}
	e.writeManifest(good)
	if out, code := e.swiftctl("deploy"); code != 0 {
		t.Fatalf("deploy back: exit %d\n%s", code, out)
	}

	// Every answer the API and the CLI give.
	var answers []string
	for _, args := range [][]string{
		{"status"}, {"status", "-o", "json"}, {"history", "-o", "json", "--limit", "10000"}, {"history"},
		{"diff"}, {"diff", "-o", "json"}, {"validate", "-o", "json"}, {"audit"},
		{"releases"}, {"releases", "-o", "json"}, {"logs", "--tail", "500"},
	} {
		out, _ := e.swiftctl(args...)
		answers = append(answers, strings.Join(args, " ")+": "+out)
	}
	for _, p := range []string{api.PathStatus, api.PathHistory + "?limit=10000", api.PathDiff, api.PathMetrics} {
		var raw any
		if err := e.api.Get(context.Background(), p, &raw); err != nil && p != api.PathMetrics {
			t.Errorf("GET %s: %v", p, err)
		}
		answers = append(answers, fmt.Sprintf("GET %s: %v", p, raw))
	}
	answers = append(answers, rawGet(t, e.socket, api.PathMetrics))
	// The release book and the replicas' logs (the app's own lines: it
	// prints no env value, so a canary there is the daemon's doing).
	for _, p := range []string{api.PathReleases, api.PathLogs + "?tail=500", api.PathLogs + "?track=canary"} {
		a := rawGet(t, e.socket, p)
		if !strings.Contains(a, "{") {
			t.Errorf("%s: no JSON answer, the grep would check nothing: %s", p, a)
		}
		answers = append(answers, a)
	}

	// The containers' labels (what `docker inspect` shows to anyone with
	// Docker) carry no env value.
	res, err := e.cli.ContainerList(context.Background(), client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", stack.LabelProject+"="+e.project),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) == 0 {
		t.Error("no container of the project listed: the labels were not checked")
	}
	for _, c := range res.Items {
		answers = append(answers, fmt.Sprintf("labels of %s: %v", c.Names, c.Labels))
	}
	e.stopDaemon(syscall.SIGTERM)

	mu.Lock()
	answers = append(answers, bodies...)
	got := len(bodies)
	mu.Unlock()
	if got == 0 {
		t.Error("the webhook receiver got nothing: the webhook source was not exercised")
	}

	// Grep.
	for i, a := range answers {
		for _, c := range canaries {
			if strings.Contains(a, c) {
				t.Errorf("answer %d holds the secret %s:\n%s", i, c, excerpt(a, c))
			}
		}
	}
	var scanned int
	held := make(map[string]int) // holder pattern -> files it matched
	err = filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(e.dir, p)
		if own[rel] {
			return nil // the user's own file
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		scanned++
		// A holder may keep its own source's secrets (0600), no other's.
		allowed := make(map[string]bool)
		for _, p := range placed {
			if h := holderOf(p.holders, rel); h != "" {
				held[h]++
				for _, c := range p.canaries {
					allowed[c] = true
				}
			}
		}
		if len(allowed) > 0 {
			if fi, _ := d.Info(); fi.Mode().Perm() != 0o600 {
				t.Errorf("%s holds secrets and is %v, want -rw-------", rel, fi.Mode())
			}
		}
		for _, c := range canaries {
			if allowed[c] {
				continue
			}
			if strings.Contains(string(b), c) {
				t.Errorf("%s holds the secret %s:\n%s", rel, c, excerpt(string(b), c))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"history.jsonl", "daemon.log", "audit_report.md", "nginx.conf"} {
		if _, err := os.Stat(filepath.Join(e.dir, must)); err != nil {
			t.Errorf("%s was not written: the grep did not cover it (%v)", must, err)
		}
	}
	for _, h := range holders {
		if held[h] == 0 {
			t.Errorf("no file matched the secret holder %s: the test did not see where that secret is kept", h)
		}
	}
	t.Logf("%d canaries from %d sources; %d files and %d answers scanned", len(canaries), len(secretSources), scanned, len(answers))
}

// holderOf is the pattern of holders that rel matches, or "".
func holderOf(holders []string, rel string) string {
	for _, h := range holders {
		if ok, _ := filepath.Match(h, rel); ok {
			return h
		}
	}
	return ""
}

// rawGet returns the raw answer to GET path on the socket.
func rawGet(t *testing.T, socket, path string) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://swiftdeployd" + path)
	if err != nil {
		return "GET " + path + ": " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return "GET " + path + ": " + string(b)
}

func excerpt(s, sub string) string {
	i := strings.Index(s, sub)
	return s[max(0, i-200):min(len(s), i+len(sub)+200)]
}
