package fake_test

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

func TestFindNetwork(t *testing.T) {
	f := newFake(t)
	if _, err := f.AddNetwork("foreign-net", "macvlan", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, project string
		want          *engine.Network // ID ignored
	}{
		{netName, project, &engine.Network{Name: netName, Driver: "bridge", Owned: true}},
		{netName, "other", &engine.Network{Name: netName, Driver: "bridge", Owned: false}},
		{"foreign-net", project, &engine.Network{Name: "foreign-net", Driver: "macvlan", Owned: false}},
		{"bridge", project, &engine.Network{Name: "bridge", Driver: "bridge"}},
		{"demo", project, nil}, // a substring of demo-net: exact names only
		{"nope", project, nil},
	} {
		got, err := f.FindNetwork(bg, tc.name, tc.project)
		if err != nil {
			t.Fatal(err)
		}
		if got != nil {
			if len(got.ID) != 64 {
				t.Errorf("%s: ID %q", tc.name, got.ID)
			}
			got.ID = ""
		}
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("FindNetwork(%s, %s) = %+v, want %+v", tc.name, tc.project, got, tc.want)
		}
	}
}

func TestCreateNetwork(t *testing.T) {
	f := newFake(t)
	err := f.CreateNetwork(bg, netName, "bridge", stack.NetworkLabels(project))
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "network with name demo-net already exists") {
		t.Errorf("duplicate: %v", err)
	}
	if err := f.CreateNetwork(bg, "", "bridge", nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("empty name: %v", err)
	}
	labels := map[string]string{stack.LabelProject: "p2"}
	if err := f.CreateNetwork(bg, "p2-net", "", labels); err != nil {
		t.Fatal(err)
	}
	labels[stack.LabelProject] = "mutated"
	n, _ := f.FindNetwork(bg, "p2-net", "p2")
	if n == nil || n.Driver != "bridge" || !n.Owned {
		t.Errorf("created %+v: want the default driver bridge, owned by p2", n)
	}
	var names []string
	for _, n := range f.Networks() {
		names = append(names, n.Name)
	}
	if want := []string{"bridge", netName, "host", "none", "p2-net"}; !equal(names, want) {
		t.Errorf("networks %v, want %v", names, want)
	}
}

func TestRemoveNetwork(t *testing.T) {
	f := newFake(t)
	n, _ := f.FindNetwork(bg, netName, project)
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))

	err := f.RemoveNetwork(bg, n.ID)
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "has active endpoints") || !strings.HasPrefix(err.Error(), "remove network "+n.ID+": ") {
		t.Errorf("remove with a running container: %v", err)
	}
	// An exited container does not hold the network (Docker releases its
	// endpoint when it stops).
	if err := f.Kill("demo-stable-1"); err != nil {
		t.Fatal(err)
	}
	if err := f.RemoveNetwork(bg, n.ID); err != nil {
		t.Errorf("remove with an exited container: %v", err)
	}
	if got, _ := f.FindNetwork(bg, netName, project); got != nil {
		t.Error("network still there")
	}
	for _, ref := range []string{n.ID, "nope", ""} {
		if err := f.RemoveNetwork(bg, ref); err != nil {
			t.Errorf("RemoveNetwork(%q) of a missing network = %v, want nil", ref, err)
		}
	}
	if err := f.RemoveNetwork(bg, "bridge"); !errdefs.IsPermissionDenied(err) {
		t.Errorf("remove bridge: %v", err)
	}

	// By name, too, as Docker accepts.
	if _, err := f.AddNetwork("x-net", "bridge", nil); err != nil {
		t.Fatal(err)
	}
	if err := f.RemoveNetwork(bg, "x-net"); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.FindNetwork(bg, "x-net", project); got != nil {
		t.Error("x-net still there")
	}
}

func TestNetworksHaveTheirOwnSubnets(t *testing.T) {
	f := newFake(t)
	if _, err := f.AddNetwork("other-net", "bridge", stack.NetworkLabels("other")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	s := appSpec("other-stable-1", stack.TrackStable, 1)
	s.Network = "other-net"
	mustRun(t, f, s)
	h := appSpec("on-host", stack.TrackStable, 1)
	h.Network = "host"
	mustRun(t, f, h)
	d := appSpec("on-default", stack.TrackStable, 1)
	d.Network = ""
	mustRun(t, f, d)
	for name, want := range map[string]string{"demo-stable-1": "10.1.0.2", "other-stable-1": "10.2.0.2", "on-host": "", "on-default": "10.0.0.2"} {
		if c := mustGet(t, f, name); c.IP != want {
			t.Errorf("%s on %s: IP %q, want %q", name, c.Network, c.IP, want)
		}
	}
	if c := mustGet(t, f, "on-default"); c.Network != "bridge" {
		t.Errorf("no network given: attached to %q, want bridge", c.Network)
	}
}
