package kubetarget

import (
	"errors"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// A namespace runs one canary: a manifest whose web services declare two
// is refused (when read, and again when planned, before anything is
// rendered, so nothing is applied or torn down), naming both fields; one
// canary, and the seed form, pass.
func TestOneCanaryOnKubernetes(t *testing.T) {
	web := func(canary bool) *manifest.Services {
		s := &manifest.Services{Image: "app:1", Port: 3000, Replicas: 1}
		if canary {
			s.Canary = &manifest.Canary{Image: "app:2", Weight: 10}
		}
		return s
	}
	tests := []struct {
		name  string
		named map[string]*manifest.Services
		want  string
	}{
		{"two canaries", map[string]*manifest.Services{"web": web(true), "api": web(true), "jobs": {Image: "app:1"}}, "services api, web each declare a canary"},
		{"one canary", map[string]*manifest.Services{"web": web(true), "api": web(false)}, ""},
		{"seed form", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &manifest.Manifest{Project: "demo", Named: tt.named}
			err := OneCanary(m)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "kubernetes")):
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			if tt.want == "" {
				return
			}
			// A validation error, as the daemon reports any invalid
			// manifest: one problem per canaried service's field.
			var ve *manifest.ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) != 2 || ve.Problems[0].Field != "services.api.canary" || ve.Problems[1].Field != "services.web.canary" {
				t.Fatalf("OneCanary: %#v, want a validation error on services.api.canary and services.web.canary", err)
			}
			if _, err := DesiredFor(m, stack.Options{}, "ns", "gw", 0, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DesiredFor: %v, want the refusal", err)
			}
		})
	}
}

// TestWorkerMetricsOnKubernetes: a worker with metrics of its own is
// refused on Kubernetes, naming the field (it would not be judged), when
// read and when planned; beside two canaries every problem is reported.
func TestWorkerMetricsOnKubernetes(t *testing.T) {
	m := &manifest.Manifest{Project: "demo", Named: map[string]*manifest.Services{
		"web":  {Image: "app:1", Port: 3000, Replicas: 1, Canary: &manifest.Canary{Image: "app:2", Weight: 10}},
		"api":  {Image: "app:1", Port: 3000, Replicas: 1, Canary: &manifest.Canary{Image: "app:2", Weight: 10}},
		"jobs": {Image: "app:1", Replicas: 1, Metrics: &manifest.ServiceMetrics{Port: 9100, Path: "/metrics"}},
	}}
	var ve *manifest.ValidationError
	if err := Accept(m); !errors.As(err, &ve) || len(ve.Problems) != 3 || ve.Problems[2].Field != "services.jobs.metrics" {
		t.Fatalf("Accept: %v, want the two canaries and services.jobs.metrics", err)
	}
	delete(m.Named, "api")
	if _, err := DesiredFor(m, stack.Options{}, "ns", "gw", 0, nil); err == nil || !strings.Contains(err.Error(), "services.jobs.metrics") {
		t.Fatalf("DesiredFor: %v, want the refusal of services.jobs.metrics", err)
	}
	m.Named["jobs"].Metrics = nil
	if err := Accept(m); err != nil {
		t.Fatalf("without metrics: %v", err)
	}
}
