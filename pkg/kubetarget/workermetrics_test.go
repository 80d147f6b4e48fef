package kubetarget

import (
	"errors"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// TestWorkerMetricsOnKubernetes: a worker with metrics of its own is
// refused on Kubernetes, naming the field (it would not be judged), when
// read and when planned; two canaries beside it are not refused.
func TestWorkerMetricsOnKubernetes(t *testing.T) {
	m := &manifest.Manifest{Project: "demo", Named: map[string]*manifest.Services{
		"web":  {Image: "app:1", Port: 3000, Replicas: 1, Canary: &manifest.Canary{Image: "app:2", Weight: 10}},
		"api":  {Image: "app:1", Port: 3000, Replicas: 1, Canary: &manifest.Canary{Image: "app:2", Weight: 10}},
		"jobs": {Image: "app:1", Replicas: 1, Metrics: &manifest.ServiceMetrics{Port: 9100, Path: "/metrics"}},
	}}
	var ve *manifest.ValidationError
	if err := Accept(m); !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Field != "services.jobs.metrics" {
		t.Fatalf("Accept: %v, want services.jobs.metrics only", err)
	}
	if _, err := DesiredFor(m, stack.Options{}, "ns", "gw", 0, nil); err == nil || !strings.Contains(err.Error(), "services.jobs.metrics") {
		t.Fatalf("DesiredFor: %v, want the refusal of services.jobs.metrics", err)
	}
	m.Named["jobs"].Metrics = nil
	if err := Accept(m); err != nil {
		t.Fatalf("without metrics: %v", err)
	}
}
