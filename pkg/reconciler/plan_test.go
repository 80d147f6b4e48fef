package reconciler

import (
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

func testStack(t *testing.T, image string, replicas int, mutate func(*manifest.Manifest)) stack.Stack {
	t.Helper()
	m := manifest.Defaults()
	m.Project = "demo"
	m.Services.Image = image
	m.Services.Port = 3000
	m.Services.Replicas = replicas
	m.Nginx.Image = "nginx:latest"
	m.Nginx.Port = 8080
	m.Network.Name = "demo-net"
	if mutate != nil {
		mutate(&m)
	}
	return stack.FromManifest(&m, stack.Options{})
}

// running turns desired containers into observed running ones.
func running(s stack.Stack) []engine.Container {
	var out []engine.Container
	for _, a := range s.Apps() {
		out = append(out, engine.Container{ID: "id-" + a.Name, Name: a.Name, Image: a.Image, Role: stack.RoleApp, Track: a.Track, Replica: a.Replica, Hash: a.Hash, State: "running", IP: "10.0.0.1"})
	}
	out = append(out, engine.Container{ID: "id-nginx", Name: s.Nginx.Name, Image: s.Nginx.Image, Role: stack.RoleNginx, Hash: s.Nginx.Hash, State: "running"})
	return out
}

func ownedNet(s stack.Stack) *engine.Network {
	return &engine.Network{ID: "net", Name: s.Network.Name, Driver: "bridge", Owned: true}
}

func TestCompute(t *testing.T) {
	v1 := testStack(t, "app:1", 1, nil)
	v1x3 := testStack(t, "app:1", 3, nil)
	v2 := testStack(t, "app:2", 1, nil)
	port := testStack(t, "app:1", 1, func(m *manifest.Manifest) { m.Nginx.Port = 9090 })
	canary := testStack(t, "app:1", 1, func(m *manifest.Manifest) {
		m.Services.Canary = &manifest.Canary{Image: "app:2", Weight: 20, Replicas: 1}
	})
	conf := []byte("conf")

	withState := func(cs []engine.Container, name, state string) []engine.Container {
		out := append([]engine.Container(nil), cs...)
		for i := range out {
			if out[i].Name == name {
				out[i].State = state
			}
		}
		return out
	}
	without := func(cs []engine.Container, name string) []engine.Container {
		var out []engine.Container
		for _, c := range cs {
			if c.Name != name {
				out = append(out, c)
			}
		}
		return out
	}

	tests := []struct {
		name    string
		desired stack.Stack
		obs     Observed
		want    []OpKind
		blocked string
		changes bool
		causes  []string // substrings expected in the plan text
	}{
		{
			name:    "fresh deploy",
			desired: v1,
			obs:     Observed{},
			want:    []OpKind{OpCreateNetwork, OpStartApp, OpWaitHealthy, OpStartNginx},
			changes: true,
			causes:  []string{"network missing", "replica 1 missing", "nginx missing"},
		},
		{
			name:    "converged is a no-op",
			desired: v1,
			obs:     Observed{Network: ownedNet(v1), Containers: running(v1), NginxConf: conf},
			want:    nil,
		},
		{
			name:    "config drift only reloads nginx",
			desired: v1,
			obs:     Observed{Network: ownedNet(v1), Containers: running(v1), NginxConf: []byte("old")},
			want:    []OpKind{OpWaitHealthy, OpReloadNginx},
			causes:  []string{"configuration changed"},
		},
		{
			name:    "scale up",
			desired: v1x3,
			obs:     Observed{Network: ownedNet(v1), Containers: running(v1), NginxConf: conf},
			want:    []OpKind{OpStartApp, OpStartApp, OpWaitHealthy, OpReloadNginx},
			causes:  []string{"scale stable up: replica 2 missing", "upstream containers changed"},
		},
		{
			name:    "scale down drains after reload",
			desired: v1,
			obs:     Observed{Network: ownedNet(v1x3), Containers: running(v1x3), NginxConf: conf},
			want:    []OpKind{OpWaitHealthy, OpReloadNginx, OpRemoveApp, OpRemoveApp},
			causes:  []string{"scale stable down to 1"},
		},
		{
			name:    "image change starts new before removing old",
			desired: v2,
			obs:     Observed{Network: ownedNet(v1), Containers: running(v1), NginxConf: conf},
			want:    []OpKind{OpStartApp, OpWaitHealthy, OpReloadNginx, OpRemoveApp},
			changes: true,
			causes:  []string{"image app:1 -> app:2", "superseded by"},
		},
		{
			name:    "nginx port change replaces nginx",
			desired: port,
			obs:     Observed{Network: ownedNet(v1), Containers: running(v1), NginxConf: conf},
			want:    []OpKind{OpWaitHealthy, OpRemoveNginx, OpStartNginx},
			changes: true,
			causes:  []string{"port or spec changed"},
		},
		{
			name:    "exited container is recreated as a heal",
			desired: v1,
			obs:     Observed{Network: ownedNet(v1), Containers: withState(running(v1), v1.Stable[0].Name, "exited"), NginxConf: conf},
			want:    []OpKind{OpRemoveDead, OpStartApp, OpWaitHealthy, OpReloadNginx},
			changes: false,
			causes:  []string{"recreate exited container"},
		},
		{
			name:    "removed replica is restored as a heal",
			desired: v1x3,
			obs:     Observed{Network: ownedNet(v1x3), Containers: without(running(v1x3), v1x3.Stable[1].Name), NginxConf: conf},
			want:    []OpKind{OpStartApp, OpWaitHealthy, OpReloadNginx},
			changes: false,
		},
		{
			name:    "missing nginx is started",
			desired: v1,
			obs:     Observed{Network: ownedNet(v1), Containers: without(running(v1), v1.Nginx.Name), NginxConf: conf},
			want:    []OpKind{OpWaitHealthy, OpStartNginx},
			changes: true,
		},
		{
			name:    "half-finished rollout: new running, old running, nginx on old config",
			desired: v2,
			obs:     Observed{Network: ownedNet(v1), Containers: append(running(v1), running(v2)[0]), NginxConf: []byte("old")},
			want:    []OpKind{OpWaitHealthy, OpReloadNginx, OpRemoveApp},
			causes:  []string{"superseded by"},
		},
		{
			name:    "canary declared",
			desired: canary,
			obs:     Observed{Network: ownedNet(v1), Containers: running(v1), NginxConf: conf},
			want:    []OpKind{OpStartApp, OpWaitHealthy, OpReloadNginx},
			changes: true,
			causes:  []string{"canary app:2 declared"},
		},
		{
			name:    "canary dropped",
			desired: v1,
			obs:     Observed{Network: ownedNet(canary), Containers: running(canary), NginxConf: conf},
			want:    []OpKind{OpWaitHealthy, OpReloadNginx, OpRemoveApp},
			causes:  []string{"canary no longer wanted"},
		},
		{
			name:    "foreign network with our name blocks",
			desired: v1,
			obs:     Observed{Network: &engine.Network{Name: "demo-net", Driver: "bridge", Owned: false}},
			blocked: "not owned by project demo",
		},
		{
			name:    "driver change blocks",
			desired: v1,
			obs:     Observed{Network: &engine.Network{Name: "demo-net", Driver: "macvlan", Owned: true}},
			blocked: "uses driver macvlan",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Compute(tc.desired, tc.obs, conf)
			if tc.blocked != "" {
				if !strings.Contains(p.Blocked, tc.blocked) {
					t.Fatalf("Blocked = %q, want it to contain %q", p.Blocked, tc.blocked)
				}
				return
			}
			var got []OpKind
			for _, op := range p.Ops {
				got = append(got, op.Kind)
			}
			if strings.Join(kinds(got), ",") != strings.Join(kinds(tc.want), ",") {
				t.Fatalf("ops:\n got %v\nwant %v\nplan:\n%s", got, tc.want, p)
			}
			if p.Changes() != tc.changes {
				t.Errorf("Changes() = %v, want %v\n%s", p.Changes(), tc.changes, p)
			}
			text := p.String()
			for _, c := range tc.causes {
				if !strings.Contains(text, c) {
					t.Errorf("plan text lacks %q:\n%s", c, text)
				}
			}
			if len(p.Ops) > 0 && strings.Count(text, "\n") != len(p.Ops) {
				t.Errorf("String() has %d lines for %d ops", strings.Count(text, "\n"), len(p.Ops))
			}
		})
	}
}

func kinds(ks []OpKind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

// Applying a plan's outcome and planning again yields nothing: Compute is
// idempotent on its own result.
func TestComputeIdempotent(t *testing.T) {
	for _, s := range []stack.Stack{testStack(t, "app:1", 1, nil), testStack(t, "app:1", 4, nil)} {
		p := Compute(s, Observed{Network: ownedNet(s), Containers: running(s), NginxConf: []byte("c")}, []byte("c"))
		if !p.Empty() {
			t.Errorf("converged stack planned:\n%s", p)
		}
	}
}

// Foreign containers (no project label) never reach the planner: Observe
// lists by label. Containers of another role are ignored, never removed.
func TestComputeIgnoresUnknownRoles(t *testing.T) {
	s := testStack(t, "app:1", 1, nil)
	obs := Observed{Network: ownedNet(s), Containers: append(running(s), engine.Container{ID: "x", Name: "demo-nginx-validate", Role: "validate", State: "running"}), NginxConf: []byte("c")}
	if p := Compute(s, obs, []byte("c")); !p.Empty() {
		t.Errorf("unknown role planned:\n%s", p)
	}
}
