package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/swiftdeploy/swiftdeploy/policies"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func ptr[T any](v T) *T { return &v }

// defaults mirrors manifest.Defaults().Policy.
var defaults = Thresholds{MinDiskGB: 10, MaxCPULoad: 2.0, MaxErrorRate: 0.01, MaxP99Ms: 500, MinRequests: 20}

func defaultEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := Default()
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	return e
}

func TestInfrastructure(t *testing.T) {
	e := defaultEngine(t)
	healthy := InfraInput{DiskPath: "/var/lib/docker", DiskFreeGB: ptr(50.0), CPULoad1: ptr(0.4), CPUCount: 2, MemAvailableBytes: ptr(uint64(1 << 30))}
	with := func(f func(*InfraInput)) InfraInput {
		in := healthy
		f(&in)
		return in
	}
	tests := []struct {
		name      string
		in        InfraInput
		t         Thresholds
		allowed   bool
		reasons   []string
		transient bool
	}{
		{name: "healthy host", in: healthy, t: defaults, allowed: true},
		{name: "low disk", in: with(func(in *InfraInput) { in.DiskFreeGB = ptr(9.5) }), t: defaults,
			reasons: []string{"Disk space below 10GB"}},
		{name: "high cpu", in: with(func(in *InfraInput) { in.CPULoad1 = ptr(4.02) }), t: defaults,
			reasons: []string{"CPU load 2.01 per core (4.02 on 2 CPUs) above 2.0"}, transient: true},
		{name: "load is judged per core", in: with(func(in *InfraInput) { in.CPULoad1, in.CPUCount = ptr(7.8), 4 }), t: defaults,
			allowed: true},
		{name: "the same load on fewer cores", in: with(func(in *InfraInput) { in.CPULoad1, in.CPUCount = ptr(7.8), 2 }), t: defaults,
			reasons: []string{"CPU load 3.9 per core (7.8 on 2 CPUs) above 2.0"}, transient: true},
		{name: "one CPU", in: with(func(in *InfraInput) { in.CPULoad1, in.CPUCount = ptr(2.5), 1 }), t: defaults,
			reasons: []string{"CPU load 2.5 per core (2.5 on 1 CPU) above 2.0"}, transient: true},
		// A lasting reason makes the whole denial lasting: waiting for the
		// load to settle would not free the disk.
		{name: "both", in: with(func(in *InfraInput) { in.DiskFreeGB, in.CPULoad1 = ptr(0.0), ptr(7.0) }), t: defaults,
			reasons: []string{"CPU load 3.5 per core (7.0 on 2 CPUs) above 2.0", "Disk space below 10GB"}},
		{name: "exactly at thresholds passes", in: with(func(in *InfraInput) { in.DiskFreeGB, in.CPULoad1 = ptr(10.0), ptr(4.0) }), t: defaults,
			allowed: true},
		{name: "custom thresholds change the message", in: with(func(in *InfraInput) { in.DiskFreeGB, in.CPULoad1 = ptr(15.0), ptr(9.0) }),
			t:       Thresholds{MinDiskGB: 20, MaxCPULoad: 4},
			reasons: []string{"CPU load 4.5 per core (9.0 on 2 CPUs) above 4.0", "Disk space below 20GB"}},
		{name: "fractional thresholds", in: with(func(in *InfraInput) { in.DiskFreeGB, in.CPULoad1 = ptr(0.2), ptr(2.0) }),
			t:       Thresholds{MinDiskGB: 0.5, MaxCPULoad: 0.75},
			reasons: []string{"CPU load 1.0 per core (2.0 on 2 CPUs) above 0.75", "Disk space below 0.5GB"}},
		{name: "custom thresholds let a busy host pass", in: with(func(in *InfraInput) { in.DiskFreeGB, in.CPULoad1 = ptr(15.0), ptr(6.0) }),
			t: Thresholds{MinDiskGB: 5, MaxCPULoad: 4}, allowed: true},
		{name: "no disk reading", in: with(func(in *InfraInput) { in.DiskFreeGB = nil }), t: defaults,
			reasons: []string{"Disk space unknown: no free-space reading for /var/lib/docker"}},
		{name: "no cpu reading", in: with(func(in *InfraInput) { in.CPULoad1 = nil }), t: defaults,
			reasons: []string{"CPU load unknown: no load average reading"}},
		{name: "no cpu count", in: with(func(in *InfraInput) { in.CPUCount = 0 }), t: defaults,
			reasons: []string{"CPU count unknown: no CPU count reading"}},
		{name: "no cpu count with a high load", in: with(func(in *InfraInput) { in.CPULoad1, in.CPUCount = ptr(50.0), 0 }), t: defaults,
			reasons: []string{"CPU count unknown: no CPU count reading"}},
		{name: "negative cpu count", in: with(func(in *InfraInput) { in.CPUCount = -2 }), t: defaults,
			reasons: []string{"CPU count unknown: -2 is not a usable CPU count"}},
		{name: "NaN reading counts as missing", in: with(func(in *InfraInput) { in.CPULoad1 = ptr(math.NaN()) }), t: defaults,
			reasons: []string{"CPU load unknown: no load average reading"}},
		{name: "infinite threshold counts as missing", in: healthy, t: Thresholds{MinDiskGB: 10, MaxCPULoad: math.Inf(1)},
			reasons: []string{"Threshold max_cpu_load is missing"}},
		{name: "no readings at all", in: InfraInput{}, t: defaults,
			reasons: []string{"CPU count unknown: no CPU count reading", "CPU load unknown: no load average reading", "Disk space unknown: no free-space reading for the deploy disk"}},
		{name: "memory is informational", in: with(func(in *InfraInput) { in.MemAvailableBytes = nil }), t: defaults, allowed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Infrastructure(context.Background(), tc.in, tc.t)
			assertDecision(t, d, Infrastructure, tc.allowed, tc.reasons)
			if d.Transient != tc.transient {
				t.Errorf("Transient = %v, want %v (reasons %q)", d.Transient, tc.transient, d.Reasons)
			}
		})
	}
}

