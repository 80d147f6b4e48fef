package kubernetes

import (
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// What Kubernetes cannot be given yet is an error naming the field, never
// a pod that silently lacks it.
func TestContainerFieldsKubernetesCannotTake(t *testing.T) {
	const base = "services:\n  image: app:1\n  port: 3000\n%snginx:\n  image: nginx:latest\n  port: 8080\nnetwork:\n  name: net\n"
	for _, tc := range []struct{ fragment, field string }{
		{"  user: app\n", "services.user"},
		{"  volumes: [./data:/data]\n", "services.volumes[0]"},
		{"  volumes: [ok:/ok, Data_1:/data]\n", "services.volumes[1].source"},
	} {
		m, err := manifest.Parse([]byte(strings.Replace(base, "%s", tc.fragment, 1)), "p")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Kubernetes(m, Options{}); err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%s: %v, want an error naming %s", strings.TrimSpace(tc.fragment), err, tc.field)
		}
	}
}
