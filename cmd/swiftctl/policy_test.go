package main

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/replay"
	"github.com/swiftdeploy/swiftdeploy/policies"
)

// replayProject is a project directory whose journal, rotated into
// several files, holds canary-safety decisions of the default policy on
// error rates of 0%, 0.2%, ... 1.8% (over 1% denied), a minute apart.
func replayProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, manifestFile), articleManifest)
	j, err := journal.Open(filepath.Join(dir, journalFile), journal.Options{MaxBytes: 1200})
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 6, 23, 55, 0, 0, time.UTC)
	for i := range 10 {
		er, req, p99, rps := float64(i)*0.002, 600.0, 80.0, 10.0
		// nginx saw what the app counted.
		d := e.CanarySafety(context.Background(), policy.CanaryInput{Mode: "canary", Requests: &req, ErrorRate: &er, P99Ms: &p99, ReqPerSec: &rps,
			ProxyRequests: &req, ProxyErrorRate: &er, ProxyP99Ms: &p99},
			policy.Thresholds{MaxErrorRate: 0.01, MaxP99Ms: 500, MinRequests: 20})
		rec := journal.NewDecision(d.Policy, d.Allowed, d.Reasons, d.Input)
		rec.Timestamp, rec.Codes = t0.Add(time.Duration(i)*time.Minute), d.Codes
		if err := j.Append(rec); err != nil {
			t.Fatal(err)
		}
		if err := j.Append(journal.Record{Type: journal.TypeEvent, Event: journal.EventCheckPassed, Timestamp: rec.Timestamp}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "history.2.jsonl")); err != nil {
		t.Fatalf("the journal did not rotate twice: %v", err)
	}
	return dir
}

// candidateDir writes the default policies with canary_safety.rego
// replaced by src.
func candidateDir(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	infra, err := policies.FS.ReadFile("infrastructure.rego")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "infrastructure.rego"), string(infra))
	if src != "" {
		writeFile(t, filepath.Join(dir, "canary_safety.rego"), src)
	}
	return dir
}

func TestPolicyReplay(t *testing.T) {
	project := replayProject(t)
	manifest := filepath.Join(project, manifestFile)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // exactly, with the project dir as DIR
		stderr string // a part of it
	}{
		{
			name: "the policies that made the decisions flip none",
			code: exitOK,
			stdout: `Replaying the decisions in DIR/history.jsonl with the embedded policies
10 decisions replayed: 0 would flip (0 ALLOWED → DENIED, 0 DENIED → ALLOWED), 0 undefined, 0 errors, 10 unchanged.
`,
		},
		{
			name: "a stricter threshold lists the decisions it would deny, across midnight and rotated files",
			args: []string{"--threshold", "max_error_rate=0.005"},
			code: exitFailure,
			stdout: `Replaying the decisions in DIR/history.jsonl with the embedded policies
2026-05-06
23:58:00 canary_safety ALLOWED → DENIED
    Error rate exceeds 0.5% threshold
    Proxy error rate exceeds 0.5% threshold
23:59:00 canary_safety ALLOWED → DENIED
    Error rate exceeds 0.5% threshold
    Proxy error rate exceeds 0.5% threshold
2026-05-07
00:00:00 canary_safety ALLOWED → DENIED
    Error rate exceeds 0.5% threshold
    Proxy error rate exceeds 0.5% threshold
10 decisions replayed: 3 would flip (3 ALLOWED → DENIED, 0 DENIED → ALLOWED), 0 undefined, 0 errors, 7 unchanged.
`,
		},
		{
			name: "a laxer candidate directory allows the denied ones and says what no longer denies",
			args: []string{"--policies", candidateDir(t, "package swiftdeploy.canary_safety\n\nallow := input.error_rate <= 0.015\n\ndeny contains \"too many errors\" if not allow\n")},
			code: exitFailure,
			stdout: `Replaying the decisions in DIR/history.jsonl with CANDIDATE
2026-05-07
00:01:00 canary_safety DENIED → ALLOWED
    was: Error rate exceeds 1% threshold
    was: Proxy error rate exceeds 1% threshold
00:02:00 canary_safety DENIED → ALLOWED
    was: Error rate exceeds 1% threshold
    was: Proxy error rate exceeds 1% threshold
10 decisions replayed: 2 would flip (0 ALLOWED → DENIED, 2 DENIED → ALLOWED), 0 undefined, 0 errors, 8 unchanged.
`,
		},
		{
			name:   "a candidate without the canary policy is undefined, not allowed",
			args:   []string{"--policies", candidateDir(t, "")},
			code:   exitFailure,
			stderr: "",
		},
		{
			name:   "policies that do not compile: exit 2 naming the file and line",
			args:   []string{"--policies", candidateDir(t, "package swiftdeploy.canary_safety\n\nallow if no_such_function(input)\n")},
			code:   exitUsage,
			stderr: "canary_safety.rego:3: rego_type_error: undefined function no_such_function",
		},
		{name: "no such policy directory", args: []string{"--policies", "/nonexistent/policies"}, code: exitUsage, stderr: "--policies: stat /nonexistent/policies"},
		{name: "no journal", args: []string{"--journal", "/nonexistent/history.jsonl"}, code: exitUsage, stderr: "--journal: no journal at /nonexistent/history.jsonl"},
		{name: "an unknown threshold", args: []string{"--threshold", "max_errors=1"}, code: exitUsage, stderr: `--threshold: threshold "max_errors": not one the policies are given`},
		{name: "a threshold without a number", args: []string{"--threshold", "max_error_rate"}, code: exitUsage, stderr: `want NAME=NUMBER`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, append([]string{"policy", "replay", "--manifest", manifest}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			if tc.stdout != "" {
				want := strings.ReplaceAll(tc.stdout, "DIR", project)
				for i, a := range tc.args {
					if a == "--policies" {
						want = strings.ReplaceAll(want, "CANDIDATE", tc.args[i+1])
					}
				}
				if stdout != want {
					t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
				}
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tc.stderr)
			}
		})
	}
}

