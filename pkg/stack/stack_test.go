package stack

import (
	"reflect"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

func baseManifest(mutate func(*manifest.Manifest)) *manifest.Manifest {
	m := manifest.Defaults()
	m.Project = "demo"
	m.Services.Image = "app:1"
	m.Services.Port = 3000
	m.Nginx.Image = "nginx:latest"
	m.Nginx.Port = 8080
	m.Network.Name = "demo-net"
	if mutate != nil {
		mutate(&m)
	}
	return &m
}

func withCanary(image string, weight int) func(*manifest.Manifest) {
	return func(m *manifest.Manifest) {
		m.Services.Canary = &manifest.Canary{Image: image, Weight: weight, Replicas: 1}
	}
}

func TestFromManifest(t *testing.T) {
	tests := []struct {
		name       string
		m          *manifest.Manifest
		o          Options
		stable     string // image of the stable track
		canary     string // image of the canary track, "" for none
		weight     int
		images     []string
		stableRepl int
	}{
		{name: "stable only", m: baseManifest(nil), stable: "app:1", images: []string{"nginx:latest", "app:1"}, stableRepl: 1},
		{name: "canary", m: baseManifest(withCanary("app:2", 20)), stable: "app:1", canary: "app:2", weight: 20, images: []string{"nginx:latest", "app:1", "app:2"}, stableRepl: 1},
		{name: "promoted canary runs as stable, no canary", m: baseManifest(withCanary("app:2", 20)), o: Options{StableImage: "app:2"}, stable: "app:2", images: []string{"nginx:latest", "app:2"}, stableRepl: 1},
		{name: "rolled back canary is suppressed", m: baseManifest(withCanary("app:2", 20)), o: Options{NoCanary: true}, stable: "app:1", images: []string{"nginx:latest", "app:1"}, stableRepl: 1},
		{name: "replicas", m: baseManifest(func(m *manifest.Manifest) { m.Services.Replicas = 3 }), stable: "app:1", images: []string{"nginx:latest", "app:1"}, stableRepl: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := FromManifest(tc.m, tc.o)
			if len(s.Stable) != tc.stableRepl || s.Stable[0].Image != tc.stable {
				t.Errorf("stable = %d × %s, want %d × %s", len(s.Stable), s.Stable[0].Image, tc.stableRepl, tc.stable)
			}
			gotCanary := ""
			if len(s.Canary) > 0 {
				gotCanary = s.Canary[0].Image
			}
			if gotCanary != tc.canary || s.CanaryWeight != tc.weight {
				t.Errorf("canary = %q at %d%%, want %q at %d%%", gotCanary, s.CanaryWeight, tc.canary, tc.weight)
			}
			if !reflect.DeepEqual(s.Images(), tc.images) {
				t.Errorf("Images() = %v, want %v", s.Images(), tc.images)
			}
			for i, a := range s.Apps() {
				if a.Env["MODE"] != a.Track || a.Env["PORT"] != "3000" {
					t.Errorf("app %d env %v", i, a.Env)
				}
				if !strings.HasPrefix(a.Name, "demo-"+a.Track+"-"+a.Hash[:8]+"-") {
					t.Errorf("app name %q does not carry project, track and hash", a.Name)
				}
			}
		})
	}
}

// The config hash decides replacement: replicas are left out, everything
// that needs a new container is in.
func TestHashCoversSpecNotReplicas(t *testing.T) {
	base := FromManifest(baseManifest(nil), Options{}).Stable[0].Hash
	same := []func(*manifest.Manifest){
		func(m *manifest.Manifest) { m.Services.Replicas = 5 },
		func(m *manifest.Manifest) { m.Nginx.Port = 9090 },
	}
	differ := []func(*manifest.Manifest){
		func(m *manifest.Manifest) { m.Services.Image = "app:2" },
		func(m *manifest.Manifest) { m.Services.Port = 4000 },
		func(m *manifest.Manifest) { m.Services.Env = map[string]string{"A": "1"} },
		func(m *manifest.Manifest) { m.Services.Resources.Memory = "256m" },
		func(m *manifest.Manifest) { m.Services.HealthPath = "/ready" },
	}
	for i, f := range same {
		if h := FromManifest(baseManifest(f), Options{}).Stable[0].Hash; h != base {
			t.Errorf("same[%d] changed the hash", i)
		}
	}
	for i, f := range differ {
		if h := FromManifest(baseManifest(f), Options{}).Stable[0].Hash; h == base {
			t.Errorf("differ[%d] kept the hash", i)
		}
	}
	a := FromManifest(baseManifest(nil), Options{})
	b := FromManifest(baseManifest(func(m *manifest.Manifest) { m.Nginx.Port = 9090 }), Options{})
	if a.Nginx.Hash == b.Nginx.Hash {
		t.Error("an nginx port change kept the nginx hash")
	}
}

