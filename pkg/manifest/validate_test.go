package manifest

import (
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	yaml3 "go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// validBase is a valid manifest that the invalid cases patch.
const validBase = `
services:
  image: app:1
  port: 3000
  canary:
    image: app:2
    weight: 10
nginx:
  image: nginx:latest
  port: 8080
network:
  name: net
`

// patched deep-merges patch into validBase; a null in patch deletes the
// key, so required fields can be removed.
func patched(t *testing.T, patch string) []byte {
	t.Helper()
	var base, over map[string]any
	if err := yaml3.Unmarshal([]byte(validBase), &base); err != nil {
		t.Fatal(err)
	}
	if err := yaml3.Unmarshal([]byte(patch), &over); err != nil {
		t.Fatalf("bad patch %q: %v", patch, err)
	}
	merge(base, over)
	out, err := yaml3.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		sub, isMap := v.(map[string]any)
		dstSub, dstIsMap := dst[k].(map[string]any)
		switch {
		case v == nil:
			delete(dst, k)
		case isMap && dstIsMap:
			merge(dstSub, sub)
		default:
			dst[k] = v
		}
	}
}

// assertProblems checks that err is a *ValidationError reporting exactly
// the given fields, in order.
func assertProblems(t *testing.T, err error, wantFields ...string) []Problem {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %v, want a *ValidationError on %v", err, wantFields)
	}
	got := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		got[i] = p.Field
	}
	if !slices.Equal(got, wantFields) {
		t.Errorf("problem fields = %q, want %q\n%v", got, wantFields, err)
	}
	return ve.Problems
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name  string
		patch string
		want  []string // field paths, in report order
		msg   string   // expected in the first problem's message
	}{
		// Required fields.
		{"services.image missing", "services: {image: null}", []string{"services.image"}, "required"},
		{"services.port missing", "services: {port: null}", []string{"services.port"}, "required"},
		{"nginx.image missing", "nginx: {image: null}", []string{"nginx.image"}, "required"},
		{"nginx.port missing", "nginx: {port: null}", []string{"nginx.port"}, "required"},
		{"network.name missing", "network: null", []string{"network.name"}, "required"},
		{"canary.image missing", "services: {canary: {image: null}}", []string{"services.canary.image"}, "required"},

		// Ranges.
		{"services.port too high", "services: {port: 70000}", []string{"services.port"}, "must be 1-65535, got 70000"},
		{"services.port negative", "services: {port: -1}", []string{"services.port"}, "must be 1-65535, got -1"},
		{"nginx.port too high", "nginx: {port: 65536}", []string{"nginx.port"}, "must be 1-65535, got 65536"},
		{"replicas zero", "services: {replicas: 0}", []string{"services.replicas"}, "must be 1-50, got 0"},
		{"replicas too many", "services: {replicas: 51}", []string{"services.replicas"}, "must be 1-50, got 51"},
		{"canary weight over 100", "services: {canary: {weight: 101}}", []string{"services.canary.weight"}, "must be 0-100, got 101"},
		{"canary weight negative", "services: {canary: {weight: -5}}", []string{"services.canary.weight"}, "must be 0-100, got -5"},
		{"canary replicas zero", "services: {canary: {replicas: 0}}", []string{"services.canary.replicas"}, "must be 1-50, got 0"},
		{"canary replicas too many", "services: {canary: {replicas: 99}}", []string{"services.canary.replicas"}, "must be 1-50, got 99"},

		// Image references.
		{"image upper case", "services: {image: 'UPPER:case'}", []string{"services.image"}, "must be lowercase"},
		{"image with space", "services: {image: 'my app:1'}", []string{"services.image"}, `invalid image reference "my app:1"`},
		{"image tag only", "nginx: {image: ':tag-only'}", []string{"nginx.image"}, `invalid image reference ":tag-only"`},
		{"image bad digest", "nginx: {image: 'nginx@sha256:abc'}", []string{"nginx.image"}, "invalid"},
		{"canary image invalid", "services: {canary: {image: 'a b'}}", []string{"services.canary.image"}, "invalid image reference"},
		{"canary image same as stable", "services: {canary: {image: 'app:1'}}", []string{"services.canary.image"}, "canary image must differ from services.image"},
		{"canary image same after normalizing", "services: {image: nginx, canary: {image: 'docker.io/library/nginx:latest'}}", []string{"services.canary.image"}, "must differ"},

		// Names.
		{"project upper case", "project: Shop", []string{"project"}, `got "Shop"`},
		{"project too long", "project: " + strings.Repeat("a", 41), []string{"project"}, "at most 40"},
		{"project leading dash", "project: -shop", []string{"project"}, `got "-shop"`},
		{"network name bad character", "network: {name: 'my/net'}", []string{"network.name"}, `got "my/net"`},
		{"network name too long", "network: {name: " + strings.Repeat("n", 65) + "}", []string{"network.name"}, "at most 64"},
		{"network name predefined", "network: {name: bridge}", []string{"network.name"}, "predefined"},
		{"network driver host", "network: {driver_type: host}", []string{"network.driver_type"}, "no container DNS"},
		{"network driver none", "network: {driver_type: none}", []string{"network.driver_type"}, `got "none"`},
		{"network driver unknown", "network: {driver_type: weave}", []string{"network.driver_type"}, `must be bridge, got "weave"`},

		// nginx.bind.
		{"nginx.bind hostname", "nginx: {bind: localhost}", []string{"nginx.bind"}, `must be an IPv4 or IPv6 address such as 127.0.0.1 or ::1, got "localhost"`},
		{"nginx.bind empty", "nginx: {bind: ''}", []string{"nginx.bind"}, `got ""`},
		{"nginx.bind with port", "nginx: {bind: '127.0.0.1:8080'}", []string{"nginx.bind"}, `got "127.0.0.1:8080"`},
		{"nginx.bind bracketed IPv6", "nginx: {bind: '[::1]'}", []string{"nginx.bind"}, `got "[::1]"`},
		{"nginx.bind CIDR", "nginx: {bind: 10.0.0.0/8}", []string{"nginx.bind"}, `got "10.0.0.0/8"`},
		{"nginx.bind leading zeros", "nginx: {bind: 127.000.000.001}", []string{"nginx.bind"}, `got "127.000.000.001"`},
		{"nginx.bind zone", "nginx: {bind: 'fe80::1%eth0'}", []string{"nginx.bind"}, `must not name a zone, got "fe80::1%eth0"`},
		{"nginx.bind multicast", "nginx: {bind: 224.0.0.1}", []string{"nginx.bind"}, `multicast`},
		{"nginx.bind number", "nginx: {bind: 3}", []string{"nginx.bind"}, `got "3"`},

		// Paths that end up in nginx configuration.
		{"health_path relative", "services: {health_path: healthz}", []string{"services.health_path"}, "must start with '/'"},
		{"health_path with space", "services: {health_path: '/health z'}", []string{"services.health_path"}, "without whitespace"},
		{"health_path with semicolon", "services: {health_path: '/h;return 200'}", []string{"services.health_path"}, "without whitespace"},
		{"metrics.path with brace", "metrics: {path: '/m{}'}", []string{"metrics.path"}, `got "/m{}"`},

		// Environment.
		{"env reserved PORT", "services: {env: {PORT: '80'}}", []string{"services.env.PORT"}, "reserved"},
		{"env reserved MODE", "services: {env: {MODE: canary}}", []string{"services.env.MODE"}, "reserved"},
		{"env bad name", "services: {env: {1BAD: x}}", []string{"services.env"}, `invalid variable name "1BAD"`},
		{"env name with dash", "services: {env: {MY-VAR: x}}", []string{"services.env"}, `"MY-VAR"`},
		{"env value NUL", "services: {env: {A: \"x\\0y\"}}", []string{"services.env.A"}, "NUL"},

		// Resources.
		{"cpus negative", "services: {resources: {cpus: -0.5}}", []string{"services.resources.cpus"}, "got -0.5"},
		{"cpus too many", "services: {resources: {cpus: 65}}", []string{"services.resources.cpus"}, "must be 0-64"},
		{"memory below Docker minimum", "services: {resources: {memory: 4m}}", []string{"services.resources.memory"}, "at least 6MiB"},
		{"memory bad unit", "services: {resources: {memory: 12q}}", []string{"services.resources.memory"}, `unknown unit "q"`},
		{"memory garbage", "services: {resources: {memory: lots}}", []string{"services.resources.memory"}, `"lots"`},

		// Durations.
		{"proxy_timeout too short", "nginx: {proxy_timeout: 500ms}", []string{"nginx.proxy_timeout"}, "must be 1s-10m0s, got 500ms"},
		{"proxy_timeout too long", "nginx: {proxy_timeout: 11m}", []string{"nginx.proxy_timeout"}, "got 11m0s"},
		{"proxy_timeout fractional", "nginx: {proxy_timeout: 2.5s}", []string{"nginx.proxy_timeout"}, "whole number of seconds"},
		{"scrape_interval too long", "metrics: {scrape_interval: 6m, window: 1h}", []string{"metrics.scrape_interval"}, "must be 1s-5m0s"},
		{"scrape_interval zero", "metrics: {scrape_interval: 0s}", []string{"metrics.scrape_interval"}, "got 0s"},
		{"window shorter than two scrapes", "metrics: {scrape_interval: 10s, window: 15s}", []string{"metrics.window"}, "at least twice"},
		{"window over an hour", "metrics: {window: 2h}", []string{"metrics.window"}, "at most 1h"},

		// Policy thresholds.
		{"min_disk_gb negative", "policy: {min_disk_gb: -1}", []string{"policy.min_disk_gb"}, "got -1"},
		{"max_cpu_load zero", "policy: {max_cpu_load: 0}", []string{"policy.max_cpu_load"}, "must be > 0"},
		{"max_error_rate above one", "policy: {max_error_rate: 5}", []string{"policy.max_error_rate"}, "[0, 1]"},
		{"max_error_rate negative", "policy: {max_error_rate: -0.1}", []string{"policy.max_error_rate"}, "got -0.1"},
		{"max_p99_ms zero", "policy: {max_p99_ms: 0}", []string{"policy.max_p99_ms"}, "must be > 0"},
		{"min_requests negative", "policy: {min_requests: -1}", []string{"policy.min_requests"}, "got -1"},
		{"disk_path relative", "policy: {disk_path: var/lib/docker}", []string{"policy.disk_path"}, "absolute"},

		// Several problems are collected at once, in document order.
		{"many problems", "services: {image: null, port: 0, replicas: 100, canary: {weight: 200}}\nnginx: {port: 99999}\nnetwork: {driver_type: host}\npolicy: {max_error_rate: 2, disk_path: rel}",
			[]string{"services.image", "services.port", "services.replicas", "services.canary.weight", "nginx.port", "network.driver_type", "policy.max_error_rate", "policy.disk_path"}, "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := patched(t, tt.patch)
			_, err := Parse(doc, "proj")
			ps := assertProblems(t, err, tt.want...)
			if len(ps) > 0 && !strings.Contains(ps[0].Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", ps[0].Msg, tt.msg)
			}
		})
	}
}

