package reconciler

import (
	"context"
	"os"
	"path/filepath"
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

// desiredOf wraps s with a config whose revision is rev.
func desiredOf(s stack.Stack, rev string) Desired {
	return Desired{Stack: s, Conf: []byte("conf " + rev), Revision: rev}
}

// serving is the observation of s fully deployed, nginx having loaded rev.
func serving(s stack.Stack, rev string) Observed {
	d := desiredOf(s, rev)
	a := AppliedFor(d)
	o := Observed{Network: ownedNet(s), Containers: running(s), Applied: a,
		Loaded: &Loaded{Revision: rev, Weight: s.CanaryWeight, Stable: a.Stable, Canary: a.Canary}}
	if t := s.Nginx.TLS; t != nil {
		o.Loaded.Cert = t.Cert
	}
	return o
}

func ownedNet(s stack.Stack) *engine.Network {
	return &engine.Network{ID: "net", Name: s.Network.Name, Driver: "bridge", Owned: true}
}

func TestCompute(t *testing.T) {
	v1 := testStack(t, "app:1", 1, nil)
	v1x3 := testStack(t, "app:1", 3, nil)
	v1x5 := testStack(t, "app:1", 5, nil)
	v2 := testStack(t, "app:2", 1, nil)
	port := testStack(t, "app:1", 1, func(m *manifest.Manifest) { m.Nginx.Port = 9090 })
	newNginx := testStack(t, "app:1", 1, func(m *manifest.Manifest) { m.Nginx.Image = "nginx:next" })
	canary := testStack(t, "app:1", 1, func(m *manifest.Manifest) {
		m.Services.Canary = &manifest.Canary{Image: "app:2", Weight: 20, Replicas: 1}
	})
	canary50 := testStack(t, "app:1", 1, func(m *manifest.Manifest) {
		m.Services.Canary = &manifest.Canary{Image: "app:2", Weight: 50, Replicas: 1}
	})
	canary10 := testStack(t, "app:1", 1, func(m *manifest.Manifest) {
		m.Services.Canary = &manifest.Canary{Image: "app:2", Weight: 10, Replicas: 1}
	})

	withState := func(o Observed, name, state string) Observed {
		o.Containers = append([]engine.Container(nil), o.Containers...)
		for i := range o.Containers {
			if o.Containers[i].Name == name {
				o.Containers[i].State = state
			}
		}
		return o
	}
	without := func(o Observed, name string) Observed {
		var out []engine.Container
		for _, c := range o.Containers {
			if c.Name != name {
				out = append(out, c)
			}
		}
		o.Containers = out
		if name == v1.Nginx.Name {
			o.Loaded = nil
		}
		return o
	}
	loaded := func(o Observed, rev string) Observed {
		l := *o.Loaded
		l.Revision = rev
		o.Loaded = &l
		return o
	}
	missing := func(o Observed, refs ...string) Observed { o.Missing = refs; return o }
	// mounts sets the identity of the directories nginx has mounted (its
	// label) and of the directories at those paths now.
	mounts := func(o Observed, label, now string) Observed {
		o.Containers = append([]engine.Container(nil), o.Containers...)
		for i := range o.Containers {
			if o.Containers[i].Role == stack.RoleNginx {
				o.Containers[i].Mounts = label
			}
		}
		o.Mounts = now
		return o
	}

	tests := []struct {
		name    string
		desired Desired
		obs     Observed
		want    []OpKind
		blocked string
		gated   bool
		causes  []string // substrings expected in the plan text
	}{
		{
			name:    "fresh deploy",
			desired: desiredOf(v1, "r1"),
			obs:     Observed{},
			want:    []OpKind{OpCreateNetwork, OpStartApp, OpWaitHealthy, OpStartNginx},
			gated:   true,
			causes:  []string{"network missing", "replica 1 missing", "nginx missing"},
		},
		{
			name:    "fresh deploy pulls first, gated",
			desired: desiredOf(v1, "r1"),
			obs:     Observed{Missing: []string{"app:1"}},
			want:    []OpKind{OpPullImage, OpCreateNetwork, OpStartApp, OpWaitHealthy, OpStartNginx},
			gated:   true,
			causes:  []string{"image not present locally"},
		},
		{
			name:    "converged is a no-op",
			desired: desiredOf(v1, "r1"),
			obs:     serving(v1, "r1"),
		},
		{
			name:    "nginx mounting the directories at its paths is kept",
			desired: desiredOf(v1, "r1"),
			obs:     mounts(serving(v1, "r1"), "1:10,1:11", "1:10,1:11"),
		},
		{
			name:    "nginx without the mounts label (made before it) is kept",
			desired: desiredOf(v1, "r1"),
			obs:     mounts(serving(v1, "r1"), "", "1:10,1:11"),
		},
		{
			name:    "nginx whose mounted directories were removed and recreated is replaced, checked first, not gated",
			desired: desiredOf(v1, "r1"),
			obs:     mounts(serving(v1, "r1"), "1:10,1:11", "1:20,1:21"),
			want:    []OpKind{OpCheckNginx, OpRemoveNginx, OpStartNginx},
			causes:  []string{"its config and status directories were removed or replaced on the host"},
		},
		{
			name:    "nginx whose directories are not all there is kept (replacing it would only recreate them)",
			desired: desiredOf(v1, "r1"),
			obs:     mounts(serving(v1, "r1"), "1:10,1:11", "1:20,-"),
		},
		{
			name:    "with the applied record lost too, that replacement is gated",
			desired: desiredOf(v1, "r1"),
			obs:     func() Observed { o := mounts(serving(v1, "r1"), "1:10,1:11", "1:20,1:21"); o.Applied = nil; return o }(),
			want:    []OpKind{OpCheckNginx, OpRemoveNginx, OpStartNginx},
			gated:   true,
		},
		{
			name:    "nginx serving another revision is reloaded, though the file may say otherwise",
			desired: desiredOf(v1, "r2"),
			obs:     loaded(serving(v1, "r2"), "r1"),
			want:    []OpKind{OpReloadNginx},
			causes:  []string{"nginx serves revision r1, not r2"},
		},
		{
			name:    "unreadable nginx status is reloaded (restoring the applied config is not gated)",
			desired: desiredOf(v1, "r1"),
			obs: func() Observed {
				o := serving(v1, "r1")
				o.Loaded, o.LoadedErr = nil, "connection refused"
				return o
			}(),
			want:   []OpKind{OpWaitHealthy, OpReloadNginx},
			causes: []string{"loaded configuration unknown (connection refused)"},
		},
		{
			name:    "scale up is gated",
			desired: desiredOf(v1x5, "r5"),
			obs:     serving(v1, "r1"),
			want:    []OpKind{OpStartApp, OpStartApp, OpStartApp, OpStartApp, OpWaitHealthy, OpReloadNginx},
			gated:   true,
			causes:  []string{"scale stable up: replica 2 missing", "configuration changed"},
		},
		{
			name:    "scale down is not gated and drains after reload",
			desired: desiredOf(v1, "r1"),
			obs:     serving(v1x3, "r3"),
			want:    []OpKind{OpReloadNginx, OpRemoveApp, OpRemoveApp},
			causes:  []string{"scale stable down to 1"},
		},
		{
			name:    "image change starts new before removing old",
			desired: desiredOf(v2, "r2"),
			obs:     serving(v1, "r1"),
			want:    []OpKind{OpStartApp, OpWaitHealthy, OpReloadNginx, OpRemoveApp},
			gated:   true,
			causes:  []string{"image app:1 -> app:2", "superseded by"},
		},
		{
			name:    "image change whose image is missing pulls it, gated, before anything",
			desired: desiredOf(v2, "r2"),
			obs:     missing(serving(v1, "r1"), "app:2"),
			want:    []OpKind{OpPullImage, OpStartApp, OpWaitHealthy, OpReloadNginx, OpRemoveApp},
			gated:   true,
		},
		{
			name:    "nginx port change replaces nginx",
			desired: desiredOf(port, "rp"),
			obs:     serving(v1, "r1"),
			want:    []OpKind{OpCheckNginx, OpRemoveNginx, OpStartNginx},
			gated:   true,
			causes:  []string{"port or spec changed"},
		},
		{
			name:    "nginx image change checks the config with the new image before the old nginx stops",
			desired: desiredOf(newNginx, "rn"),
			obs:     serving(v1, "r1"),
			want:    []OpKind{OpCheckNginx, OpRemoveNginx, OpStartNginx},
			gated:   true,
			causes:  []string{"image nginx:latest -> nginx:next"},
		},
		{
			name:    "exited container is recreated as a heal",
			desired: desiredOf(v1, "r1"),
			obs:     withState(serving(v1, "r1"), v1.Stable[0].Name, "exited"),
			want:    []OpKind{OpRemoveDead, OpStartApp, OpWaitHealthy, OpReloadNginx},
			causes:  []string{"recreate exited container"},
		},
		{
			name:    "removed replica is restored as a heal",
			desired: desiredOf(v1x3, "r3"),
			obs:     without(serving(v1x3, "r3"), v1x3.Stable[1].Name),
			want:    []OpKind{OpStartApp, OpWaitHealthy, OpReloadNginx},
			causes:  []string{"restore removed container"},
		},
		{
			name:    "removed nginx is restored, never gated",
			desired: desiredOf(v1, "r1"),
			obs:     without(serving(v1, "r1"), v1.Nginx.Name),
			want:    []OpKind{OpWaitHealthy, OpStartNginx},
		},
		{
			name:    "removed nginx with a changed config is gated",
			desired: desiredOf(canary, "rc"),
			obs: func() Observed {
				o := without(serving(v1, "r1"), v1.Nginx.Name)
				o.Containers = append(o.Containers, running(canary)[1])
				return o
			}(),
			want:  []OpKind{OpWaitHealthy, OpStartNginx},
			gated: true,
		},
		{
			name:    "half-finished rollout: new running, old running, nginx on old config",
			desired: desiredOf(v2, "r2"),
			obs: func() Observed {
				o := serving(v1, "r1")
				o.Containers = append(o.Containers, running(v2)[0])
				return o
			}(),
			want:   []OpKind{OpWaitHealthy, OpReloadNginx, OpRemoveApp},
			gated:  true, // sends traffic to containers the applied state never routed to
			causes: []string{"superseded by"},
		},
		{
			name:    "canary declared is gated",
			desired: desiredOf(canary, "rc"),
			obs:     serving(v1, "r1"),
			want:    []OpKind{OpStartApp, OpWaitHealthy, OpReloadNginx},
			gated:   true,
			causes:  []string{"canary app:2 declared"},
		},
		{
			name:    "canary weight raised is gated (reload only)",
			desired: desiredOf(canary50, "rc50"),
			obs:     serving(canary, "rc"),
			want:    []OpKind{OpReloadNginx},
			gated:   true,
		},
		{
			name:    "canary weight lowered only withdraws traffic",
			desired: desiredOf(canary10, "rc10"),
			obs:     serving(canary, "rc"),
			want:    []OpKind{OpReloadNginx},
		},
		{
			name:    "canary dropped (rollback) is never gated",
			desired: desiredOf(v1, "r1"),
			obs:     serving(canary, "rc"),
			want:    []OpKind{OpReloadNginx, OpRemoveApp},
			causes:  []string{"canary no longer wanted"},
		},
		{
			name:    "foreign network with our name blocks",
			desired: desiredOf(v1, "r1"),
			obs:     Observed{Network: &engine.Network{Name: "demo-net", Driver: "bridge", Owned: false}},
			blocked: "not owned by project demo",
		},
		{
			name:    "driver change blocks",
			desired: desiredOf(v1, "r1"),
			obs:     Observed{Network: &engine.Network{Name: "demo-net", Driver: "macvlan", Owned: true}},
			blocked: "uses driver macvlan",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Compute(tc.desired, tc.obs)
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
			if p.Gated() != tc.gated {
				t.Errorf("Gated() = %v, want %v\n%s", p.Gated(), tc.gated, p)
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
		if p := Compute(desiredOf(s, "r"), serving(s, "r")); !p.Empty() {
			t.Errorf("converged stack planned:\n%s", p)
		}
	}
}

// Foreign containers (no project label) never reach the planner: Observe
// lists by label. Containers of another role are ignored, never removed.
func TestComputeIgnoresUnknownRoles(t *testing.T) {
	s := testStack(t, "app:1", 1, nil)
	obs := serving(s, "r")
	obs.Containers = append(obs.Containers, engine.Container{ID: "x", Name: "demo-nginx-validate", Role: "validate", State: "running"})
	if p := Compute(desiredOf(s, "r"), obs); !p.Empty() {
		t.Errorf("unknown role planned:\n%s", p)
	}
}

// Each operation carries its own gate flag, so diff shows which ones the
// gate decides: new replicas are gated even when their spec already runs
// (scale-up used to pass as a heal), restored ones are not.
func TestOpGating(t *testing.T) {
	v1 := testStack(t, "app:1", 1, nil)
	v1x3 := testStack(t, "app:1", 3, nil)
	for _, tc := range []struct {
		name    string
		desired stack.Stack
		obs     Observed
		gated   bool
	}{
		{"scale-up replica", v1x3, serving(v1, "r1"), true},
		{"restored replica", v1x3, func() Observed {
			o := serving(v1x3, "r3")
			o.Containers = o.Containers[1:]
			return o
		}(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Compute(desiredOf(tc.desired, "r3"), tc.obs)
			n := 0
			for _, op := range p.Ops {
				if op.Kind == OpStartApp {
					n++
					if op.Gated != tc.gated {
						t.Errorf("%s: Gated = %v, want %v", op, op.Gated, tc.gated)
					}
					if tc.gated && !strings.Contains(op.String(), "[gated]") {
						t.Errorf("diff line %q does not mark the gated op", op)
					}
				}
			}
			if n == 0 {
				t.Fatalf("no start-app op:\n%s", p)
			}
		})
	}
}

// The applied record removed under a running daemon (its directory
// deleted and recreated) is restored from what this process recorded, so
// restoring it stays a heal; after ForgetApplied (down) nothing comes back.
func TestAppliedRecordSurvivesItsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "applied.json")
	r := &Reconciler{AppliedPath: path}
	a := AppliedFor(desiredOf(testStack(t, "app:1", 2, nil), "r1"))
	if err := r.writeApplied(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	got, err := r.readApplied()
	if err != nil || got == nil || got.Revision != "r1" || len(got.Apps) != 2 {
		t.Fatalf("readApplied after its file was removed: %+v, %v; want the recorded state", got, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("applied record not rewritten: %v", err)
	}
	if err := r.ForgetApplied(); err != nil {
		t.Fatal(err)
	}
	if got, err := r.readApplied(); err != nil || got != nil {
		t.Errorf("readApplied after ForgetApplied: %+v, %v; want nothing", got, err)
	}
}
