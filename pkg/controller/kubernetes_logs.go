package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// podLogs is what the Kubernetes target needs to read pods' logs: one
// call, kept apart from kubeAPI so that the client behind it can change
// (pkg/kube today) without the target's other calls.
type podLogs interface {
	PodLogs(ctx context.Context, ns, pod string, o kube.PodLogOptions) (io.ReadCloser, error)
}

// Logs opens the app container's log of every pod of the project on q's
// track (the pods carry the Deployments' selector labels). A pod whose
// container has not started yet has no log and is left out, as is one
// deleted between the list and the call.
func (t *kubeTarget) Logs(ctx context.Context, m *manifest.Manifest, q api.LogQuery) ([]LogSource, error) {
	pl, ok := t.api.(podLogs)
	if !ok {
		return nil, errors.New("this Kubernetes client cannot read pods' logs")
	}
	sel := k8srender.LabelProject + "=" + m.Project + "," + k8srender.LabelRole + "=" + stack.RoleApp
	if q.Track != "" {
		sel += "," + k8srender.LabelTrack + "=" + q.Track
	}
	var pods corev1.PodList
	if err := t.api.List(ctx, kube.Pods, t.cfg.Namespace, sel, &pods); err != nil {
		return nil, err
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	var out []LogSource
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodPending {
			continue
		}
		rc, err := pl.PodLogs(ctx, t.cfg.Namespace, p.Name, kube.PodLogOptions{
			Container: k8srender.AppContainer, Since: q.Since, Tail: q.Tail, Follow: q.Follow})
		if kube.IsNotFound(err) {
			continue
		}
		if err != nil {
			closeSources(out)
			return nil, fmt.Errorf("pod %s: %w", p.Name, err)
		}
		// The API server merges stdout and stderr into plain lines.
		out = append(out, LogSource{Name: p.Name, Stream: engine.NewLogStream("pod "+p.Name, rc, false)})
	}
	return out, nil
}