// TestMetricsPath covers metrics.path, which nginx.conf routes with an
// exact location: only a safe charset, nothing nginx would normalize, and
// nothing the front door refuses, in any letter case.
func TestMetricsPath(t *testing.T) {
	tests := []struct {
		path string
		want string // "" if valid, else part of the message
	}{
		{"/metrics", ""},
		{"/metrics/", ""},
		{"/prom/metrics-v2.txt", ""},
		{"/_status/Metrics_1", ""},
		{"/", ""},
		{"/internals", ""}, // not under /internal/: only the segment is refused
		{"/debugger/metrics", ""},
		{"/chao", ""},

		{"/chaos", `"/chaos" is refused by the front door: it lies under /chaos`},
		{"/chaos/", "lies under /chaos"},
		{"/chaos/metrics", "lies under /chaos"},
		{"/chaosmonkey", "lies under /chaos"},
		{"/Chaos", `"/Chaos" is refused by the front door: it lies under /chaos (compared without regard to case)`},
		{"/CHAOS/x", "lies under /chaos"},
		{"/internal", "lies under /internal"},
		{"/internal/", "lies under /internal"},
		{"/Internal/metrics", "lies under /internal"},
		{"/debug", "lies under /debug"},
		{"/DEBUG/", "lies under /debug"},
		{"/debug/vars", "lies under /debug"},
		// Not refused unless nginx.deny_paths lists it.
		{"/admin", ""},
		{"/Administrator", ""},
		{"/swiftdeploy", "lies under /swiftdeploy"},
		{"/SwiftDeploy/config", "lies under /swiftdeploy"},

		{"/metrics$x", `got "/metrics$x" ('$' at byte 8)`},
		{"/metrics?x=1", `('?' at byte 8)`},
		{"/metrics#x", `('#' at byte 8)`},
		{"/me trics", `(' ' at byte 3)`},
		{"/m\"x", `('"' at byte 2)`},
		{"/m'x", `('\'' at byte 2)`},
		{"/m{x}", `('{' at byte 2)`},
		{"/m;x", `(';' at byte 2)`},
		{"/m%41", `('%' at byte 2)`},
		{"/m~x", `('~' at byte 2)`},
		{"/m\\x", `('\\' at byte 2)`},
		{"/métrics", `('é' at byte 2)`},
		{"/a/../metrics", `must not contain a ".." segment`},
		{"/..", `must not contain a ".." segment`},
		{"/a/./metrics", `must not contain a "." segment`},
		{"//metrics", `must not contain "//"`},
		{"/a//b", `must not contain "//"`},
		{"metrics", `must be an absolute path starting with '/', got "metrics"`},
		{"/" + strings.Repeat("m", MaxPathLen), "at most 256 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			m := mustParse(t, minimal)
			m.Metrics.Path = tt.path
			err := m.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("metrics.path %q: %v, want valid", tt.path, err)
				}
				return
			}
			ps := assertProblems(t, err, "metrics.path")
			if len(ps) == 1 && !strings.Contains(ps[0].Msg, tt.want) {
				t.Errorf("message %q does not contain %q", ps[0].Msg, tt.want)
			}
		})
	}
}