// TestEnvKeepsManifestText checks that an env value reaches the containers
// exactly as written in manifest.yaml: YAML would read many of these as
// numbers, booleans, nulls or timestamps and print them back differently.
func TestEnvKeepsManifestText(t *testing.T) {
	tests := []struct {
		name string
		yaml string // the value as written after "V: "
		want string
	}{
		{"trailing zero", "1.10", "1.10"},
		{"hex", "0x1F", "0x1F"},
		{"YAML 1.1 boolean", "on", "on"},
		{"yes", "yes", "yes"},
		{"upper-case boolean", "TRUE", "TRUE"},
		{"leading zero", "010", "010"},
		{"exponent", "1e3", "1e3"},
		{"leading dot", ".5", ".5"},
		{"sexagesimal", "1:20", "1:20"},
		{"timestamp", "2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"},
		{"date", "2024-01-02", "2024-01-02"},
		{"infinity", ".inf", ".inf"},
		{"plus sign", "+12", "+12"},
		{"double quoted", `"quoted"`, "quoted"},
		{"single quoted", `'single'`, "single"},
		{"quoted null word", `"null"`, "null"},
		{"quoted empty", `""`, ""},
		{"double-quoted escapes", `"tab\there"`, "tab\there"},
		{"literal block", "|\n      line one\n        indented\n      line three", "line one\n  indented\nline three\n"},
		{"folded block, stripped", ">-\n      folded\n      text", "folded text"},
		{"str tag", "!!str 010", "010"},
		{"non-specific tag", "! 1.10", "1.10"},
		{"anchored", "&v 0x1F", "0x1F"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := "project: demo\nservices:\n  image: app:1\n  port: 3000\n  env:\n    V: " + tt.yaml + "\n" +
				"nginx: {image: nginx, port: 8080}\nnetwork: {name: net}\n"
			m, err := manifest.Parse([]byte(doc), "demo")
			if err != nil {
				t.Fatalf("Parse: %v\n%s", err, doc)
			}
			for _, a := range FromManifest(m, Options{}).Apps() {
				if got := a.Env["V"]; got != tt.want {
					t.Errorf("%s: Env[V] = %q, want %q (written %s)", a.Name, got, tt.want, tt.yaml)
				}
			}
		})
	}
}

func TestNginxBind(t *testing.T) {
	// What Nginx.Hash digested before nginx.bind existed: a default bind
	// must keep it, or upgrading would replace every running nginx.
	legacy := hash(struct {
		Image string
		Port  int
	}{"nginx:latest", 8080})
	def := FromManifest(baseManifest(nil), Options{}).Nginx
	tests := []struct {
		name     string
		bind     string
		wantBind string
		sameHash bool // as the default bind's
	}{
		{"default", manifest.DefaultNginxBind, "0.0.0.0", true},
		{"loopback", "127.0.0.1", "127.0.0.1", false},
		{"IPv6 loopback", "::1", "::1", false},
		{"IPv6 written long", "0:0:0:0:0:0:0:1", "::1", false},
		{"IPv6 any", "::", "::", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := FromManifest(baseManifest(func(m *manifest.Manifest) { m.Nginx.Bind = tt.bind }), Options{}).Nginx
			if n.Bind != tt.wantBind {
				t.Errorf("Bind = %q, want %q", n.Bind, tt.wantBind)
			}
			if got := n.Hash == def.Hash; got != tt.sameHash {
				t.Errorf("hash same as the default bind's = %v, want %v", got, tt.sameHash)
			}
		})
	}
	if def.Hash != legacy {
		t.Errorf("default bind changed the nginx hash: %s, was %s", def.Hash, legacy)
	}
	long := FromManifest(baseManifest(func(m *manifest.Manifest) { m.Nginx.Bind = "0:0:0:0:0:0:0:1" }), Options{}).Nginx
	short := FromManifest(baseManifest(func(m *manifest.Manifest) { m.Nginx.Bind = "::1" }), Options{}).Nginx
	if long.Hash != short.Hash {
		t.Error("two spellings of ::1 give different nginx hashes")
	}
}

// ServiceImages changes the image of the named services it names, and
// only theirs: the primary takes StableImage, and every other service's
// containers keep their names and hashes.
func TestServiceImages(t *testing.T) {
	m, err := manifest.Parse([]byte(`project: demo
services:
  web: {image: app:2, port: 3000}
  worker: {image: app:2}
  db: {image: db:2, kind: accessory}
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
`), "x")
	if err != nil {
		t.Fatal(err)
	}
	base := FromManifest(m, Options{})
	got := FromManifest(m, Options{StableImage: "app:1", ServiceImages: map[string]string{"worker": "app:0", "web": "ignored"}})
	for _, name := range []string{"web", "worker", "db"} {
		b, g := base.Service(name).Stable[0], got.Service(name).Stable[0]
		want := map[string]string{"web": "app:1", "worker": "app:0", "db": "db:2"}[name]
		if g.Image != want {
			t.Errorf("%s runs %s, want %s", name, g.Image, want)
		}
		if changed := g.Name != b.Name; changed != (name != "db") {
			t.Errorf("%s: container %s (was %s)", name, g.Name, b.Name)
		}
	}
}
