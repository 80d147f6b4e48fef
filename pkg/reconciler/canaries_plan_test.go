package reconciler

import (
	"slices"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// canariedStack is a named form whose web services both run a canary:
// api's (the primary) at 30% and, unless webCanary is "", web's at 10%.
// web's is added after parsing, so that one manifest text serves both.
func canariedStack(t *testing.T, webCanary string, o stack.Options) stack.Stack {
	t.Helper()
	m, err := manifest.Parse([]byte(`project: shop
services:
  web: {image: web:1, port: 3000, route: {host: shop.example.com}}
  api:
    image: api:1
    port: 8000
    route: {path_prefix: /api}
    canary: {image: api:2, weight: 30}
nginx: {image: nginx:latest, port: 8080}
network: {name: shop-net}
`), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if webCanary != "" {
		m.Named["web"].Canary = &manifest.Canary{Image: webCanary, Weight: 10, Replicas: 1}
	}
	return stack.FromManifest(m, o)
}

// canaryOpLines is opLines with canary containers named by service and
// track ("shop-web canary").
func canaryOpLines(p Plan) []string {
	var out []string
	for _, op := range p.Ops {
		t := op.Target
		if i := strings.Index(t, "-stable-"); i > 0 {
			t = t[:i]
		}
		if i := strings.Index(t, "-canary-"); i > 0 {
			t = t[:i] + " canary"
		}
		out = append(out, string(op.Kind)+" "+t)
	}
	return out
}

// The plan starts and removes each service's canary on its own, and
// gates what sends any service's canary more traffic.
func TestComputeSeveralCanaries(t *testing.T) {
	one := canariedStack(t, "", stack.Options{})
	two := canariedStack(t, "web:2", stack.Options{})
	tests := []struct {
		name    string
		desired stack.Stack
		obs     Observed
		want    []string
		gated   bool
		cause   string // of the last op, when set
	}{
		{
			name:    "a second service's canary starts beside the first",
			desired: two,
			obs:     servingNamed(one, "r1"),
			want:    []string{"start-app shop-web canary", "wait-healthy 1 app container(s)", "reload-nginx shop-nginx"},
			gated:   true,
		},
		{
			name:    "both running: nothing to do",
			desired: two,
			obs:     servingNamed(two, "r2"),
		},
		{
			name:    "web's canary rolled back: api's stays",
			desired: canariedStack(t, "web:2", stack.Options{Canaries: map[string]stack.CanaryOptions{"web": {Off: true}}}),
			obs:     servingNamed(two, "r1"),
			want:    []string{"reload-nginx shop-nginx", "remove-app shop-web canary"},
			cause:   "canary no longer wanted",
		},
		{
			name:    "web's canary replaced",
			desired: canariedStack(t, "web:3", stack.Options{}),
			obs:     servingNamed(two, "r1"),
			want:    []string{"start-app shop-web canary", "wait-healthy 1 app container(s)", "reload-nginx shop-nginx", "remove-app shop-web canary"},
			gated:   true,
			cause:   "superseded by ",
		},
		{
			name:    "web's canary takes more traffic",
			desired: canariedStack(t, "web:2", stack.Options{Canaries: map[string]stack.CanaryOptions{"web": {Weight: 50}}}),
			obs:     servingNamed(two, "r1"),
			want:    []string{"reload-nginx shop-nginx"},
			gated:   true,
		},
		{
			name:    "web's canary takes less",
			desired: canariedStack(t, "web:2", stack.Options{Canaries: map[string]stack.CanaryOptions{"web": {Weight: 5}}}),
			obs:     servingNamed(two, "r1"),
			want:    []string{"reload-nginx shop-nginx"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Compute(desiredOf(tt.desired, "r2"), tt.obs)
			if got := canaryOpLines(p); !slices.Equal(got, tt.want) {
				t.Errorf("plan:\n%s\nwant ops %q", p, tt.want)
			}
			if p.Gated() != tt.gated {
				t.Errorf("gated = %v, want %v:\n%s", p.Gated(), tt.gated, p)
			}
			for _, op := range p.Ops {
				if strings.HasPrefix(op.Target, "shop-api-") {
					t.Errorf("op %s touches api, whose canary did not change", op)
				}
			}
			if tt.cause != "" && !strings.HasPrefix(p.Ops[len(p.Ops)-1].Cause, tt.cause) {
				t.Errorf("cause %q, want %q...", p.Ops[len(p.Ops)-1].Cause, tt.cause)
			}
		})
	}
}

// The other services' canary weights nginx reports reach Loaded.
func TestParseLoadedWeights(t *testing.T) {
	l, err := ParseLoaded([]byte("revision 0123456789abcdef\nweight 30\nstable a-1\ncanary c-1,w-1\nweights web=10\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Weight != 30 || l.Weights["web"] != 10 || len(l.Weights) != 1 || !slices.Equal(l.Canary, []string{"c-1", "w-1"}) {
		t.Errorf("ParseLoaded = %+v", l)
	}
}

// canaryEditStack is the shop stack with api's and web's canaries at the
// given weights, a weight of 0 leaving that service's canary out: which
// service is the primary follows the manifest (the first canaried web
// service by name), as after an edit.
func canaryEditStack(t *testing.T, apiWeight, webWeight int) stack.Stack {
	t.Helper()
	m, err := manifest.Parse([]byte(`project: shop
services:
  web: {image: web:1, port: 3000, route: {host: shop.example.com}}
  api: {image: api:1, port: 8000, route: {path_prefix: /api}}
nginx: {image: nginx:latest, port: 8080}
network: {name: shop-net}
`), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if apiWeight > 0 {
		m.Named["api"].Canary = &manifest.Canary{Image: "api:2", Weight: apiWeight, Replicas: 1}
	}
	if webWeight > 0 {
		m.Named["web"].Canary = &manifest.Canary{Image: "web:2", Weight: webWeight, Replicas: 1}
	}
	return stack.FromManifest(m, stack.Options{})
}

// A reload that raises any service's canary weight above that service's
// applied weight is gated, even when the edit also changes the primary:
// api (the primary) at 60 and web at 10; api's canary removed and web's
// raised to 50 makes web the primary, and 50 is below api's old 60 but
// five times web's own.
func TestReloadGatedPerServiceWeight(t *testing.T) {
	applied := servingNamed(canaryEditStack(t, 60, 10), "r1")
	for _, tt := range []struct {
		name           string
		api, web       int
		gated          bool
		wantPrimary    string
		wantOnlyReload bool
	}{
		{"api's canary removed, web's raised past its own weight", 0, 50, true, "web", false},
		{"api's canary removed, web's unchanged", 0, 10, false, "web", false},
		{"api's canary removed, web's lowered", 0, 5, false, "web", false},
		{"both kept, web's raised", 60, 50, true, "api", true},
		{"both kept, api's lowered", 40, 10, false, "api", true},
		{"both kept, api's raised", 70, 10, true, "api", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := canaryEditStack(t, tt.api, tt.web)
			if d.Primary != tt.wantPrimary {
				t.Fatalf("primary %q, want %q", d.Primary, tt.wantPrimary)
			}
			p := Compute(desiredOf(d, "r2"), applied)
			var reload *Op
			for i, op := range p.Ops {
				if op.Kind == OpReloadNginx {
					reload = &p.Ops[i]
				}
				if op.Kind == OpStartApp {
					t.Errorf("op %s: every canary wanted already runs", op)
				}
			}
			if reload == nil {
				t.Fatalf("plan %s has no reload", p)
			}
			if reload.Gated != tt.gated {
				t.Errorf("reload gated = %v, want %v: %s", reload.Gated, tt.gated, p)
			}
			if tt.wantOnlyReload && len(p.Ops) != 1 {
				t.Errorf("plan %s, want only the reload", p)
			}
		})
	}
	// A record without its stack (written before it existed) knows only
	// the primary's weight: it is what the primary's raise is judged on.
	old := servingNamed(canaryEditStack(t, 60, 0), "r1")
	old.Applied.Stack = nil
	for _, tt := range []struct {
		api, web int
		gated    bool
	}{{70, 0, true}, {50, 0, false}, {60, 10, true}} {
		p := Compute(desiredOf(canaryEditStack(t, tt.api, tt.web), "r2"), old)
		gated := false
		for _, op := range p.Ops {
			if op.Kind == OpReloadNginx {
				gated = op.Gated
			}
		}
		if gated != tt.gated {
			t.Errorf("api %d web %d on a record without its stack: reload gated = %v, want %v: %s", tt.api, tt.web, gated, tt.gated, p)
		}
	}
}
