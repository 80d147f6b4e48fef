package docker

import (
	"context"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// A validate removes exited validate containers as leftovers, but not one
// of a validate of this process still under way: it may have exited and
// not yet had its output read (seen once as "No such container" when two
// validates ran at once).
func TestStaleValidatorsSpareOnesUnderWay(t *testing.T) {
	fe := fake.New()
	tg := New(Deps{Engine: fe})
	for _, name := range []string{"demo-nginx-validate-underway", "demo-nginx-validate-leftover"} {
		spec := engine.Spec{Name: name, Image: "nginx:latest", Labels: map[string]string{stack.LabelProject: "demo", stack.LabelRole: RoleValidate}}
		if _, err := fe.AddContainer(spec, fake.StateExited); err != nil {
			t.Fatal(err)
		}
	}
	tg.validating.Store("demo-nginx-validate-underway", true)
	tg.removeStaleValidators(context.Background(), "demo")
	left := map[string]bool{}
	for _, c := range fe.Snapshot() {
		if c.Role == RoleValidate {
			left[c.Name] = true
		}
	}
	if !left["demo-nginx-validate-underway"] || left["demo-nginx-validate-leftover"] {
		t.Errorf("validate containers left: %v; want the one under way kept and the leftover removed", left)
	}
}