// -o json carries every change and the counts; an undefined candidate is
// counted as undefined on every decision.
func TestPolicyReplayJSON(t *testing.T) {
	project := replayProject(t)
	stdout, stderr, code := runCLI(t, "policy", "replay", "--manifest", filepath.Join(project, manifestFile), "--policies", candidateDir(t, ""), "-o", "json")
	if code != exitFailure {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	var doc struct {
		Changes []replay.Change `json:"changes"`
		Report  replay.Report   `json:"report"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("%v in:\n%s", err, stdout)
	}
	r := doc.Report
	if len(doc.Changes) != 10 || r.Replayed != 10 || r.Undefined != 10 || r.Flips() != 0 || r.Policies["canary_safety"] != 10 {
		t.Fatalf("report %+v with %d changes: want all 10 undefined", r, len(doc.Changes))
	}
	for _, c := range doc.Changes {
		if c.To != replay.Undefined || len(c.Reasons) != 1 || c.Reasons[0] != "policy canary_safety returned no decision (undefined)" {
			t.Errorf("change %+v: want UNDEFINED with the engine's reason", c)
		}
	}
}

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/<name>, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (go test -update if intended):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// Replays of journals recorded by swiftdeployd on the real engine (the
// e2e tests TestWebhooksOnTheRealEngine and
// TestRelativeVerdictAbortsCanaryOnTheRealEngine, saved with
// SWIFTDEPLOY_E2E_SAVE_JOURNAL): a stricter threshold lists the checks it
// would have failed, a candidate without the relative verdict the
// decisions it would have let through.
func TestPolicyReplayRecordedJournals(t *testing.T) {
	// The default canary policy without its relative-verdict rules.
	src, err := policies.FS.ReadFile("canary_safety.rego")
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	cut, end := strings.Index(text, "deny contains lasting(\"relative_fail\""), strings.Index(text, "lasting(code, reason) :=")
	if cut < 0 || end < cut {
		t.Fatal("canary_safety.rego: the relative rules moved")
	}
	noRelative := candidateDir(t, text[:cut]+text[end:])
	tests := []struct {
		name, journal, golden string
		args                  []string
		code                  int
	}{
		{"a stricter min_requests fails the first checks", "webhooks.jsonl", "webhooks_min_requests_50.txt", []string{"--threshold", "min_requests=50"}, exitFailure},
		{"the policies that decided flip nothing", "webhooks.jsonl", "webhooks_unchanged.txt", nil, exitOK},
		{"without the relative verdict the 3% canary passes", "relative.jsonl", "relative_without_relative_rules.txt", []string{"--policies", noRelative}, exitFailure},
		{"a stricter error threshold changes nothing the relative verdict did not", "relative.jsonl", "relative_max_error_rate_0.005.txt", []string{"--threshold", "max_error_rate=0.005"}, exitOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			journalPath := filepath.Join("testdata", "replay", tc.journal)
			args := append([]string{"policy", "replay", "--manifest", filepath.Join(t.TempDir(), manifestFile), "--journal", journalPath}, tc.args...)
			stdout, stderr, code := runCLI(t, args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			stdout = strings.ReplaceAll(stdout, noRelative, "CANDIDATE")
			golden(t, filepath.Join("replay", tc.golden), []byte(stdout))
		})
	}
}