// TestValidateProblemsHaveLines checks that problems found after decoding
// are located on the line of the offending value.
func TestValidateProblemsHaveLines(t *testing.T) {
	doc := "services:\n  image: app:1\n  port: 70000\nnginx:\n  image: nginx\n  port: 8080\nnetwork:\n  name: net\n"
	_, err := Parse([]byte(doc), "proj")
	ps := assertProblems(t, err, "services.port")
	if ps[0].Line != 3 {
		t.Errorf("Line = %d, want 3", ps[0].Line)
	}
	if got, want := ps[0].String(), "services.port: must be 1-65535, got 70000 (line 3)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestValidateProgrammatic covers values YAML cannot produce but a
// manifest built in Go can.
func TestValidateProgrammatic(t *testing.T) {
	valid := func() Manifest {
		m := Defaults()
		m.Project = "p"
		m.Services.Image, m.Services.Port = "app", 3000
		m.Nginx.Image, m.Nginx.Port = "nginx", 80
		m.Network.Name = "net"
		return m
	}
	tests := []struct {
		name   string
		mutate func(*Manifest)
		want   []string
	}{
		{"valid", func(*Manifest) {}, nil},
		{"empty project", func(m *Manifest) { m.Project = "" }, []string{"project"}},
		{"NaN cpus", func(m *Manifest) { m.Services.Resources.CPUs = math.NaN() }, []string{"services.resources.cpus"}},
		{"NaN error rate", func(m *Manifest) { m.Policy.MaxErrorRate = math.NaN() }, []string{"policy.max_error_rate"}},
		{"infinite p99", func(m *Manifest) { m.Policy.MaxP99Ms = math.Inf(-1) }, []string{"policy.max_p99_ms"}},
		{"empty driver", func(m *Manifest) { m.Network.DriverType = "" }, []string{"network.driver_type"}},
		{"env key with equals", func(m *Manifest) { m.Services.Env = map[string]string{"A=B": "x"} }, []string{"services.env"}},
		// A YAML file cannot hold invalid UTF-8 (the parser refuses it).
		{"env value invalid UTF-8", func(m *Manifest) { m.Services.Env = map[string]string{"A": "x\xffy"} }, []string{"services.env.A"}},
		{"env value multi-line", func(m *Manifest) { m.Services.Env = map[string]string{"A": "x\r\ny\n"} }, nil},
		{"health path non-ASCII", func(m *Manifest) { m.Services.HealthPath = "/gesundheit✓" }, []string{"services.health_path"}},
		{"health path too long", func(m *Manifest) { m.Services.HealthPath = "/" + strings.Repeat("a", MaxPathLen) }, []string{"services.health_path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid()
			tt.mutate(&m)
			err := m.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			assertProblems(t, err, tt.want...)
		})
	}
}

// TestValidationErrorGolden pins the full report a user sees for a
// manifest with many mistakes. Run with -update to rewrite it.
func TestValidationErrorGolden(t *testing.T) {
	_, err := Parse(readTestdata(t, "many_problems.yaml"), "proj")
	if err == nil {
		t.Fatal("Parse(many_problems.yaml) succeeded")
	}
	got := err.Error() + "\n"
	golden := filepath.Join("testdata", "many_problems.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("error report differs from %s:\n got:\n%s\nwant:\n%s", golden, got, want)
	}
}
