package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/policies"
)

// runCLI runs swiftctl with args and returns what it printed and its exit
// code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	code = exitCode(&errOut, err)
	return out.String(), errOut.String(), code
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rendered returns what render.Compose and render.Nginx make of the
// manifest at path.
func rendered(t *testing.T, path string) (compose, nginx []byte) {
	t.Helper()
	m, err := manifest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := stack.FromManifest(m, stack.Options{})
	if compose, err = render.Compose(s); err != nil {
		t.Fatal(err)
	}
	if nginx, err = render.Nginx(s); err != nil {
		t.Fatal(err)
	}
	return compose, nginx
}

func TestInitWritesTheArticleManifestAndPolicies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shop")
	stdout, stderr, code := runCLI(t, "init", dir)
	if code != exitOK {
		t.Fatalf("init exited %d; stderr:\n%s", code, stderr)
	}
	article := readFile(t, filepath.Join("..", "..", "pkg", "manifest", "testdata", "article.yaml"))
	if got := readFile(t, filepath.Join(dir, manifestFile)); !bytes.Equal(got, article) {
		t.Errorf("manifest.yaml =\n%s\nwant the article's, as in pkg/manifest/testdata/article.yaml:\n%s", got, article)
	}
	regos, err := fs.Glob(policies.FS, "*.rego")
	if err != nil || len(regos) == 0 {
		t.Fatalf("embedded policies: %v, %v", regos, err)
	}
	var sawTest bool
	for _, name := range regos {
		want, _ := fs.ReadFile(policies.FS, name)
		if got := readFile(t, filepath.Join(dir, policiesDir, name)); !bytes.Equal(got, want) {
			t.Errorf("policies/%s differs from the embedded file", name)
		}
		sawTest = sawTest || strings.HasSuffix(name, "_test.rego")
		if !strings.Contains(stdout, "wrote        "+filepath.Join(dir, policiesDir, name)) {
			t.Errorf("output does not report writing policies/%s:\n%s", name, stdout)
		}
	}
	if !sawTest {
		t.Error("no *_test.rego among the written policies")
	}
	compose, nginx := rendered(t, filepath.Join(dir, manifestFile))
	if got := readFile(t, filepath.Join(dir, composeFile)); !bytes.Equal(got, compose) {
		t.Errorf("docker-compose.yml is not render.Compose's output")
	}
	if got := readFile(t, filepath.Join(dir, nginxFile)); !bytes.Equal(got, nginx) {
		t.Errorf("nginx.conf is not render.Nginx's output")
	}
}