func TestCanarySafety(t *testing.T) {
	e := defaultEngine(t)
	healthy := CanaryInput{Mode: "canary", Requests: ptr(900.0), ReqPerSec: ptr(15.0), ErrorRate: ptr(0.002), P99Ms: ptr(120.0),
		ProxyRequests: ptr(910.0), ProxyErrorRate: ptr(0.002), ProxyP99Ms: ptr(125.0)}
	with := func(f func(*CanaryInput)) CanaryInput {
		in := healthy
		f(&in)
		return in
	}
	tests := []struct {
		name    string
		in      CanaryInput
		t       Thresholds
		allowed bool
		reasons []string
	}{
		{name: "healthy canary", in: healthy, t: defaults, allowed: true},
		{name: "high error rate", in: with(func(in *CanaryInput) { in.ErrorRate = ptr(0.04) }), t: defaults,
			reasons: []string{"Error rate exceeds 1% threshold"}},
		{name: "high latency", in: with(func(in *CanaryInput) { in.P99Ms = ptr(620.0) }), t: defaults,
			reasons: []string{"P99 latency exceeds 500ms"}},
		{name: "both", in: with(func(in *CanaryInput) { in.ErrorRate, in.P99Ms = ptr(0.04), ptr(600.0) }), t: defaults,
			reasons: []string{"Error rate exceeds 1% threshold", "P99 latency exceeds 500ms"}},
		{name: "exactly at thresholds passes", in: with(func(in *CanaryInput) {
			in.Requests, in.ErrorRate, in.P99Ms = ptr(20.0), ptr(0.01), ptr(500.0)
			in.ProxyRequests, in.ProxyErrorRate, in.ProxyP99Ms = ptr(20.0), ptr(0.01), ptr(500.0)
		}), t: defaults, allowed: true},
		{name: "nginx saw errors the app did not count", in: with(func(in *CanaryInput) { in.ProxyErrorRate = ptr(0.25) }), t: defaults,
			reasons: []string{"Proxy error rate exceeds 1% threshold"}},
		{name: "nginx waited on a hung canary", in: with(func(in *CanaryInput) { in.ProxyErrorRate, in.ProxyP99Ms = ptr(0.08), ptr(1000.0) }), t: defaults,
			reasons: []string{"Proxy P99 latency exceeds 500ms", "Proxy error rate exceeds 1% threshold"}},
		{name: "a dead canary: app figures gone, nginx's 502s", in: with(func(in *CanaryInput) { in.ErrorRate, in.P99Ms, in.ProxyErrorRate = nil, nil, ptr(0.5) }), t: defaults,
			reasons: []string{"Error rate unknown: no error metrics for the canary", "P99 latency unknown: no latency metrics for the canary", "Proxy error rate exceeds 1% threshold"}},
		{name: "no access-log figures", in: with(func(in *CanaryInput) { in.ProxyRequests, in.ProxyErrorRate, in.ProxyP99Ms = nil, nil, nil }), t: defaults,
			reasons: []string{"Insufficient data: no request count from nginx for the canary", "Proxy P99 latency unknown: no access-log figures for the canary", "Proxy error rate unknown: no access-log figures for the canary"}},
		{name: "few requests through nginx", in: with(func(in *CanaryInput) { in.ProxyRequests, in.ProxyErrorRate, in.ProxyP99Ms = ptr(4.0), nil, nil }), t: defaults,
			reasons: []string{"Insufficient data: nginx routed 4 requests to the canary in window, need at least 20", "Proxy P99 latency unknown: no access-log figures for the canary", "Proxy error rate unknown: no access-log figures for the canary"}},
		{name: "just over the error threshold", in: with(func(in *CanaryInput) { in.ErrorRate = ptr(0.010001) }), t: defaults,
			reasons: []string{"Error rate exceeds 1% threshold"}},
		{name: "insufficient data", in: with(func(in *CanaryInput) { in.Requests, in.ErrorRate = ptr(3.0), ptr(0.0) }), t: defaults,
			reasons: []string{"Insufficient data: 3 requests in window, need at least 20"}},
		{name: "custom thresholds change the message", in: with(func(in *CanaryInput) { in.Requests, in.ErrorRate, in.P99Ms = ptr(40.0), ptr(0.01), ptr(300.0) }),
			t:       Thresholds{MaxErrorRate: 0.005, MaxP99Ms: 250, MinRequests: 50},
			reasons: []string{"Error rate exceeds 0.5% threshold", "Insufficient data: 40 requests in window, need at least 50", "P99 latency exceeds 250ms"}},
		{name: "zero error budget", in: with(func(in *CanaryInput) { in.ErrorRate, in.ProxyErrorRate = ptr(0.0), ptr(0.0) }),
			t: Thresholds{MaxErrorRate: 0, MaxP99Ms: 500, MinRequests: 20}, allowed: true},
		{name: "no metrics", in: CanaryInput{Mode: "canary"}, t: defaults,
			reasons: []string{
				"Error rate unknown: no error metrics for the canary",
				"Insufficient data: no request count for the canary",
				"Insufficient data: no request count from nginx for the canary",
				"P99 latency unknown: no latency metrics for the canary",
				"Proxy P99 latency unknown: no access-log figures for the canary",
				"Proxy error rate unknown: no access-log figures for the canary",
			}},
		{name: "NaN error rate counts as missing", in: with(func(in *CanaryInput) { in.ErrorRate = ptr(math.NaN()) }), t: defaults,
			reasons: []string{"Error rate unknown: no error metrics for the canary"}},
		{name: "request rate is informational", in: with(func(in *CanaryInput) { in.ReqPerSec = nil }), t: defaults, allowed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.CanarySafety(context.Background(), tc.in, tc.t)
			assertDecision(t, d, CanarySafety, tc.allowed, tc.reasons)
			if d.Transient {
				t.Errorf("a canary-safety decision is never transient: %+v", d)
			}
		})
	}
}

