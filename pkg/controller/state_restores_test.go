package controller

import (
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// The decisions of a state.json apply to the service they were made for:
// Restored to the primary (a seed form's, or one recorded under the
// project's name before services had releases of their own), Restores
// to their service; each is spent when its own service's image changes.
func TestStateRestoresPerService(t *testing.T) {
	parse := func(web, worker string) *manifest.Manifest {
		m, err := manifest.Parse([]byte(namedManifest(web, worker, "app:3")), "x")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	seed, err := manifest.Parse([]byte(fakeManifest("app:3", 2, "")), "x")
	if err != nil {
		t.Fatal(err)
	}
	legacy := State{Restored: &Restore{Service: "demo", Rev: 1, Image: "app:1", ManifestStable: "app:2"}}
	webRestore := State{Restored: &Restore{Service: "web", Rev: 1, Image: "app:1", ManifestStable: "app:2"}}
	worker := State{Restores: map[string]*Restore{"worker": {Service: "worker", Rev: 1, Image: "app:1", ManifestStable: "app:2"}}}
	tests := []struct {
		name     string
		s        State
		m        *manifest.Manifest
		stable   string
		services map[string]string
		spent    bool
	}{
		{name: "seed form", s: State{Restored: &Restore{Service: "demo", Image: "app:1", ManifestStable: "app:3"}}, m: seed, stable: "app:1"},
		{name: "named, recorded under the project", s: legacy, m: parse("app:2", "app:2"), stable: "app:1"},
		{name: "named, primary", s: webRestore, m: parse("app:2", "app:2"), stable: "app:1"},
		{name: "named, primary spent by web's edit", s: webRestore, m: parse("app:4", "app:2"), spent: true},
		{name: "named, worker", s: worker, m: parse("app:2", "app:2"), services: map[string]string{"worker": "app:1"}},
		{name: "named, worker kept through web's edit", s: worker, m: parse("app:4", "app:2"), services: map[string]string{"worker": "app:1"}},
		{name: "named, worker spent by its edit", s: worker, m: parse("app:2", "app:4"), spent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.s.Options(tc.m)
			if o.StableImage != tc.stable || !mapsEqual(o.ServiceImages, tc.services) {
				t.Errorf("options: stable %q services %v, want %q %v", o.StableImage, o.ServiceImages, tc.stable, tc.services)
			}
			after, changed := tc.s.spent(tc.m)
			if changed != tc.spent {
				t.Errorf("spent %v, want %v", changed, tc.spent)
			}
			if tc.spent && (after.Restored != nil || len(after.Restores) != 0) {
				t.Errorf("after spent: %+v", after)
			}
			if tc.spent && tc.s.Restores != nil && len(tc.s.Restores) == 0 {
				t.Errorf("spent changed the state it was called on")
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
