package docker

import (
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/observe"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Each canaried service's status counts its canary, names its revision
// and gives the weight nginx has loaded for it: the primary's from the
// weight line, another service's from its own.
func TestServicesStatusSeveralCanaries(t *testing.T) {
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
`), "shop")
	if err != nil {
		t.Fatal(err)
	}
	// Validation still refuses a second canary: added after parsing.
	m.Named["web"].Canary = &manifest.Canary{Image: "web:2", Weight: 10, Replicas: 2}
	st := stack.FromManifest(m, stack.Options{})
	var obs reconciler.Observed
	for _, a := range st.Apps() {
		obs.Containers = append(obs.Containers, engine.Container{Name: a.Name, Role: stack.RoleApp, Service: a.Service, Track: a.Track, Hash: a.Hash, Image: a.Image, State: "running"})
	}
	obs.Loaded = &reconciler.Loaded{Weight: 30, Weights: map[string]int{"web": 10}}
	tg := &Target{Deps: Deps{Proxy: observe.NewProxy(observe.Options{Window: time.Minute})}}
	got := map[string]struct{ running, desired, weight, revisions int }{}
	for _, ss := range tg.servicesStatus(m, st, obs) {
		got[ss.Name] = struct{ running, desired, weight, revisions int }{ss.Running, ss.Desired, ss.CanaryWeight, len(ss.Revisions)}
	}
	want := map[string]struct{ running, desired, weight, revisions int }{
		"api":    {2, 2, 30, 2},
		"web":    {3, 3, 10, 2},
		"worker": {1, 1, 0, 0},
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: running, desired, canary weight, revisions = %v, want %v", name, got[name], w)
		}
	}
}
