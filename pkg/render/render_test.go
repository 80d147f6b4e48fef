package render

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/accesslog"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// goldenCases are the directories under testdata/ holding a manifest.yaml
// and the expected renderings of it.
var goldenCases = []string{"seed", "replicas3", "canary20", "bind6", "frontdoor", "proxyprotocol", "paused", "stopped", "container", "services", "services_paused", "services_canary", "services_canaries"}

// goldenTraffic is the swiftctl traffic hold in force for a golden case.
var goldenTraffic = map[string]stack.Traffic{
	"paused":  {Mode: stack.TrafficPause, Max: 45 * time.Second},
	"stopped": {Mode: stack.TrafficStop, Message: "Back at 14:00 UTC: database migration"},
	// The named form's routes held, each resuming at its own service.
	"services_paused": {Mode: stack.TrafficPause, Max: 45 * time.Second},
}

// goldenEdits change a golden case's manifest after it is parsed.
var goldenEdits = map[string]func(*manifest.Manifest){
	// A second canary, with a cookie match (written before validation
	// took several canaries; the golden output is what it renders).
	"services_canaries": func(m *manifest.Manifest) {
		m.Named["web"].Canary = &manifest.Canary{Image: "shop-web:1.5.0", Weight: 10, Replicas: 1, Match: &manifest.Match{Cookie: "web_canary", Value: "yes"}}
	},
}

// loadStack derives the stack of testdata/<name>/manifest.yaml.
func loadStack(t testing.TB, name string) stack.Stack {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name, "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := parseManifest(t, string(data))
	if edit := goldenEdits[name]; edit != nil {
		edit(m)
	}
	s := stack.FromManifest(m, stack.Options{})
	s.FrontDoor.Traffic = goldenTraffic[name]
	return s
}

func parseManifest(t testing.TB, manifestYAML string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(manifestYAML), "swiftdeploy")
	if err != nil {
		t.Fatalf("parse manifest: %v", err)
	}
	return m
}

func parseStack(t testing.TB, manifestYAML string) stack.Stack {
	t.Helper()
	return stack.FromManifest(parseManifest(t, manifestYAML), stack.Options{})
}

// largestStack is the stack with the most and longest container names a
// manifest allows: a 40-character project, 50 stable and 50 canary
// replicas, the canary taking traffic.
func largestStack(t testing.TB) stack.Stack {
	t.Helper()
	return parseStack(t, fmt.Sprintf(`
project: %s
services:
  image: "app:1"
  port: 3000
  replicas: %[2]d
  canary: {image: "app:2", weight: 50, replicas: %[2]d}
nginx: {image: "nginx:latest", port: 8080}
network: {name: big-net}
`, strings.Repeat("p", manifest.MaxProjectLen), manifest.MaxReplicas))
}

// checkGolden compares got with the golden file, or rewrites it under -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/render -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendering (run with -update if the change is intended)\n--- got ---\n%s", path, got)
	}
}

var renderers = []struct {
	name   string
	file   string
	render func(stack.Stack) ([]byte, error)
}{
	{"Nginx", "nginx.conf.golden", Nginx},
	{"Compose", "docker-compose.yml.golden", Compose},
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		for _, r := range renderers {
			t.Run(c+"/"+r.name, func(t *testing.T) {
				got, err := r.render(loadStack(t, c))
				if err != nil {
					t.Fatal(err)
				}
				checkGolden(t, filepath.Join("testdata", c, r.file), got)
			})
		}
	}
}

func TestDeterministic(t *testing.T) {
	for _, c := range goldenCases {
		for _, r := range renderers {
			t.Run(c+"/"+r.name, func(t *testing.T) {
				s := loadStack(t, c)
				first, err := r.render(s)
				if err != nil {
					t.Fatal(err)
				}
				// Map iteration order is random per range loop, so repeated
				// renders (and a rebuilt env map) would expose any
				// dependence on it.
				for range 20 {
					s := loadStack(t, c)
					for i := range s.Stable {
						s.Stable[i].Env = reinserted(s.Stable[i].Env)
					}
					got, err := r.render(s)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, first) {
						t.Fatalf("render is not deterministic:\n--- first ---\n%s\n--- later ---\n%s", first, got)
					}
				}
			})
		}
	}
}

