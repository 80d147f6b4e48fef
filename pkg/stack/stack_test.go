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

// twoCanaries is a named form whose two web services both run a canary:
// api (the primary, first by name) at 30%, web at 10%. Validation still
// refuses a second canary (the controller judges one), so web's is added
// after parsing.
func twoCanaries(t *testing.T) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(`project: shop
services:
  web: {image: web:1, port: 3000, route: {host: shop.example.com}}
  api:
    image: api:1
    port: 8000
    route: {path_prefix: /api}
    canary: {image: api:2, weight: 30}
  worker: {image: worker:1}
nginx: {image: nginx:latest, port: 8080}
network: {name: shop-net}
`), "x")
	if err != nil {
		t.Fatal(err)
	}
	m.Named["web"].Canary = &manifest.Canary{Image: "web:2", Weight: 10, Replicas: 2, Match: &manifest.Match{Header: "X-Web-Canary", Value: "1"}}
	return m
}

// Every canaried web service runs its canary at its own weight; the
// primary's stays in Canary, CanaryWeight and CanaryService, with the
// names and hashes it has when it runs alone.
func TestSeveralCanaries(t *testing.T) {
	m := twoCanaries(t)
	s := FromManifest(m, Options{})
	if s.Primary != "api" || s.CanaryService != "api" || s.CanaryWeight != 30 || len(s.Canary) != 1 || s.Canary[0].Image != "api:2" {
		t.Fatalf("primary canary = %s %s at %d%% %v, want api's api:2 at 30%%", s.Primary, s.CanaryService, s.CanaryWeight, s.Canary)
	}
	web, w := s.CanaryOf("web")
	if w != 10 || len(web) != 2 || web[0].Image != "web:2" || web[0].Service != "web" || web[0].Track != TrackCanary || web[1].Replica != 2 {
		t.Fatalf("CanaryOf(web) = %v at %d%%, want 2 × web:2 at 10%%", web, w)
	}
	if !strings.HasPrefix(web[0].Name, "shop-web-canary-"+web[0].Hash[:8]+"-") {
		t.Errorf("web canary container %q", web[0].Name)
	}
	if mt := s.CanaryMatch("web"); mt == nil || mt.Header != "X-Web-Canary" {
		t.Errorf("CanaryMatch(web) = %v", mt)
	}
	if api, w := s.CanaryOf("api"); w != 30 || !reflect.DeepEqual(api, s.Canary) {
		t.Errorf("CanaryOf(api) = %v at %d%%, want Canary at 30%%", api, w)
	}
	if c, w := s.CanaryOf("worker"); c != nil || w != 0 {
		t.Errorf("CanaryOf(worker) = %v, %d", c, w)
	}
	if got := s.CanaryServices(); !reflect.DeepEqual(got, []string{"api", "web"}) {
		t.Errorf("CanaryServices() = %v", got)
	}
	names := map[string]bool{}
	for _, a := range s.Apps() {
		names[a.Name] = true
	}
	for _, a := range s.Canaries() {
		if !names[a.Name] {
			t.Errorf("Apps() lacks canary %s", a.Name)
		}
	}
	if len(s.Apps()) != len(s.Stable)+3 {
		t.Errorf("Apps() has %d containers, want %d", len(s.Apps()), len(s.Stable)+3)
	}

	// The primary's containers are those of the same manifest without
	// web's canary.
	m.Named["web"].Canary = nil
	one := FromManifest(m, Options{})
	if !reflect.DeepEqual(one.Canary, s.Canary) || !reflect.DeepEqual(one.Stable, s.Stable) || one.OtherCanaries != nil {
		t.Errorf("a second canary changed the first's or the stable containers")
	}
}

// Options.Canaries refine each other service's canary; NoCanary and
// CanaryWeight stay the primary's.
func TestCanaryOptionsPerService(t *testing.T) {
	m := twoCanaries(t)
	for _, tc := range []struct {
		name           string
		o              Options
		api, web       int // weights, -1 for no canary
		apiCanaryShown string
	}{
		{"stepped", Options{CanaryWeight: 50, Canaries: map[string]CanaryOptions{"web": {Weight: 20}}}, 50, 20, "api"},
		{"web rolled back", Options{Canaries: map[string]CanaryOptions{"web": {Off: true}}}, 30, -1, "api"},
		{"api rolled back", Options{NoCanary: true}, -1, 10, ""},
		{"primary's options are not web's", Options{CanaryWeight: 70, Canaries: map[string]CanaryOptions{"api": {Off: true}}}, 70, 10, "api"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := FromManifest(m, tc.o)
			for svc, want := range map[string]int{"api": tc.api, "web": tc.web} {
				apps, w := s.CanaryOf(svc)
				if want < 0 && apps != nil || want >= 0 && (len(apps) == 0 || w != want) {
					t.Errorf("%s canary: %d containers at %d%%, want weight %d", svc, len(apps), w, want)
				}
			}
			if s.CanaryService != tc.apiCanaryShown {
				t.Errorf("CanaryService = %q, want %q", s.CanaryService, tc.apiCanaryShown)
			}
		})
	}
}
