package controller

import (
	"slices"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
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
			got := secretsOf(m)
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("secretsOf misses %q: %v", w, got)
				}
			}
		})
	}
}