func TestInitNeverOverwritesWithoutForce(t *testing.T) {
	// A user's manifest (valid, different port) and an edited policy.
	const userManifest = "services:\n  image: shop:1.0\n  port: 3000\nnginx:\n  image: nginx:latest\n  port: 9090\nnetwork:\n  name: shop-net\n"
	const userPolicy = "package swiftdeploy.infrastructure\n\nallow := true\n"
	tests := []struct {
		name         string
		args         []string
		wantManifest string // "" means the article's
		wantPolicy   string // "" means the embedded one
		wantOutput   []string
	}{
		{
			name:         "kept without force",
			args:         []string{"init"},
			wantManifest: userManifest,
			wantPolicy:   userPolicy,
			wantOutput:   []string{"kept         %s/manifest.yaml (yours differs; --force overwrites it)", "kept         %s/policies/infrastructure.rego", "unchanged    %s/policies/canary_safety.rego"},
		},
		{
			name:       "overwritten with force",
			args:       []string{"init", "--force"},
			wantOutput: []string{"overwrote    %s/manifest.yaml", "overwrote    %s/policies/infrastructure.rego"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, stderr, code := runCLI(t, "init", dir); code != exitOK {
				t.Fatalf("first init exited %d: %s", code, stderr)
			}
			writeFile(t, filepath.Join(dir, manifestFile), userManifest)
			writeFile(t, filepath.Join(dir, policiesDir, "infrastructure.rego"), userPolicy)
			// A generated file the user removed is simply written again.
			if err := os.Remove(filepath.Join(dir, nginxFile)); err != nil {
				t.Fatal(err)
			}

			stdout, stderr, code := runCLI(t, append(tc.args, dir)...)
			if code != exitOK {
				t.Fatalf("init exited %d: %s", code, stderr)
			}
			wantManifest, wantPolicy := tc.wantManifest, tc.wantPolicy
			if wantManifest == "" {
				wantManifest = articleManifest
			}
			if wantPolicy == "" {
				b, _ := fs.ReadFile(policies.FS, "infrastructure.rego")
				wantPolicy = string(b)
			}
			if got := string(readFile(t, filepath.Join(dir, manifestFile))); got != wantManifest {
				t.Errorf("manifest.yaml =\n%s\nwant\n%s", got, wantManifest)
			}
			if got := string(readFile(t, filepath.Join(dir, policiesDir, "infrastructure.rego"))); got != wantPolicy {
				t.Errorf("policies/infrastructure.rego =\n%s\nwant\n%s", got, wantPolicy)
			}
			// nginx.conf follows the manifest that is now in the directory.
			_, nginx := rendered(t, filepath.Join(dir, manifestFile))
			if got := readFile(t, filepath.Join(dir, nginxFile)); !bytes.Equal(got, nginx) {
				t.Errorf("nginx.conf was not rendered from the manifest in %s", dir)
			}
			for _, w := range tc.wantOutput {
				if w = strings.ReplaceAll(w, "%s", dir); !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestRenderRejectsBadManifest(t *testing.T) {
	tests := []struct {
		name       string
		manifest   string // "" means no file at all
		wantStderr []string
	}{
		{
			name:       "port out of range",
			manifest:   "services:\n  image: shop:1.0\n  port: 70000\nnginx:\n  image: nginx:latest\n  port: 8080\nnetwork:\n  name: shop-net\n",
			wantStderr: []string{"invalid manifest", "services.port", "(line 3)"},
		},
		{
			name:       "every problem listed",
			manifest:   "services:\n  image: shop:1.0\n  port: 0\n  replicas: -1\nnginx:\n  image: nginx:latest\n  port: 8080\nnetwork:\n  name: shop-net\n",
			wantStderr: []string{"services.port", "services.replicas"},
		},
		{
			name:       "unknown field",
			manifest:   "services:\n  image: shop:1.0\n  port: 3000\n  prot: 3\nnginx:\n  image: nginx:latest\n  port: 8080\nnetwork:\n  name: shop-net\n",
			wantStderr: []string{"services.prot"},
		},
		{
			name:       "no manifest",
			wantStderr: []string{"read manifest", "no such file"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, manifestFile)
			if tc.manifest != "" {
				writeFile(t, path, tc.manifest)
			}
			stdout, stderr, code := runCLI(t, "render", "--manifest", path)
			if code != exitFailure {
				t.Fatalf("render exited %d, want %d; stdout:\n%s\nstderr:\n%s", code, exitFailure, stdout, stderr)
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			for _, name := range []string{composeFile, nginxFile} {
				if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
					t.Errorf("%s was written for a bad manifest (stat: %v)", name, err)
				}
			}
		})
	}
}

func TestRenderWritesBothFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, manifestFile)
	writeFile(t, path, articleManifest)
	out := filepath.Join(dir, "out")
	stdout, stderr, code := runCLI(t, "render", "--manifest", path, "--out", out)
	if code != exitOK {
		t.Fatalf("render exited %d: %s", code, stderr)
	}
	compose, nginx := rendered(t, path)
	if !bytes.Equal(readFile(t, filepath.Join(out, composeFile)), compose) || !bytes.Equal(readFile(t, filepath.Join(out, nginxFile)), nginx) {
		t.Error("rendered files differ from render.Compose/render.Nginx output")
	}
	if !strings.Contains(stdout, "wrote        "+filepath.Join(out, composeFile)) {
		t.Errorf("output:\n%s", stdout)
	}
	stdout, _, _ = runCLI(t, "render", "--manifest", path, "--out", out)
	if !strings.Contains(stdout, "unchanged    "+filepath.Join(out, nginxFile)) {
		t.Errorf("second render does not say the files are unchanged:\n%s", stdout)
	}
}

func TestDaemonNotRunning(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")

	// A socket file nobody listens on, as a crashed daemon leaves behind.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	commands := [][]string{
		{"status"}, {"status", "-o", "json"}, {"deploy"}, {"deploy", "--wait", "10m"}, {"validate"}, {"diff"}, {"down"},
		{"history"}, {"promote"}, {"rollback"}, {"rollback", "--to", "previous"}, {"rollback", "web", "--to", "2"},
		{"releases"}, {"releases", "-o", "json"}, {"chaos", "recover"}, {"chaos", "error", "--rate", "0.5"},
	}
	for _, args := range commands {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			for _, socket := range []struct{ path, where string }{
				{missing, "no socket at " + missing},
				{stale, "nothing listens on " + stale},
			} {
				_, stderr, code := runCLI(t, append(args, "--socket", socket.path)...)
				want := "swiftdeployd is not running (" + socket.where + "); start it with: swiftdeployd --manifest ./manifest.yaml --socket " + socket.path + "\n"
				if code != exitDaemonDown || stderr != want {
					t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", code, stderr, exitDaemonDown, want)
				}
			}
		})
	}

	t.Run("socket from the environment", func(t *testing.T) {
		t.Setenv(api.EnvSocket, missing)
		_, stderr, code := runCLI(t, "status", "--manifest", "/srv/shop/manifest.yaml")
		want := "swiftdeployd is not running (no socket at " + missing + "); start it with: swiftdeployd --manifest /srv/shop/manifest.yaml\n"
		if code != exitDaemonDown || stderr != want {
			t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", code, stderr, exitDaemonDown, want)
		}
	})
}

func TestUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"unknown command", []string{"deploi"}, `unknown command "deploi"`},
		{"unknown flag", []string{"status", "--bogus"}, "unknown flag: --bogus"},
		{"bad output format", []string{"diff", "-o", "yaml"}, `--output: want text or json, got "yaml"`},
		{"bad history type", []string{"history", "--type", "events"}, `--type: want event, snapshot or decision, got "events"`},
		{"bad since", []string{"history", "--since", "yesterday"}, "--since: want an RFC 3339 time"},
		{"negative limit", []string{"history", "--limit", "-3"}, "--limit: want a positive number"},
		{"watch as json", []string{"status", "--watch", "-o", "json"}, "cannot be combined with --output json"},
		{"chaos without mode", []string{"chaos"}, "name a mode"},
		{"chaos slow without duration", []string{"chaos", "slow"}, `required flag(s) "duration" not set`},
		{"chaos slow too long", []string{"chaos", "slow", "--duration", "2m"}, "--duration: want more than 0 and at most 1m0s, got 2m0s"},
		{"chaos error rate above 1", []string{"chaos", "error", "--rate", "1.5"}, "--rate: want a fraction more than 0 and at most 1, got 1.5"},
		{"chaos bad track", []string{"chaos", "recover", "--track", "blue"}, `--track: want stable or canary, got "blue"`},
		{"load without rps", []string{"load", "--duration", "1s", "--url", "http://localhost:1/"}, `required flag(s) "rps" not set`},
		{"load rps too high", []string{"load", "--rps", "20000", "--duration", "1s", "--url", "http://localhost:1/"}, "rps: at most 10000"},
		{"load bad url", []string{"load", "--rps", "1", "--duration", "1s", "--url", "ftp://x/"}, "must start with http://"},
		{"init with two dirs", []string{"init", "a", "b"}, "accepts at most 1 arg"},
		{"negative wait", []string{"deploy", "--wait", "-1s"}, "--wait: want a duration of 0 or more, got -1s"},
		{"wait on promote", []string{"promote", "--wait", "1m"}, "unknown flag: --wait"},
		{"rollback to nothing", []string{"rollback", "--to", ""}, `--to: want "previous" or a release number, got ""`},
		{"rollback to a name", []string{"rollback", "--to", "latest"}, `--to: want "previous" or a release number, got "latest"`},
		{"rollback to zero", []string{"rollback", "--to", "0"}, `--to: want "previous" or a release number, got "0"`},
		{"rollback two services", []string{"rollback", "web", "db", "--to", "1"}, "accepts at most 1 arg"},
		{"releases two services", []string{"releases", "web", "db"}, "accepts at most 1 arg"},
		{"releases as yaml", []string{"releases", "-o", "yaml"}, `--output: want text or json, got "yaml"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The socket does not exist: a usage error must be found
			// before any daemon call.
			args := append(tc.args, "--socket", filepath.Join(t.TempDir(), "none.sock"))
			_, stderr, code := runCLI(t, args...)
			if code != exitUsage || !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, exitUsage, tc.wantStderr)
			}
		})
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	stdout, _, code := runCLI(t, "--help")
	if code != exitOK {
		t.Fatalf("--help exited %d", code)
	}
	for _, line := range []string{"0  success", "1  the operation failed, was denied by policy", "2  bad command line", "3  swiftdeployd is not running"} {
		if !strings.Contains(stdout, line) {
			t.Errorf("--help lacks %q:\n%s", line, stdout)
		}
	}
}

func TestAuditCommand(t *testing.T) {
	newProject := func(t *testing.T) (dir string) {
		t.Helper()
		dir = t.TempDir()
		writeFile(t, filepath.Join(dir, manifestFile), articleManifest)
		j, err := journal.Open(filepath.Join(dir, journalFile), journal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []journal.Record{
			journal.NewEvent(journal.EventDeploySucceeded, "converged"),
			{Type: journal.TypeSnapshot, Mode: "canary", Track: "canary", Policy: journal.PolicyFail,
				ReqPerSec: journal.Float(15), P99Latency: journal.Float(620), ErrorRate: journal.Float(0.03)},
			journal.NewEvent(journal.EventChaosInjected, "chaos slow on canary track"),
		} {
			if err := j.Append(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tamper := func(t *testing.T, dir string) {
		t.Helper()
		path := filepath.Join(dir, journalFile)
		b := readFile(t, path)
		// The first line: the last one has no successor to detect it.
		writeFile(t, path, strings.Replace(string(b), `"converged"`, `"never happened"`, 1))
	}
	tests := []struct {
		name       string
		edit       func(t *testing.T, dir string)
		out        string // --out, relative to the project; "" for the default
		wantCode   int
		wantReport []string
		wantStderr string
	}{
		{
			name:       "intact journal",
			wantCode:   exitOK,
			wantReport: []string{"## Timeline", "Chaos injected", "## Violations", "p99 latency 620ms > 500ms threshold (thresholds from the current manifest)", "xychart-beta", "**✅ Chain intact.**"},
		},
		{
			name:       "custom output file",
			out:        "reports/audit.md",
			wantCode:   exitOK,
			wantReport: []string{"## Journal integrity"},
		},
		{
			name:       "tampered journal",
			edit:       tamper,
			wantCode:   exitFailure,
			wantReport: []string{"JOURNAL INTEGRITY CHECK FAILED", "**❌ CHAIN BROKEN.**"},
			wantStderr: "journal integrity check FAILED",
		},
		{
			name:       "no journal",
			edit:       func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, journalFile)) },
			wantCode:   exitFailure,
			wantStderr: journalFile + ": swiftdeployd writes it beside the manifest once it runs",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := newProject(t)
			if tc.edit != nil {
				tc.edit(t, dir)
			}
			args := []string{"audit", "--manifest", filepath.Join(dir, manifestFile)}
			report := filepath.Join(dir, "audit_report.md")
			if tc.out != "" {
				report = filepath.Join(dir, tc.out)
				os.MkdirAll(filepath.Dir(report), 0o755)
				args = append(args, "--out", report)
			}
			stdout, stderr, code := runCLI(t, args...)
			if code != tc.wantCode || !strings.Contains(stderr, tc.wantStderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.wantCode, tc.wantStderr)
			}
			if want := "Wrote " + report + ": 3 records from "; tc.wantCode == exitOK && !strings.HasPrefix(stdout, want) {
				t.Errorf("stdout %q, want it to start with %q", stdout, want)
			}
			if len(tc.wantReport) == 0 {
				return
			}
			got := string(readFile(t, report))
			for _, w := range tc.wantReport {
				if !strings.Contains(got, w) {
					t.Errorf("report lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestAuditReadsRotatedFiles: the report covers every file of the chain,
// oldest first, not just history.jsonl.
func TestAuditReadsRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, manifestFile), articleManifest)
	j, err := journal.Open(filepath.Join(dir, journalFile), journal.Options{MaxBytes: 400})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if err := j.Append(journal.NewEvent(journal.EventChaosInjected, fmt.Sprintf("chaos number %02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "history.2.jsonl")); err != nil {
		t.Fatalf("the journal did not rotate twice: %v", err)
	}
	stdout, stderr, code := runCLI(t, "audit", "--manifest", filepath.Join(dir, manifestFile))
	if code != exitOK || !strings.Contains(stdout, ": 12 records from ") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 12 records", code, stdout, stderr)
	}
	report := string(readFile(t, filepath.Join(dir, "audit_report.md")))
	first, last := strings.Index(report, "chaos number 00"), strings.Index(report, "chaos number 11")
	if first < 0 || last < first || !strings.Contains(report, "| Chaos injected | 12 |") || !strings.Contains(report, "`history.1.jsonl`, `history.2.jsonl`") {
		t.Errorf("report does not cover the rotated files in order:\n%s", report)
	}
}

func TestLoadCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-App-Mode", "canary")
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}

	// Without --url, the target is nginx.port of the manifest on localhost.
	dir := t.TempDir()
	path := filepath.Join(dir, manifestFile)
	writeFile(t, path, strings.Replace(articleManifest, "port: 8080", "port: "+u.Port(), 1))
	stdout, stderr, code := runCLI(t, "load", "--manifest", path, "--rps", "50", "--duration", "200ms")
	if code != exitOK {
		t.Fatalf("load exited %d: %s", code, stderr)
	}
	for _, want := range []string{"http://localhost:" + u.Port() + "/", "10 of 10 planned", "Success:   10 (100.0%)", "canary  100.0% (10)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}
