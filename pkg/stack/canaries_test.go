package stack

import (
	"reflect"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

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
