package engine_test

import (
	"context"
	"slices"
	"testing"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// NoHealthcheck turns the image's HEALTHCHECK off for that container only;
// without it the container keeps the image's check.
func TestRunWithoutTheImagesHealthcheck(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)
	eng, err := engine.New()
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	labels := map[string]string{stack.LabelProject: project, stack.LabelRole: stack.RoleApp}
	for _, tc := range []struct {
		name string
		off  bool
		want []string
	}{
		{"off", true, []string{"NONE"}},
		{"image", false, []string{"CMD", "/app", "-healthcheck"}},
	} {
		id, err := eng.Run(ctx, engine.Spec{Name: project + "-" + tc.name, Image: images.AppImage, Env: []string{"PORT=3000"}, Labels: labels, NoHealthcheck: tc.off})
		if err != nil {
			t.Fatal(err)
		}
		got, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hc := got.Container.Config.Healthcheck
		if hc == nil || !slices.Equal(hc.Test, tc.want) {
			t.Errorf("%s: healthcheck %+v, want test %v", tc.name, hc, tc.want)
		}
	}
}
