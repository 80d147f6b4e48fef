package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
)

// A registry's refusal is told from failures that may pass.
func TestPullDenied(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"engine 20.10, wrong password", errors.New("Error response from daemon: unauthorized: authentication required"), true},
		{"no credentials", errors.New(`Error response from daemon: Head "https://r.example.com/v2/app/manifests/v1": no basic auth credentials`), true},
		{"docker hub, no access or no repository", errors.New("Error response from daemon: pull access denied for app, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"), true},
		{"typed unauthorized", fmt.Errorf("pull image x: %w", errdefs.ErrUnauthenticated), true},
		{"typed forbidden", fmt.Errorf("pull image x: %w", errdefs.ErrPermissionDenied), true},
		{"registry unreachable", errors.New(`Error response from daemon: Get "https://r.example.com/v2/": dial tcp: lookup r.example.com: no such host`), false},
		{"manifest unknown", errors.New("Error response from daemon: manifest for r.example.com/app:v9 not found: manifest unknown: manifest unknown"), false},
		{"engine socket refused", errors.New("Got permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock"), false},
		{"timeout", fmt.Errorf("pull image x: %w", context.DeadlineExceeded), false},
		{"nil", nil, false},
	} {
		if got := PullDenied(tc.err); got != tc.want {
			t.Errorf("%s: PullDenied = %v, want %v", tc.name, got, tc.want)
		}
	}
}
