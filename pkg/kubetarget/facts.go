package kubetarget

import (
	"context"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// pressureConditions are the node conditions the cluster policy denies on.
var pressureConditions = []corev1.NodeConditionType{corev1.NodeDiskPressure, corev1.NodeMemoryPressure, corev1.NodePIDPressure}

// ClusterFacts reads the cluster policy's input: every node's readiness,
// pressure and capacity left (allocatable minus the requests of pods that
// are not project's own in any namespace), and what desired requests. A
// failed read leaves Nodes nil with the error, so the policy denies.
func ClusterFacts(ctx context.Context, c API, desired Desired) policy.ClusterInput {
	in := policy.ClusterInput{}
	in.NeedCPUMillis, in.NeedMemory = need(desired)
	var nl corev1.NodeList
	if err := c.List(ctx, kube.Nodes, "", "", &nl); err != nil {
		in.Error = err.Error()
		return in
	}
	var pl corev1.PodList
	if err := c.List(ctx, kube.Pods, "", "", &pl); err != nil {
		in.Error = err.Error()
		return in
	}
	type use struct{ cpu, mem int64 }
	used := map[string]use{}
	for _, p := range pl.Items {
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if p.Namespace == desired.Namespace && p.Labels[k8srender.LabelProject] == desired.Project {
			continue // the project's own pods are what the change replaces
		}
		u := used[p.Spec.NodeName]
		for _, ct := range p.Spec.Containers {
			u.cpu += ct.Resources.Requests.Cpu().MilliValue()
			u.mem += ct.Resources.Requests.Memory().Value()
		}
		used[p.Spec.NodeName] = u
	}
	in.Nodes = []policy.ClusterNode{}
	for _, n := range nl.Items {
		cn := policy.ClusterNode{
			Name:                 n.Name,
			Unschedulable:        n.Spec.Unschedulable,
			Pressure:             []string{},
			AllocatableCPUMillis: n.Status.Allocatable.Cpu().MilliValue(),
			AllocatableMemory:    n.Status.Allocatable.Memory().Value(),
			RequestedCPUMillis:   used[n.Name].cpu,
			RequestedMemory:      used[n.Name].mem,
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				cn.Ready = cond.Status == corev1.ConditionTrue
			}
			if slices.Contains(pressureConditions, cond.Type) && cond.Status == corev1.ConditionTrue {
				cn.Pressure = append(cn.Pressure, string(cond.Type))
			}
		}
		in.Nodes = append(in.Nodes, cn)
	}
	return in
}

// need sums the requests of every desired pod plus one surge pod per
// Deployment: the most a rolling update asks of the cluster at once. A
// StatefulSet replaces its pods stop-first: no surge.
func need(desired Desired) (cpu, mem int64) {
	for _, obj := range desired.Objects {
		var pods int64
		var spec corev1.PodSpec
		switch d := obj.(type) {
		case *appsv1.Deployment:
			pods, spec = 1, d.Spec.Template.Spec // the surge pod
			if d.Spec.Replicas != nil {
				pods += int64(*d.Spec.Replicas)
			}
		case *appsv1.StatefulSet:
			pods, spec = 1, d.Spec.Template.Spec // stop-first: no surge
			if d.Spec.Replicas != nil {
				pods = int64(*d.Spec.Replicas)
			}
		default:
			continue
		}
		for _, ct := range spec.Containers {
			cpu += pods * ct.Resources.Requests.Cpu().MilliValue()
			mem += pods * ct.Resources.Requests.Memory().Value()
		}
	}
	return cpu, mem
}
