package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustParse(t *testing.T, doc string) *Manifest {
	t.Helper()
	m, err := Parse([]byte(doc), "proj")
	if err != nil {
		t.Fatalf("Parse: %v\ndocument:\n%s", err, doc)
	}
	return m
}

// TestParseArticleManifest checks that the manifest from the article that
// started the product loads unchanged and gets every default.
func TestParseArticleManifest(t *testing.T) {
	m, err := Parse(readTestdata(t, "article.yaml"), "SwiftDeploy")
	if err != nil {
		t.Fatal(err)
	}
	want := &Manifest{
		Project: "swiftdeploy",
		Services: Services{
			Image:      "swift-deploy-1-node:latest",
			Port:       3000,
			Replicas:   1,
			HealthPath: "/healthz",
		},
		// The front door's documented defaults (docs/manifest.md): the
		// seed's manifest keeps /debug/ and /internal/ refused.
		Nginx: Nginx{
			Image:             "nginx:latest",
			Port:              8080,
			Bind:              "0.0.0.0",
			ProxyTimeout:      Duration(30 * time.Second),
			ClientMaxBodySize: "100m",
			RequestBuffering:  true,
			ResponseBuffering: true,
			DrainTimeout:      Duration(30 * time.Second),
			DenyPaths:         []string{"/debug/", "/internal/"},
			StickyCookie:      "swiftdeploy_client",
		},
		Network: Network{Name: "swiftdeploy-net", DriverType: "bridge"},
		Metrics: Metrics{
			Path:           "/metrics",
			ScrapeInterval: Duration(5 * time.Second),
			Window:         Duration(time.Minute),
		},
		Policy: Policy{
			MinDiskGB:    10,
			MaxCPULoad:   2,
			MaxErrorRate: 0.01,
			MaxP99Ms:     500,
			MinRequests:  20,
			DiskPath:     "/var/lib/docker",
		},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("Parse(article.yaml):\n got %+v\nwant %+v", m, want)
	}
}

func TestParseFullManifest(t *testing.T) {
	m, err := Parse(readTestdata(t, "full.yaml"), "ignored")
	if err != nil {
		t.Fatal(err)
	}
	want := &Manifest{
		Project: "shop",
		Services: Services{
			Image:      "shop-api:1.4.2",
			Port:       3000,
			Replicas:   3,
			HealthPath: "/healthz",
			// WORKERS is a YAML number and arrives as its text.
			Env:       map[string]string{"LOG_LEVEL": "info", "WORKERS": "4"},
			Resources: Resources{CPUs: 0.5, Memory: "256m"},
			Canary:    &Canary{Image: "shop-api:1.5.0-rc1", Weight: 10, Replicas: 1},
		},
		Nginx: Nginx{Image: "nginx:1.27-alpine", Port: 8080, Bind: "127.0.0.1", ProxyTimeout: Duration(15 * time.Second),
			ClientMaxBodySize: "100m", RequestBuffering: true, ResponseBuffering: true, DrainTimeout: Duration(30 * time.Second),
			DenyPaths: []string{"/debug/", "/internal/"}, StickyCookie: "swiftdeploy_client"},
		Network: Network{Name: "shop-net", DriverType: "bridge"},
		Metrics: Metrics{Path: "/metrics", ScrapeInterval: Duration(5 * time.Second), Window: Duration(2 * time.Minute)},
		Policy: Policy{
			MinDiskGB: 10, MaxCPULoad: 2, MaxErrorRate: 0.01, MaxP99Ms: 500, MinRequests: 20,
			DiskPath: "/var/lib/docker",
		},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("Parse(full.yaml):\n got %+v\nwant %+v", m, want)
	}
}

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// TestDocsExamplesParse keeps the examples in docs/manifest.md valid:
// every yaml block there must be a complete, valid manifest.
func TestDocsExamplesParse(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "manifest.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := yamlBlock.FindAllSubmatch(doc, -1)
	if len(blocks) < 2 {
		t.Fatalf("docs/manifest.md has %d yaml examples, want at least 2", len(blocks))
	}
	for _, b := range blocks {
		if _, err := Parse(b[1], "docs"); err != nil {
			t.Errorf("docs example does not parse: %v\n%s", err, b[1])
		}
	}
}

const minimal = `
services: {image: app:1, port: 3000}
nginx: {image: nginx:latest, port: 8080}
network: {name: net}
`

// withCanary returns the minimal manifest with a services.canary block.
func withCanary(canary string) string {
	return strings.Replace(minimal, "port: 3000}", "port: 3000, canary: "+canary+"}", 1)
}