// reinserted copies m, inserting keys in reverse sorted order.
func reinserted(m map[string]string) map[string]string {
	kv := stack.SortedEnv(m)
	out := make(map[string]string, len(m))
	for i := len(kv) - 1; i >= 0; i-- {
		k, v, _ := strings.Cut(kv[i], "=")
		out[k] = v
	}
	return out
}

func TestNginxTraffic(t *testing.T) {
	const base = `
project: shop
services:
  image: app:1
  port: 3000
  replicas: 2
%s
nginx: {image: "nginx:latest", port: 8080}
network: {name: shop-net}
`
	tests := []struct {
		name       string
		canary     string
		wantSplit  string // the split_clients line for the canary, "" for none
		wantPool   string // the proxy_pass target
		wantCanary bool   // an app_canary upstream is defined
	}{
		{"no canary", "", "", "app_stable", false},
		{"canary at weight 0", "  canary: {image: \"app:2\", weight: 0}", "", "app_stable", false},
		{"canary at 20%", "  canary: {image: \"app:2\", weight: 20}", "20% app_canary;", "$swiftdeploy_split", true},
		{"canary at 1%", "  canary: {image: \"app:2\", weight: 1}", "1% app_canary;", "$swiftdeploy_split", true},
		{"canary at 100%", "  canary: {image: \"app:2\", weight: 100}", "", "app_canary", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parseStack(t, strings.Replace(base, "%s", tt.canary, 1))
			out, err := Nginx(s)
			if err != nil {
				t.Fatal(err)
			}
			conf := string(out)
			if got := strings.Contains(conf, "split_clients"); got != (tt.wantSplit != "") {
				t.Errorf("split_clients present = %v, want %v", got, tt.wantSplit != "")
			}
			if tt.wantSplit != "" && !strings.Contains(conf, tt.wantSplit) {
				t.Errorf("missing %q", tt.wantSplit)
			}
			if n := strings.Count(conf, "proxy_pass http://"+tt.wantPool+";"); n != 2 {
				t.Errorf("proxy_pass http://%s; appears %d times, want 2 (/ and /metrics)", tt.wantPool, n)
			}
			if got := strings.Contains(conf, "upstream app_canary"); got != tt.wantCanary {
				t.Errorf("canary upstream present = %v, want %v", got, tt.wantCanary)
			}
			for _, a := range s.Stable {
				if !strings.Contains(conf, "server "+a.Addr()+" ") {
					t.Errorf("stable container %s is not in the upstream", a.Addr())
				}
			}
			for _, a := range s.Canary {
				if got := strings.Contains(conf, "server "+a.Addr()+" "); got != tt.wantCanary {
					t.Errorf("canary container %s in the upstream = %v, want %v", a.Addr(), got, tt.wantCanary)
				}
			}
		})
	}
}

func TestNginxTimeouts(t *testing.T) {
	tests := []struct {
		timeout     string
		wantConnect string
		wantRead    string
	}{
		{"30s", "proxy_connect_timeout 5s;", "proxy_read_timeout 30s;"},
		{"2s", "proxy_connect_timeout 2s;", "proxy_read_timeout 2s;"},
		{"1m30s", "proxy_connect_timeout 5s;", "proxy_read_timeout 90s;"},
	}
	for _, tt := range tests {
		t.Run(tt.timeout, func(t *testing.T) {
			s := loadStack(t, "seed")
			s.ProxyTimeout = tt.timeout
			out, err := Nginx(s)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{tt.wantConnect, tt.wantRead} {
				if !bytes.Contains(out, []byte(want)) {
					t.Errorf("missing %q", want)
				}
			}
		})
	}
}

