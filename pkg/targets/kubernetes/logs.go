package kubernetes

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
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// podLogs is what the Kubernetes target needs to read pods' logs: one
// call, kept apart from API so that the client behind it can change
// (pkg/kube today) without the target's other calls.
type podLogs interface {
	PodLogs(ctx context.Context, ns, pod string, o kube.PodLogOptions) (io.ReadCloser, error)
}

// LogReplicas are the project's app pods on q's track (the pods carry
// the Deployments' selector labels) that have started: a pending pod's
// container has no log yet.
func (t *Target) LogReplicas(ctx context.Context, m *manifest.Manifest, q api.LogQuery) ([]targets.Replica, error) {
	sel := k8srender.LabelProject + "=" + m.Project + "," + k8srender.LabelRole + "=" + stack.RoleApp
	if q.Track != "" {
		sel += "," + k8srender.LabelTrack + "=" + q.Track
	}
	var pods corev1.PodList
	if err := t.api.List(ctx, kube.Pods, t.cfg.Namespace, sel, &pods); err != nil {
		return nil, err
	}
	sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
	var out []targets.Replica
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodPending {
			continue
		}
		out = append(out, targets.Replica{ID: string(p.UID), Name: p.Name, Running: p.Status.Phase == corev1.PodRunning})
	}
	return out, nil
}

// OpenLog opens the app container's log of a pod through the API server;
// it merges stdout and stderr into plain lines.
func (t *Target) OpenLog(ctx context.Context, _ *manifest.Manifest, r targets.Replica, o engine.LogOptions) (engine.LogStream, error) {
	pl, ok := t.api.(podLogs)
	if !ok {
		return nil, errors.New("this Kubernetes client cannot read pods' logs")
	}
	rc, err := pl.PodLogs(ctx, t.cfg.Namespace, r.Name, kube.PodLogOptions{
		Container: k8srender.AppContainer, Since: o.Since, Tail: o.Tail, Follow: o.Follow})
	if kube.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %v", targets.ErrReplicaGone, err)
	}
	if err != nil {
		return nil, err
	}
	return engine.NewLogStream("pod "+r.Name, rc, false), nil
}
