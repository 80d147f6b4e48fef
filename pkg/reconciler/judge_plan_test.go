package reconciler

import (
	"fmt"
	"slices"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// judgedStack is web and a worker with metrics of its own.
func judgedStack(t *testing.T, worker string, replicas int) stack.Stack {
	t.Helper()
	return mixedStack(t, "web:1", worker, replicas)
}

// mixedStack is judgedStack with web running web.
func mixedStack(t *testing.T, web, worker string, replicas int) stack.Stack {
	t.Helper()
	m, err := manifest.Parse([]byte(fmt.Sprintf(`
project: shop
services:
  web: {image: %q, port: 3000}
  worker: {image: %q, replicas: %d, metrics: {port: 9100}}
nginx: {image: "nginx:latest", port: 8080}
network: {name: shop-net}
`, web, worker, replicas)), "shop")
	if err != nil {
		t.Fatal(err)
	}
	return stack.FromManifest(m, stack.Options{})
}

// TestComputeJudgesARolledWorker: a worker with metrics is judged when a
// plan rolls it (after its new containers run, before its old go), never
// when there is nothing to go back to or nothing new to judge.
func TestComputeJudgesARolledWorker(t *testing.T) {
	v1 := judgedStack(t, "worker:1", 1)
	v2 := judgedStack(t, "worker:2", 1)
	// A daemon died mid-roll: the new worker runs beside the old one.
	midRoll := servingNamed(v1, "r1")
	for _, c := range running(v2) {
		if c.Name == v2.Service("worker").Stable[0].Name {
			c.Service = "worker"
			midRoll.Containers = append(midRoll.Containers, c)
		}
	}
	tests := []struct {
		name    string
		desired stack.Stack
		obs     Observed
		want    []string
	}{
		{"a roll is judged before the old container goes", judgedStack(t, "worker:2", 1), servingNamed(v1, "r1"),
			[]string{"start-app shop-worker", "wait-healthy 1 worker container(s)", "judge-worker worker", "reload-nginx shop-nginx", "remove-app shop-worker"}},
		{"a roll a crash interrupted is judged still", v2, midRoll,
			[]string{"judge-worker worker", "reload-nginx shop-nginx", "remove-app shop-worker"}},
		{"a mixed roll judges the worker before the web service starts", mixedStack(t, "web:2", "worker:2", 1), servingNamed(v1, "r1"),
			[]string{"start-app shop-worker", "wait-healthy 1 worker container(s)", "judge-worker worker", "start-app shop-web",
				"wait-healthy 1 app container(s)", "reload-nginx shop-nginx", "remove-app shop-web", "remove-app shop-worker"}},
		{"a first start has nothing to go back to", v1, Observed{Network: ownedNet(v1)},
			[]string{"start-app shop-web", "start-app shop-worker", "wait-healthy 2 app container(s)", "start-nginx shop-nginx"}},
		{"a scale-up starts nothing new", judgedStack(t, "worker:1", 2), servingNamed(v1, "r1"),
			[]string{"start-app shop-worker", "wait-healthy 1 app container(s)", "reload-nginx shop-nginx"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Compute(desiredOf(tt.desired, "r2"), tt.obs)
			if got := opLines(p); !slices.Equal(got, tt.want) {
				t.Errorf("plan:\n%s\nwant ops %q", p, tt.want)
			}
		})
	}
}
