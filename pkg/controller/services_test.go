package controller

import (
	"slices"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// TestSecretsOfNamedServices: the values kept out of the journal and the
// log are every service's env values, in both forms of services.
func TestSecretsOfNamedServices(t *testing.T) {
	tests := []struct {
		name, services string
		want           []string
	}{
		{"single service", "{image: a:1, port: 80, env: {TOKEN: tok-1}}", []string{"tok-1"}},
		{"named services", "{web: {image: a:1, port: 80, env: {TOKEN: tok-2}}, db: {image: d:1, kind: accessory, env: {PW: pw-3}}}", []string{"tok-2", "pw-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := manifest.Parse([]byte("services: "+tt.services+"\nnginx: {image: nginx:latest, port: 8080}\nnetwork: {name: net}\n"), "x")
			if err != nil {
				t.Fatal(err)
			}
			got := secretsOf(t.TempDir(), m)
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("secretsOf misses %q: %v", w, got)
				}
			}
		})
	}
}

// TestPrimaryContainers: in the named form the snapshots and chaos are
// about the primary service's containers only; the seed form keeps all.
func TestPrimaryContainers(t *testing.T) {
	named, err := manifest.Parse([]byte("services: {api: {image: a:1, port: 80, route: {path_prefix: /api}}, web: {image: w:1, port: 80, canary: {image: w:2, weight: 10}}, jobs: {image: j:1}}\nnginx: {image: nginx:latest, port: 8080}\nnetwork: {name: net}\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	seed, err := manifest.Parse([]byte("services: {image: a:1, port: 80}\nnginx: {image: nginx:latest, port: 8080}\nnetwork: {name: net}\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	cs := []engine.Container{
		{Name: "x-api-stable-1", Role: stack.RoleApp, Service: "api"},
		{Name: "x-web-stable-1", Role: stack.RoleApp, Service: "web"},
		{Name: "x-web-canary-1", Role: stack.RoleApp, Service: "web", Track: stack.TrackCanary},
		{Name: "x-jobs-stable-1", Role: stack.RoleApp, Service: "jobs"},
		{Name: "x-nginx", Role: stack.RoleNginx},
	}
	names := func(cs []engine.Container) (out []string) {
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	if got := names(primaryContainers(named, cs)); !slices.Equal(got, []string{"x-web-stable-1", "x-web-canary-1"}) {
		t.Errorf("named form: %v, want web's (the canaried service)", got)
	}
	if got := primaryContainers(seed, cs); len(got) != len(cs) {
		t.Errorf("seed form narrowed to %v", names(got))
	}
}
