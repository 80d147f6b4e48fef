package reconciler

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// namedStack is a named-form stack: web (2 replicas) and worker depending
// on the accessory db; images from the arguments.
func namedStack(t *testing.T, web, worker, db string) stack.Stack {
	t.Helper()
	text := fmt.Sprintf(`
project: shop
services:
  web: {image: %q, port: 3000, replicas: 2, depends_on: [db]}
  worker: {image: %q, depends_on: [db]}
  db: {image: %q, kind: accessory, port: 5432}
nginx: {image: "nginx:latest", port: 8080}
network: {name: shop-net}
`, web, worker, db)
	m, err := manifest.Parse([]byte(text), "shop")
	if err != nil {
		t.Fatal(err)
	}
	return stack.FromManifest(m, stack.Options{})
}

// servingNamed is s fully deployed, its containers labelled with their
// service as the engine reports them.
func servingNamed(s stack.Stack, rev string) Observed {
	o := serving(s, rev)
	for i, c := range o.Containers {
		for _, a := range s.Apps() {
			if a.Name == c.Name {
				o.Containers[i].Service = a.Service
			}
		}
	}
	return o
}

// opLine is an op as "kind target" for comparing plans.
func opLines(p Plan) []string {
	var out []string
	for _, op := range p.Ops {
		t := op.Target
		// Container names carry hashes: keep the service part.
		if i := strings.Index(t, "-stable-"); i > 0 {
			t = t[:i]
		}
		out = append(out, string(op.Kind)+" "+t)
	}
	return out
}

func TestComputeNamedServices(t *testing.T) {
	v1 := namedStack(t, "web:1", "worker:1", "db:1")
	tests := []struct {
		name    string
		desired stack.Stack
		obs     Observed
		want    []string
		// untouched lists services none of whose containers an op names.
		untouched []string
	}{
		{
			name:    "first deploy: the accessory runs before the rest starts",
			desired: v1,
			obs:     Observed{Network: ownedNet(v1)},
			want: []string{
				"start-app shop-db", "wait-healthy 1 db container(s)",
				"start-app shop-web", "start-app shop-web", "start-app shop-worker",
				"wait-healthy 3 app container(s)", "start-nginx shop-nginx",
			},
		},
		{
			name:      "a change of web starts web only, start-first",
			desired:   namedStack(t, "web:2", "worker:1", "db:1"),
			obs:       servingNamed(v1, "r1"),
			want:      []string{"start-app shop-web", "start-app shop-web", "wait-healthy 2 app container(s)", "reload-nginx shop-nginx", "remove-app shop-web", "remove-app shop-web"},
			untouched: []string{"shop-db", "shop-worker"},
		},
		{
			name:      "a change of the worker is start-first and leaves web and db",
			desired:   namedStack(t, "web:1", "worker:2", "db:1"),
			obs:       servingNamed(v1, "r1"),
			want:      []string{"start-app shop-worker", "wait-healthy 1 app container(s)", "reload-nginx shop-nginx", "remove-app shop-worker"},
			untouched: []string{"shop-db", "shop-web"},
		},
		{
			name:      "a change of the accessory is stop-first and leaves web and worker",
			desired:   namedStack(t, "web:1", "worker:1", "db:2"),
			obs:       servingNamed(v1, "r1"),
			want:      []string{"remove-app shop-db", "start-app shop-db", "wait-healthy 1 db container(s)", "reload-nginx shop-nginx"},
			untouched: []string{"shop-web", "shop-worker"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Compute(desiredOf(tt.desired, "r2"), tt.obs)
			if got := opLines(p); !slices.Equal(got, tt.want) {
				t.Errorf("plan:\n%s\nwant ops %q", p, tt.want)
			}
			for _, op := range p.Ops {
				for _, u := range tt.untouched {
					if strings.HasPrefix(op.Target, u+"-") || slices.ContainsFunc(op.Targets, func(n string) bool { return strings.HasPrefix(n, u+"-") }) {
						t.Errorf("op %s touches %s, which did not change", op, u)
					}
				}
			}
			if !p.Gated() {
				t.Errorf("a change is not gated:\n%s", p)
			}
		})
	}
}

// TestNamedContainers: names, labels and aliases carry the service; the
// seed form's do not change.
func TestNamedContainers(t *testing.T) {
	s := namedStack(t, "web:1", "worker:1", "db:1")
	db := s.Service("db").Stable[0]
	if !strings.HasPrefix(db.Name, "shop-db-stable-") || db.Labels("shop")[stack.LabelService] != "db" {
		t.Errorf("db container %s labels %v", db.Name, db.Labels("shop"))
	}
	spec, err := (&Reconciler{}).appSpec(s, db)
	if err != nil || !slices.Equal(spec.Aliases, []string{"db"}) {
		t.Errorf("db spec aliases %v (%v)", spec.Aliases, err)
	}
	if _, ok := db.Env["PORT"]; ok {
		t.Errorf("an accessory got PORT: %v", db.Env)
	}
	seed := testStack(t, "app:1", 1, nil).Stable[0]
	if _, ok := seed.Labels("demo")[stack.LabelService]; ok || strings.Count(seed.Name, "-") != 3 {
		t.Errorf("seed container changed: %s %v", seed.Name, seed.Labels("demo"))
	}
	spec, _ = (&Reconciler{}).appSpec(testStack(t, "app:1", 1, nil), seed)
	if spec.Aliases != nil {
		t.Errorf("seed container got aliases %v", spec.Aliases)
	}
	_ = engine.Container{}
}

// TestHealPlanNamedServices: while a change is denied, a heal restores a
// removed accessory and a removed web container in dependency order: the
// accessory runs before what depends on it starts, as in a full plan.
func TestHealPlanNamedServices(t *testing.T) {
	v1 := namedStack(t, "web:1", "worker:1", "db:1")
	obs := servingNamed(v1, "r1")
	var kept []engine.Container
	for _, c := range obs.Containers {
		if strings.HasPrefix(c.Name, "shop-db-") || strings.HasSuffix(c.Name, "-2") && strings.HasPrefix(c.Name, "shop-web-") {
			continue // removed by hand
		}
		kept = append(kept, c)
	}
	obs.Containers = kept
	denied := desiredOf(namedStack(t, "web:2", "worker:1", "db:1"), "r2")
	_, heal := HealPlan(denied, obs, []byte("conf r1"))
	want := []string{"start-app shop-db", "wait-healthy 1 db container(s)", "start-app shop-web", "wait-healthy 1 app container(s)", "reload-nginx shop-nginx"}
	if got := opLines(heal); !slices.Equal(got, want) {
		t.Errorf("heal plan:\n%s\nwant ops %q", heal, want)
	}
	for _, op := range heal.Ops {
		if op.Gated || op.App != nil && op.App.Image != "web:1" && op.App.Image != "db:1" {
			t.Errorf("heal op %s restores something else than what was applied", op)
		}
	}
}