func assertDecision(t *testing.T, d Decision, policy string, allowed bool, reasons []string) {
	t.Helper()
	if d.Policy != policy {
		t.Errorf("Policy = %q, want %q", d.Policy, policy)
	}
	if d.Allowed != allowed || !slices.Equal(d.Reasons, reasons) {
		t.Errorf("got allowed=%v reasons=%q\nwant allowed=%v reasons=%q", d.Allowed, d.Reasons, allowed, reasons)
	}
}

// TestDecisionJSON pins the decision's JSON form, which the journal
// (history.jsonl) stores: the input must carry the thresholds, and missing
// readings must show as null.
func TestDecisionJSON(t *testing.T) {
	e := defaultEngine(t)
	tests := []struct {
		name   string
		decide func() Decision
	}{
		{"infrastructure_deny", func() Decision {
			return e.Infrastructure(context.Background(), InfraInput{DiskPath: "/var/lib/docker", DiskFreeGB: ptr(4.25), CPUCount: 2, MemAvailableBytes: ptr(uint64(123456789))}, defaults)
		}},
		{"infrastructure_transient", func() Decision {
			return e.Infrastructure(context.Background(), InfraInput{DiskPath: "/var/lib/docker", DiskFreeGB: ptr(48.5), CPULoad1: ptr(7.8), CPUCount: 2, MemAvailableBytes: ptr(uint64(123456789))}, defaults)
		}},
		{"canary_safety_deny", func() Decision {
			return e.CanarySafety(context.Background(), CanaryInput{Mode: "canary", Requests: ptr(125.0), ReqPerSec: ptr(15.0), ErrorRate: ptr(0.04), P99Ms: ptr(620.0),
				ProxyRequests: ptr(131.0), ProxyErrorRate: ptr(0.0840), ProxyP99Ms: ptr(1000.0)}, defaults)
		}},
		{"canary_safety_allow", func() Decision {
			return e.CanarySafety(context.Background(), CanaryInput{Mode: "canary", Requests: ptr(125.0), ReqPerSec: ptr(2.08), ErrorRate: ptr(0.0), P99Ms: ptr(87.5),
				ProxyRequests: ptr(126.0), ProxyErrorRate: ptr(0.0), ProxyP99Ms: ptr(90.0)}, defaults)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.MarshalIndent(tc.decide(), "", "  ")
			if err != nil {
				t.Fatalf("marshal decision: %v", err)
			}
			golden(t, filepath.Join("testdata", tc.name+".json"), append(got, '\n'))
		})
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update to accept):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// allowAll is a valid policy set that lets everything through; tests load it
// to tell which set an engine is using.
var allowAll = fstest.MapFS{
	"infrastructure.rego": {Data: []byte("package swiftdeploy.infrastructure\n\nallow := true\n")},
	"canary_safety.rego":  {Data: []byte("package swiftdeploy.canary_safety\n\nallow := true\n")},
}

func TestReloadKeepsWorkingSetOnError(t *testing.T) {
	tests := []struct {
		name     string
		fsys     fstest.MapFS
		wantErrs []string
	}{
		{
			name: "syntax error",
			fsys: fstest.MapFS{
				"canary_safety.rego":  allowAll["canary_safety.rego"],
				"infrastructure.rego": {Data: []byte("package swiftdeploy.infrastructure\n\nallow if {\n\tinput.x == == 1\n}\n")},
			},
			wantErrs: []string{"infrastructure.rego:4", "rego_parse_error"},
		},
		{
			name: "compile error",
			fsys: fstest.MapFS{
				"canary_safety.rego":  allowAll["canary_safety.rego"],
				"infrastructure.rego": {Data: []byte("package swiftdeploy.infrastructure\n\nallow if {\n\tno_such_function(input)\n}\n")},
			},
			wantErrs: []string{"infrastructure.rego:4", "undefined function no_such_function"},
		},
		{
			name: "network builtin",
			fsys: fstest.MapFS{
				"canary_safety.rego":  allowAll["canary_safety.rego"],
				"infrastructure.rego": {Data: []byte("package swiftdeploy.infrastructure\n\nallow if {\n\thttp.send({\"method\": \"GET\", \"url\": input.url}).status_code == 200\n}\n")},
			},
			wantErrs: []string{"infrastructure.rego:4", "http.send"},
		},
		{
			name: "Rego v0 syntax",
			fsys: fstest.MapFS{
				"infrastructure.rego": {Data: []byte("package swiftdeploy.infrastructure\n\ndeny[msg] { msg := \"x\" }\n")},
			},
			wantErrs: []string{"infrastructure.rego:3"},
		},
		{
			name:     "comments only",
			fsys:     fstest.MapFS{"infrastructure.rego": {Data: []byte("# nothing here\n")}},
			wantErrs: []string{"infrastructure.rego", "empty module"},
		},
		{
			name:     "no policy files",
			fsys:     fstest.MapFS{"README.md": {Data: []byte("hi")}, "x_test.rego": allowAll["infrastructure.rego"]},
			wantErrs: []string{"no .rego policy files"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := defaultEngine(t)
			err := e.Reload(tc.fsys)
			if err == nil {
				t.Fatal("Reload succeeded, want an error")
			}
			for _, want := range tc.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			// The default set still decides: a full disk is still denied.
			d := e.Infrastructure(context.Background(), InfraInput{DiskFreeGB: ptr(1.0), CPULoad1: ptr(0.1), CPUCount: 2}, defaults)
			assertDecision(t, d, Infrastructure, false, []string{"Disk space below 10GB"})
		})
	}
}

func TestReloadSwapsSet(t *testing.T) {
	e := defaultEngine(t)
	full := InfraInput{DiskFreeGB: ptr(1.0), CPULoad1: ptr(0.1), CPUCount: 2}
	if d := e.Infrastructure(context.Background(), full, defaults); d.Allowed {
		t.Fatalf("default policy allowed a full disk: %+v", d)
	}
	if err := e.Reload(allowAll); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if d := e.Infrastructure(context.Background(), full, defaults); !d.Allowed {
		t.Fatalf("reloaded allow-all policy denied: %+v", d)
	}
}

func TestNewFromDir(t *testing.T) {
	dir := t.TempDir()
	for name, f := range allowAll {
		if err := os.WriteFile(filepath.Join(dir, name), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e, err := NewFromDir(dir)
	if err != nil {
		t.Fatalf("NewFromDir: %v", err)
	}
	if d := e.CanarySafety(context.Background(), CanaryInput{}, defaults); !d.Allowed {
		t.Errorf("allow-all canary policy from %s denied: %+v", dir, d)
	}

	broken := filepath.Join(dir, "canary_safety.rego")
	if err := os.WriteFile(broken, []byte("package swiftdeploy.canary_safety\n\nallow := := true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = e.ReloadDir(dir)
	if err == nil || !strings.Contains(err.Error(), broken+":3") {
		t.Errorf("ReloadDir error = %v, want one naming %s:3", err, broken)
	}
	if _, err := NewFromDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("NewFromDir on a missing directory succeeded")
	}
}

// TestFailClosed covers the ways a policy can fail to give a decision.
func TestFailClosed(t *testing.T) {
	tests := []struct {
		name   string
		infra  string // infrastructure.rego source
		ctx    func() context.Context
		reason string
	}{
		{
			name:   "missing allow rule",
			infra:  "package swiftdeploy.infrastructure\n\ndeny contains \"x\" if false\n",
			reason: "policy infrastructure returned no decision (undefined)",
		},
		{
			name:   "allow undefined for this input",
			infra:  "package swiftdeploy.infrastructure\n\nallow if input.cpu_load < 1\n",
			reason: "policy infrastructure returned no decision (undefined)",
		},
		{
			name:   "non-boolean allow",
			infra:  "package swiftdeploy.infrastructure\n\nallow := \"yes\"\n",
			reason: `policy infrastructure returned a non-boolean allow: yes`,
		},
		{
			name:   "deny without a reason",
			infra:  "package swiftdeploy.infrastructure\n\nallow := false\n",
			reason: "policy infrastructure denied without giving a reason",
		},
		{
			name:   "reason wins over allow",
			infra:  "package swiftdeploy.infrastructure\n\nallow := true\n\ndeny contains \"disk is haunted\"\n",
			reason: "disk is haunted",
		},
		{
			name:   "conflicting rule values",
			infra:  "package swiftdeploy.infrastructure\n\nallow := true if input.cpu_load\n\nallow := false if input.cpu_load\n",
			reason: "policy evaluation failed: ",
		},
		{
			name:   "builtin error",
			infra:  "package swiftdeploy.infrastructure\n\ndefault allow := false\n\nallow if count(deny) == 0\n\ndeny contains \"big\" if to_number(input.disk_path) > 1\n",
			reason: "policy evaluation failed: ",
		},
		{
			name:   "non-boolean allow beside transient reasons",
			infra:  "package swiftdeploy.infrastructure\n\nallow := \"no\"\n\ndeny contains {\"reason\": \"busy\", \"transient\": true}\n",
			reason: `policy infrastructure returned a non-boolean allow: no`,
		},
		{
			// The input is a transient denial for the default policy.
			name:   "cancelled context",
			infra:  string(mustRead(t, "infrastructure.rego")),
			ctx:    cancelled,
			reason: "policy evaluation failed: ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(fstest.MapFS{"infrastructure.rego": {Data: []byte(tc.infra)}})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			d := e.Infrastructure(ctx, InfraInput{DiskPath: "/x", DiskFreeGB: ptr(50.0), CPULoad1: ptr(5.0), CPUCount: 2}, defaults)
			if d.Allowed || len(d.Reasons) != 1 || !strings.HasPrefix(d.Reasons[0], tc.reason) {
				t.Errorf("got allowed=%v reasons=%q, want a denial with reason starting %q", d.Allowed, d.Reasons, tc.reason)
			}
			// A policy that cannot be evaluated says nothing about the
			// host: waiting would not make it decide.
			if d.Transient {
				t.Errorf("a failed evaluation is transient: %+v", d)
			}
			if d.Input["thresholds"] == nil {
				t.Errorf("a failed decision lost its input: %+v", d.Input)
			}
		})
	}
}

// TestDenyEntries covers the shapes a deny entry may take: a string (a
// lasting reason without a code, as older custom policies write them) or an
// object {reason, code, transient}. A malformed entry denies, says why and
// is never transient.
func TestDenyEntries(t *testing.T) {
	const head = "package swiftdeploy.infrastructure\n\nallow := count(deny) == 0\n\n"
	tests := []struct {
		name      string
		deny      string // the deny rules
		reasons   []string
		codes     []string
		transient bool
	}{
		{name: "string", deny: `deny contains "busy"`,
			reasons: []string{"busy"}},
		{name: "transient object", deny: `deny contains {"reason": "busy", "code": "load", "transient": true}`,
			reasons: []string{"busy"}, codes: []string{"load"}, transient: true},
		{name: "lasting object", deny: `deny contains {"reason": "full", "code": "disk", "transient": false}`,
			reasons: []string{"full"}, codes: []string{"disk"}},
		{name: "object without code or transient", deny: `deny contains {"reason": "full"}`,
			reasons: []string{"full"}},
		{name: "every reason transient", deny: "deny contains {\"reason\": \"b\", \"code\": \"x\", \"transient\": true}\ndeny contains {\"reason\": \"a\", \"transient\": true}",
			reasons: []string{"a", "b"}, codes: []string{"", "x"}, transient: true},
		{name: "one lasting reason makes it lasting", deny: "deny contains {\"reason\": \"busy\", \"code\": \"load\", \"transient\": true}\ndeny contains \"disk full\"",
			reasons: []string{"busy", "disk full"}, codes: []string{"load", ""}},
		{name: "transient not a boolean", deny: `deny contains {"reason": "busy", "transient": "yes"}`,
			reasons: []string{"busy", `policy infrastructure: deny entry "busy": transient must be a boolean, got "yes"`}},
		{name: "code not a string", deny: `deny contains {"reason": "busy", "code": 7, "transient": true}`,
			reasons: []string{"busy", `policy infrastructure: deny entry "busy": code must be a string, got 7`}},
		{name: "unknown key", deny: `deny contains {"reason": "busy", "transiant": true}`,
			reasons: []string{"busy", `policy infrastructure: deny entry "busy": unknown key "transiant" (want reason, code, transient)`}},
		{name: "no reason", deny: `deny contains {"code": "load", "transient": true}`,
			reasons: []string{`policy infrastructure returned a deny entry without a reason: {"code":"load","transient":true}`}},
		{name: "empty reason", deny: `deny contains ""`,
			reasons: []string{`policy infrastructure returned a deny entry without a reason: ""`}},
		{name: "neither string nor object", deny: `deny contains 42`,
			reasons: []string{"policy infrastructure returned a deny entry that is neither a string nor an object: 42"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(fstest.MapFS{"infrastructure.rego": {Data: []byte(head + tc.deny + "\n")}})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			d := e.Infrastructure(context.Background(), InfraInput{}, defaults)
			assertDecision(t, d, Infrastructure, false, tc.reasons)
			if !slices.Equal(d.Codes, tc.codes) || d.Transient != tc.transient {
				t.Errorf("codes %q, transient %v; want %q, %v", d.Codes, d.Transient, tc.codes, tc.transient)
			}
		})
	}
}

// TestDefaultCodes pins the codes the default policies give: they are what
// tells one denial from the next when the figures in the reasons change.
func TestDefaultCodes(t *testing.T) {
	e := defaultEngine(t)
	busy := InfraInput{DiskPath: "/d", DiskFreeGB: ptr(1.0), CPULoad1: ptr(7.8), CPUCount: 2}
	d := e.Infrastructure(context.Background(), busy, defaults)
	if want := []string{"cpu_load_high", "disk_low"}; !slices.Equal(d.Codes, want) {
		t.Errorf("infrastructure codes %q for reasons %q, want %q", d.Codes, d.Reasons, want)
	}
	c := e.CanarySafety(context.Background(), CanaryInput{Requests: ptr(3.0), ErrorRate: ptr(0.5), P99Ms: ptr(900.0),
		ProxyRequests: ptr(3.0), ProxyErrorRate: ptr(0.5), ProxyP99Ms: ptr(900.0)}, defaults)
	if want := []string{"error_rate_high", "requests_low", "proxy_requests_low", "p99_latency_high", "proxy_p99_latency_high", "proxy_error_rate_high"}; !slices.Equal(c.Codes, want) {
		t.Errorf("canary codes %q for reasons %q, want %q", c.Codes, c.Reasons, want)
	}
}

func TestMissingPolicyPackageDenies(t *testing.T) {
	e, err := New(fstest.MapFS{"infrastructure.rego": allowAll["infrastructure.rego"]})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	d := e.CanarySafety(context.Background(), CanaryInput{}, defaults)
	assertDecision(t, d, CanarySafety, false, []string{"policy canary_safety returned no decision (undefined)"})
}

func TestZeroEngineDenies(t *testing.T) {
	var e Engine
	d := e.Infrastructure(context.Background(), InfraInput{}, defaults)
	assertDecision(t, d, Infrastructure, false, []string{"policy infrastructure: no policies loaded"})
}

// TestConcurrentEval evaluates from many goroutines while the set is being
// reloaded; run with -race. Each decision must come whole from one set.
func TestConcurrentEval(t *testing.T) {
	e := defaultEngine(t)
	full := InfraInput{DiskFreeGB: ptr(1.0), CPULoad1: ptr(0.1), CPUCount: 2}
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for g := range 8 {
		wg.Go(func() {
			for range 50 {
				d := e.Infrastructure(context.Background(), full, defaults)
				// Default set: denied for disk. Allow-all set: allowed.
				if d.Allowed == slices.Contains(d.Reasons, "Disk space below 10GB") {
					errs <- strings.Join(d.Reasons, "; ")
					return
				}
				c := e.CanarySafety(context.Background(), CanaryInput{Requests: ptr(float64(g))}, defaults)
				if !c.Allowed && len(c.Reasons) == 0 {
					errs <- "canary denied without reasons"
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			var fsys fs.FS = allowAll
			if i%2 == 1 {
				fsys = policies.FS
			}
			if err := e.Reload(fsys); err != nil {
				errs <- err.Error()
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Errorf("inconsistent decision under concurrent reload: %s", msg)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "policies", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func BenchmarkInfrastructureDecision(b *testing.B) {
	e := defaultEngine(b)
	in := InfraInput{DiskPath: "/var/lib/docker", DiskFreeGB: ptr(8.0), CPULoad1: ptr(5.0), CPUCount: 2, MemAvailableBytes: ptr(uint64(1 << 30))}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Infrastructure(ctx, in, defaults); len(d.Reasons) != 2 {
			b.Fatalf("unexpected decision %+v", d)
		}
	}
}

func BenchmarkCanaryDecision(b *testing.B) {
	e := defaultEngine(b)
	in := CanaryInput{Mode: "canary", Requests: ptr(125.0), ReqPerSec: ptr(15.0), ErrorRate: ptr(0.04), P99Ms: ptr(620.0),
		ProxyRequests: ptr(125.0), ProxyErrorRate: ptr(0.0), ProxyP99Ms: ptr(90.0)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if d := e.CanarySafety(ctx, in, defaults); len(d.Reasons) != 2 {
			b.Fatalf("unexpected decision %+v", d)
		}
	}
}

func BenchmarkCanaryDecisionParallel(b *testing.B) {
	e := defaultEngine(b)
	in := CanaryInput{Mode: "canary", Requests: ptr(125.0), ReqPerSec: ptr(15.0), ErrorRate: ptr(0.002), P99Ms: ptr(120.0),
		ProxyRequests: ptr(125.0), ProxyErrorRate: ptr(0.0), ProxyP99Ms: ptr(90.0)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if d := e.CanarySafety(ctx, in, defaults); !d.Allowed {
				b.Fatalf("unexpected decision %+v", d)
			}
		}
	})
}

// The Kubernetes target has no proxy view: with ProxyView false the
// healthy app figures alone allow; left unset, the same input is denied
// for the missing proxy figures.
func TestCanarySafetyWithoutAProxyView(t *testing.T) {
	e := defaultEngine(t)
	req, er, p99 := 500.0, 0.001, 80.0
	in := CanaryInput{Mode: "canary", Requests: &req, ErrorRate: &er, P99Ms: &p99}
	th := Thresholds{MaxErrorRate: 0.01, MaxP99Ms: 500, MinRequests: 20}
	if d := e.CanarySafety(context.Background(), in, th); d.Allowed {
		t.Fatalf("no proxy figures and no word on the view: allowed, want denied")
	}
	no := false
	in.ProxyView = &no
	d := e.CanarySafety(context.Background(), in, th)
	if !d.Allowed || d.Input["proxy_view"] != false {
		t.Errorf("ProxyView false: allowed=%v reasons=%v input=%v, want allowed on the app's figures", d.Allowed, d.Reasons, d.Input["proxy_view"])
	}
}
