package k8s

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// TestDeploymentRollsOutOnKwok applies what the kubernetes target renders
// for a manifest with a canary, for real, and waits until both Deployments
// are rolled out and available, their pods Running and Ready on kwok's
// fake nodes; then changes the stable image and waits for that rollout to
// complete with no pod of the old image left. Pods are simulated: kwok
// marks them Running without running a container.
func TestDeploymentRollsOutOnKwok(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "rollout")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	m := testManifests(t)["canary"]

	applyAll := func(image string) time.Time {
		mm := *m
		mm.Services.Image = image
		objs, err := k8srender.Kubernetes(&mm, k8srender.Options{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for _, o := range objs {
			if warnings, err := c.apply(ctx, t, o, false); err != nil || len(warnings) > 0 {
				t.Fatalf("apply %s %s: %v %q", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err, warnings)
			}
		}
		return start
	}
	want := map[string]struct {
		replicas int32
		image    string
	}{
		"shop-stable": {3, m.Services.Image},
		"shop-canary": {2, m.Services.Canary.Image},
	}

	start := applyAll(m.Services.Image)
	for name, w := range want {
		c.waitRolledOut(ctx, t, ns, name, w.replicas, w.image)
	}
	t.Logf("from nothing to both Deployments available: %.1fs", time.Since(start).Seconds())

	start = applyAll("shop-api:1.4.3")
	c.waitRolledOut(ctx, t, ns, "shop-stable", 3, "shop-api:1.4.3")
	t.Logf("stable image change rolled out: %.1fs", time.Since(start).Seconds())
	// The canary was not touched by the stable image's change.
	c.waitRolledOut(ctx, t, ns, "shop-canary", 2, m.Services.Canary.Image)
}

// waitRolledOut waits until Deployment name has observed its latest
// generation, every replica is updated and available, nothing older is
// left, and each of its pods is Running and Ready on a kwok node with
// image.
func (c *cluster) waitRolledOut(ctx context.Context, t *testing.T, ns, name string, replicas int32, image string) {
	t.Helper()
	var last string
	for {
		if ctx.Err() != nil {
			t.Fatalf("Deployment %s not rolled out: %s", name, last)
		}
		var d appsv1.Deployment
		err := c.get(ctx, "/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, &d)
		if isAPIError(err, http.StatusNotFound) { // the daemon has not created it yet
			last = "not created yet"
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		s := d.Status
		last = fmt.Sprintf("generation %d observed %d, replicas %d updated %d available %d (want %d)",
			d.Generation, s.ObservedGeneration, s.Replicas, s.UpdatedReplicas, s.AvailableReplicas, replicas)
		if s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == replicas && s.AvailableReplicas == replicas && s.Replicas == replicas {
			if problem := c.podsProblem(ctx, t, ns, d, image); problem == "" {
				return
			} else {
				last += "; " + problem
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (c *cluster) podsProblem(ctx context.Context, t *testing.T, ns string, d appsv1.Deployment, image string) string {
	var sel []string
	for k, v := range d.Spec.Selector.MatchLabels {
		sel = append(sel, k+"="+v)
	}
	var pods corev1.PodList
	if err := c.get(ctx, "/api/v1/namespaces/"+ns+"/pods?labelSelector="+url.QueryEscape(strings.Join(sel, ",")), &pods); err != nil {
		t.Fatal(err)
	}
	live := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			return "pod " + p.Name + " is terminating"
		}
		live++
		ready := false
		for _, cond := range p.Status.Conditions {
			ready = ready || cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue
		}
		switch {
		case p.Spec.Containers[0].Image != image:
			return fmt.Sprintf("pod %s runs %s", p.Name, p.Spec.Containers[0].Image)
		case !strings.HasPrefix(p.Spec.NodeName, "kwok-node-"):
			return fmt.Sprintf("pod %s on node %q", p.Name, p.Spec.NodeName)
		case p.Status.Phase != corev1.PodRunning || !ready:
			return fmt.Sprintf("pod %s is %s, ready %v", p.Name, p.Status.Phase, ready)
		case p.Labels[stack.LabelTrack] != d.Spec.Selector.MatchLabels[stack.LabelTrack]:
			return fmt.Sprintf("pod %s has track %q", p.Name, p.Labels[stack.LabelTrack])
		}
	}
	if live != int(*d.Spec.Replicas) {
		return fmt.Sprintf("%d pods, want %d", live, *d.Spec.Replicas)
	}
	return ""
}