// TestExplicitZerosHonoured checks that a zero written in the manifest
// replaces the default, while an absent field keeps it.
func TestExplicitZerosHonoured(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		get  func(*Manifest) any
		want any
	}{
		{"max_error_rate absent", minimal, func(m *Manifest) any { return m.Policy.MaxErrorRate }, 0.01},
		{"max_error_rate zero", minimal + "policy: {max_error_rate: 0}", func(m *Manifest) any { return m.Policy.MaxErrorRate }, 0.0},
		{"min_disk_gb zero", minimal + "policy: {min_disk_gb: 0}", func(m *Manifest) any { return m.Policy.MinDiskGB }, 0.0},
		{"min_requests zero", minimal + "policy: {min_requests: 0}", func(m *Manifest) any { return m.Policy.MinRequests }, 0},
		{"null keeps default", minimal + "policy: {max_p99_ms: null}", func(m *Manifest) any { return m.Policy.MaxP99Ms }, 500.0},
		{"empty policy keeps defaults", minimal + "policy:", func(m *Manifest) any { return m.Policy.MinRequests }, 20},
		{"canary weight zero", withCanary("{image: app:2, weight: 0}"), func(m *Manifest) any { return m.Services.Canary.Weight }, 0},
		{"canary replicas absent", withCanary("{image: app:2, weight: 5}"), func(m *Manifest) any { return m.Services.Canary.Replicas }, 1},
		{"canary replicas set", withCanary("{image: app:2, replicas: 3}"), func(m *Manifest) any { return m.Services.Canary.Replicas }, 3},
		{"no canary block", minimal, func(m *Manifest) any { return m.Services.Canary == nil }, true},
		{"nginx.bind absent", minimal, func(m *Manifest) any { return m.Nginx.Bind }, "0.0.0.0"},
		{"nginx.bind null", strings.Replace(minimal, "port: 8080}", "port: 8080, bind: null}", 1), func(m *Manifest) any { return m.Nginx.Bind }, "0.0.0.0"},
		{"nginx.bind loopback", strings.Replace(minimal, "port: 8080}", "port: 8080, bind: 127.0.0.1}", 1), func(m *Manifest) any { return m.Nginx.Bind }, "127.0.0.1"},
		{"nginx.bind IPv6", strings.Replace(minimal, "port: 8080}", "port: 8080, bind: '::1'}", 1), func(m *Manifest) any { return m.Nginx.Bind }, "::1"},
		{"nginx.bind IPv6 any", strings.Replace(minimal, "port: 8080}", "port: 8080, bind: '::'}", 1), func(m *Manifest) any { return m.Nginx.Bind }, "::"},
		{"duration as seconds", strings.Replace(minimal, "port: 8080}", "port: 8080, proxy_timeout: 45}", 1),
			func(m *Manifest) any { return m.Nginx.ProxyTimeout.D() }, 45 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, tt.doc)
			if got := tt.get(m); got != tt.want {
				t.Errorf("got %v (%T), want %v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	article := readTestdata(t, "article.yaml")
	tests := []struct {
		name        string
		dir         string
		content     []byte
		wantProject string
	}{
		{"directory name becomes project", "shop", article, "shop"},
		{"directory name is sanitized", "My App.v2", article, "myappv2"},
		{"unusable directory name falls back", "__", article, "swiftdeploy"},
		{"explicit project wins", "other", append([]byte("project: named\n"), article...), "named"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tt.dir)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "manifest.yaml")
			if err := os.WriteFile(path, tt.content, 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if m.Project != tt.wantProject {
				t.Errorf("Project = %q, want %q", m.Project, tt.wantProject)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxSize)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "absent.yaml"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Load(absent) = %v, want an error wrapping os.ErrNotExist", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		if _, err := Load(dir); err == nil {
			t.Error("Load(directory) succeeded")
		}
	})
	t.Run("larger than MaxSize", func(t *testing.T) {
		_, err := Load(big)
		assertProblems(t, err, FileField)
	})
}

func TestSanitizeProject(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"shop", "shop"},
		{"My Shop", "myshop"},
		{"swift_deploy-2", "swift_deploy-2"},
		{"--leading", "leading"},
		{"__x", "x"},
		{"app.v2", "appv2"},
		{"", "swiftdeploy"},
		{"!!!", "swiftdeploy"},
		{"Ünïcode", "ncode"},
		{strings.Repeat("a", 50), strings.Repeat("a", 40)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := SanitizeProject(tt.in)
			if got != tt.want {
				t.Errorf("SanitizeProject(%q) = %q, want %q", tt.in, got, tt.want)
			}
			// Whatever comes in, the result must pass validation.
			var ps problemList
			if ps.project(got); len(ps) > 0 {
				t.Errorf("SanitizeProject(%q) = %q, which is invalid: %v", tt.in, got, ps)
			}
		})
	}
}

func TestDurationUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    time.Duration
		wantErr string
	}{
		{"string", `"5s"`, 5 * time.Second, ""},
		{"compound string", `"1m30s"`, 90 * time.Second, ""},
		{"whole seconds", `5`, 5 * time.Second, ""},
		{"fractional seconds", `1.5`, 1500 * time.Millisecond, ""},
		{"bogus string", `"bogus"`, 0, `invalid duration "bogus"`},
		{"unitless string", `"5"`, 0, `invalid duration "5"`},
		{"boolean", `true`, 0, "duration must be"},
		{"object", `{}`, 0, "duration must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tt.json), &d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unmarshal(%s) error = %v, want it to contain %q", tt.json, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.D() != tt.want {
				t.Errorf("Unmarshal(%s) = %v, want %v", tt.json, d.D(), tt.want)
			}
			// The string form must read back to the same value.
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			var back Duration
			if err := json.Unmarshal(b, &back); err != nil || back != d {
				t.Errorf("round trip %s -> %s -> %v (%v)", tt.json, b, back.D(), err)
			}
		})
	}
}

func TestHashTracksContent(t *testing.T) {
	a, b := mustParse(t, minimal), mustParse(t, minimal)
	if a.Hash() != b.Hash() {
		t.Errorf("equal manifests hash differently: %s vs %s", a.Hash(), b.Hash())
	}
	b.Services.Env = map[string]string{"A": "1"}
	if a.Hash() == b.Hash() {
		t.Error("changing services.env did not change the hash")
	}
}

func BenchmarkParseArticle(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "article.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseFull(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestYAMLRoundTrip checks that YAML writes text that parses back to the
// same manifest, env values that YAML could misread included.
func TestYAMLRoundTrip(t *testing.T) {
	tricky := map[string]string{
		"FLOAT": "1.10", "HEX": "0x1F", "ON": "on", "YES": "yes", "OCTAL": "010", "EXP": "1e3",
		"DOT": ".5", "TILDE": "~", "NULL": "null", "EMPTY": "", "TIME": "2001-12-14 21:59:43.10 -5",
		"SEXAGESIMAL": "1:20", "MULTI": "line one\n  indented\nline three\n", "CRLF": "a\r\nb",
		"PADDED": "  both ends  ", "TRAILING_NL": "x\n\n", "QUOTES": `"double" and 'single'`,
		"COMMENT": "a #b", "FLOW": "{[a, b]}", "ANCHOR": "&a *b", "DOLLAR": "${HOME}", "TAB": "\tx\t",
		"UNICODE": "héllo ☃ \u2028 \ufeff", "CONTROL": "\x1b[0m", "LONG": strings.Repeat("word ", 40),
		"INDICATORS": "- x", "QMARK": "? x", "COLON": ": x", "AT": "@x", "BACKTICK": "`x", "PERCENT": "%x",
		"BANG": "!x", "STAR": "*x", "PIPE": "|", "GT": ">", "SPACE": " ", "DOCSTART": "---", "DOCEND": "...",
		"LEADING_NL": "\nx", "ONLY_NL": "\n", "BACKSLASH": `C:\dir\n`, "LS_PS": "a\u2028b\u2029c",
		// Characters YAML 1.1 reads as line breaks (NEL) or refuses to read
		// raw (DEL, C1 controls, U+FFFE, U+FFFF).
		"NEL": "a\u0085b", "NEL_END": "x\u0085", "DEL": "a\x7fb", "C1": "a\u0080b\u009fc", "NONCHAR": "a\ufffeb\uffffc",
	}
	tests := []struct {
		name string
		m    func(t *testing.T) *Manifest
	}{
		{"article", func(t *testing.T) *Manifest { return mustParse(t, string(readTestdata(t, "article.yaml"))) }},
		{"full", func(t *testing.T) *Manifest { return mustParse(t, string(readTestdata(t, "full.yaml"))) }},
		{"tricky env", func(t *testing.T) *Manifest {
			m := mustParse(t, minimal+"policy: {max_error_rate: 0, max_p99_ms: 1e21}")
			m.Services.Env = tricky
			return m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.m(t)
			out, err := m.YAML()
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(out, "other")
			if err != nil {
				t.Fatalf("Parse(YAML()): %v\n%s", err, out)
			}
			if !reflect.DeepEqual(back, m) {
				t.Errorf("Parse(YAML()) differs:\n got %+v\nwant %+v\ntext:\n%s", back, m, out)
			}
		})
	}
	t.Run("invalid manifest", func(t *testing.T) {
		m := mustParse(t, minimal)
		m.Services.Port = 0
		if out, err := m.YAML(); err == nil || !strings.Contains(err.Error(), "services.port") {
			t.Errorf("YAML() of an invalid manifest = %q, %v; want an error naming services.port", out, err)
		}
	})
}