func TestInvalidStack(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *stack.Stack)
		want   string // the field and value the error must name
	}{
		{"empty stack", func(s *stack.Stack) { *s = stack.Stack{} }, "stable: no containers"},
		{"project with space", func(s *stack.Stack) { s.Project = "my shop" }, `project: must be lowercase letters, digits, '_' or '-', got "my shop"`},
		{"network name", func(s *stack.Stack) { s.Network.Name = "bad net" }, `network.name: must be letters, digits, '_', '.' or '-', got "bad net"`},
		{"no stable replicas", func(s *stack.Stack) { s.Stable = nil }, "stable: no containers"},
		{"app port zero", func(s *stack.Stack) { s.Stable[0].Port = 0 }, "stable[0].port: must be 1-65535, got 0"},
		{"app name injects config", func(s *stack.Stack) { s.Stable[0].Name = "x;}" }, `stable[0].name: invalid container name "x;}"`},
		{"duplicate container", func(s *stack.Stack) { s.Stable = append(s.Stable, s.Stable[0]) }, "stable[1].name: container name"},
		{"image missing", func(s *stack.Stack) { s.Stable[0].Image = "" }, "stable[0].image: required"},
		{"image with newline", func(s *stack.Stack) { s.Stable[0].Image = "app\n:1" }, `stable[0].image: image reference "app\n:1"`},
		{"env key", func(s *stack.Stack) { s.Stable[0].Env = map[string]string{"A=B": "x"} }, `stable[0].env: invalid variable name "A=B"`},
		{"negative cpus", func(s *stack.Stack) { s.Stable[0].CPUs = -1 }, "stable[0].cpus: must be a positive number of CPUs, got -1"},
		{"memory", func(s *stack.Stack) { s.Stable[0].Memory = "lots" }, `stable[0].memory: invalid memory size "lots"`},
		{"weight over 100", func(s *stack.Stack) { s.CanaryWeight = 120 }, "canary_weight: must be 0-100, got 120"},
		{"weight without canary", func(s *stack.Stack) { s.CanaryWeight = 20 }, "canary_weight: is 20 but no canary containers run"},
		{"nginx port", func(s *stack.Stack) { s.Nginx.Port = 70000 }, "nginx.port: must be 1-65535, got 70000"},
		{"nginx image", func(s *stack.Stack) { s.Nginx.Image = "" }, "nginx.image: required"},
		{"nginx bind host name", func(s *stack.Stack) { s.Nginx.Bind = "localhost" }, `nginx.bind: must be an IP address, got "localhost"`},
		{"nginx bind with port", func(s *stack.Stack) { s.Nginx.Bind = "127.0.0.1:80" }, `nginx.bind: must be an IP address, got "127.0.0.1:80"`},
		{"timeout garbage", func(s *stack.Stack) { s.ProxyTimeout = "soon" }, `proxy_timeout: invalid duration "soon"`},
		{"timeout under a second", func(s *stack.Stack) { s.ProxyTimeout = "0s" }, `proxy_timeout: must be at least 1s, got "0s"`},
		{"metrics path injects config", func(s *stack.Stack) { s.MetricsPath = "/m { return 200; }" }, `metrics_path: must contain only letters, digits and / _ . -, got "/m { return 200; }"`},
		{"metrics path with query", func(s *stack.Stack) { s.MetricsPath = "/metrics?x=1" }, `metrics_path: must contain only letters, digits and / _ . -, got "/metrics?x=1"`},
		{"metrics path with variable", func(s *stack.Stack) { s.MetricsPath = "/metrics$x" }, `metrics_path: must contain only letters, digits and / _ . -, got "/metrics$x"`},
		{"metrics path under chaos", func(s *stack.Stack) { s.MetricsPath = "/chaos/metrics" }, `metrics_path: "/chaos/metrics" is refused by the front door: it lies under /chaos`},
		{"metrics path is chaos in upper case", func(s *stack.Stack) { s.MetricsPath = "/Chaos" }, `metrics_path: "/Chaos" is refused by the front door`},
		{"metrics path is internal", func(s *stack.Stack) { s.MetricsPath = "/internal" }, `metrics_path: "/internal" is refused by the front door`},
		{"metrics path is debug with slash", func(s *stack.Stack) { s.MetricsPath = "/Debug/" }, `metrics_path: "/Debug/" is refused by the front door`},
	}
	for _, tt := range tests {
		for _, r := range renderers {
			t.Run(tt.name+"/"+r.name, func(t *testing.T) {
				s := loadStack(t, "seed")
				tt.mutate(&s)
				out, err := r.render(s)
				if err == nil {
					t.Fatalf("rendered an invalid stack without error:\n%s", out)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %q\ndoes not name %q", err, tt.want)
				}
			})
		}
	}
}

