package fake_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

func Example() {
	ctx := context.Background()
	f := fake.New(fake.WithSeed(42))
	defer f.Close()
	f.AddImage("swift-deploy-1-node:v1")
	_ = f.CreateNetwork(ctx, "demo-net", "bridge", stack.NetworkLabels("demo"))

	app := stack.App{Name: "demo-stable-1", Image: "swift-deploy-1-node:v1", Track: stack.TrackStable, Replica: 1, Hash: "h1"}
	spec := engine.Spec{Name: app.Name, Image: app.Image, Labels: app.Labels("demo"), Network: "demo-net"}

	// The second Run of this name fails as Docker does; the third is made to
	// fail by the test.
	_, _ = f.Run(ctx, spec)
	_, err := f.Run(ctx, spec)
	fmt.Println(err != nil)
	f.FailNext(fake.OpRun, errors.New("injected"))
	spec.Name = "demo-stable-2"
	_, err = f.Run(ctx, spec)
	fmt.Println(err)

	// A crash, as the reconciler observes it.
	_ = f.Kill("demo-stable-1")
	cs, _ := f.ListContainers(ctx, "demo", "demo-net")
	for _, c := range cs {
		fmt.Println(c.Name, c.Role, c.Track, c.State, c.IP == "")
	}
	for _, c := range f.Mutations() {
		fmt.Println(c.Op, c.Target, c.Err != nil)
	}
	// Output:
	// true
	// create container demo-stable-2: injected
	// demo-stable-1 app stable exited true
	// CreateNetwork demo-net false
	// Run demo-stable-1 false
	// Run demo-stable-1 true
	// Run demo-stable-2 true
}
