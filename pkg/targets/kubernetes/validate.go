package kubernetes

import (
	"context"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// Check is validate on Kubernetes: the objects render, and the API server
// accepts every one (a strict server-side dry-run apply, which also runs
// admission).
func (t *Target) Check(ctx context.Context, m *manifest.Manifest, st targets.Decisions) []api.Check {
	desired, err := t.desired(m, st)
	if err != nil {
		return []api.Check{{Name: "Kubernetes objects render", Detail: err.Error()}}
	}
	out := []api.Check{{Name: "Kubernetes objects render", OK: true}}
	check := api.Check{Name: "API server accepts every object (dry run)", OK: true}
	for _, obj := range desired.Objects {
		body, err := k8srender.JSON(obj)
		if err == nil {
			_, err = t.api.Apply(ctx, kubetarget.RefOf(obj), body, kube.ApplyOptions{DryRun: true})
		}
		if err != nil {
			check.OK, check.Detail = false, err.Error()
			break
		}
	}
	return append(out, check)
}