func TestMemLimit(t *testing.T) {
	tests := []struct{ in, want string }{
		{"256m", "256m"},
		{"512Mi", "512m"},
		{"1g", "1g"},
		{"1024m", "1g"},
		{"1.5g", "1536m"},
		{"64k", "64k"},
		{"1000", "1000b"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := memLimit(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("memLimit(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func BenchmarkNginx(b *testing.B) {
	s := loadStack(b, "canary20")
	for b.Loop() {
		if _, err := Nginx(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompose(b *testing.B) {
	s := loadStack(b, "canary20")
	for b.Loop() {
		if _, err := Compose(s); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBlockedRuleAgrees checks that the case-insensitive regex location in
// nginx.conf refuses exactly the paths manifest.IsRefusedPath calls
// refused, the rule metrics.path and deny_paths are validated against.
func TestBlockedRuleAgrees(t *testing.T) {
	prefixes := manifest.RefusedPrefixes([]string{"/debug/", "/internal/", "/admin"})
	re := regexp.MustCompile("(?i)" + blockedRegex(prefixes))
	paths := []string{
		"/", "/chaos", "/chaos/", "/CHAOS", "/chaosmonkey", "/chao", "/x/chaos",
		"/internal", "/internal/", "/Internal/x", "/internals", "/internal.json",
		"/debug", "/debug/", "/Debug/", "/debug/x", "/debugger", "/debu",
		"/admin", "/ADMIN/users", "/administrator", "/metrics", "/healthz",
		"/swiftdeploy", "/swiftdeploy/config", "/SWIFTDEPLOY/", "/swiftdeployer",
	}
	for _, p := range paths {
		_, want := manifest.IsRefusedPath(prefixes, p)
		if got := re.MatchString(p); got != want {
			t.Errorf("%s: nginx regex refuses = %v, manifest.IsBlockedPath = %v", p, got, want)
		}
	}
}

// The access log names the revision behind the pool that routed a
// request: the map from pool to config hash carries each track's hash,
// and the canary's only while it takes traffic.
func TestNginxLogsRevisions(t *testing.T) {
	for _, c := range []struct {
		name, canary string
		want         bool
	}{
		{"no canary", "", false},
		{"canary at weight 0", `  canary: {image: "app:2", weight: 0}`, false},
		{"canary at 20%", `  canary: {image: "app:2", weight: 20}`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := parseStack(t, "project: shop\nservices:\n  image: app:1\n  port: 3000\n  replicas: 2\n"+c.canary+"\nnginx: {image: \"nginx:latest\", port: 8080}\nnetwork: {name: shop-net}\n")
			out, err := Nginx(s)
			if err != nil {
				t.Fatal(err)
			}
			conf := string(out)
			if !strings.Contains(conf, "log_format swiftdeploy '"+accesslog.Format+"';") {
				t.Errorf("log_format is not accesslog.Format")
			}
			if !strings.Contains(conf, "map $proxy_host $"+accesslog.RevisionVar+" {") {
				t.Fatalf("no revision map in:\n%s", conf)
			}
			if want := "app_stable " + s.Stable[0].Hash + ";"; !strings.Contains(conf, want) {
				t.Errorf("missing %q", want)
			}
			if len(s.Canary) > 0 {
				if got := strings.Contains(conf, "app_canary "+s.Canary[0].Hash+";"); got != c.want {
					t.Errorf("canary revision mapped = %v, want %v", got, c.want)
				}
			}
		})
	}
}
