package main

import (
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

func TestDashboardOnKubernetes(t *testing.T) {
	s := api.Status{
		Project: "shop", Mode: "canary", StableImage: "app:1", CanaryImage: "app:2", CanaryWeight: 10, Converged: true,
		Policies: []api.Decision{{Policy: "cluster", Allowed: false, Reasons: []string{"Node a reports DiskPressure"}}, {Policy: "canary_safety", Allowed: true}},
		Kubernetes: &api.KubeStatus{Namespace: "prod", Route: "shop", RouteWeights: map[string]int{"shop-stable": 90, "shop-canary": 10},
			Deployments: []api.KubeDeployment{
				{Name: "shop-stable", Track: "stable", Image: "app:1", Generation: 3, ObservedGeneration: 3, Replicas: 2, Updated: 2, Available: 2, RolledOut: true},
				{Name: "shop-canary", Track: "canary", Image: "app:2", Generation: 1, ObservedGeneration: 1, Replicas: 1, Updated: 1, Available: 0, Problem: "0 of 1 replicas available"},
			}},
	}
	var b strings.Builder
	if err := writeDashboard(&b, s); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Infrastructure: FAIL (Node a reports DiskPressure)",
		"Canary Safety: PASS",
		"Project: shop (Kubernetes namespace prod, converged)",
		"Canary: app:2 (10% of traffic)",
		"HTTPRoute shop: shop-canary 10, shop-stable 90",
		"no: 0 of 1 replicas available",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dashboard lacks %q:\n%s", want, out)
		}
	}
}
