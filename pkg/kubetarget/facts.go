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
// are not project's own in any namespace), and what desired requests.
// Nodes and pods come from informers when c has them and they have listed
// (Live: a gate or a status call then asks the API server nothing), else
// from one list each. A failed read leaves Nodes nil with the error, so
// the policy denies.
func ClusterFacts(ctx context.Context, c API, desired Desired) policy.ClusterInput {
	in := policy.ClusterInput{}
	in.NeedCPUMillis, in.NeedMemory = need(desired)
	var nodes []corev1.Node
	var pods []corev1.Pod
	cached := false
	if cc, ok := c.(clusterCache); ok {
		nodes, pods, cached = cc.ClusterObjects()
	}
	if !cached {
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
		nodes, pods = nl.Items, pl.Items
	}
	type use struct{ cpu, mem int64 }
	used := map[string]use{}
	for _, p := range pods {
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
	for _, n := range nodes {
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
// Deployment: the most a rolling update asks of the cluster at once.
func need(desired Desired) (cpu, mem int64) {
	for _, obj := range desired.Objects {
		d, ok := obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		pods := int64(1) // the surge pod
		if d.Spec.Replicas != nil {
			pods += int64(*d.Spec.Replicas)
		}
		for _, ct := range d.Spec.Template.Spec.Containers {
			cpu += pods * ct.Resources.Requests.Cpu().MilliValue()
			mem += pods * ct.Resources.Requests.Memory().Value()
		}
	}
	return cpu, mem
}

// clusterInformers are the cluster policy's nodes and scheduled pods.
type clusterInformers struct {
	nodes, pods *kube.Informer
}

// ClusterObjects are the cluster policy's nodes and the pods scheduled on
// them, from informers started on the first call: ok is false until both
// have listed (the caller lists from the API meanwhile).
func (l *Live) ClusterObjects() (nodes []corev1.Node, pods []corev1.Pod, ok bool) {
	l.mu.Lock()
	if l.cluster.nodes == nil {
		l.cluster.nodes, l.cluster.pods = l.StartNodes(l.base), l.StartScheduledPods(l.base)
	}
	ci := l.cluster
	l.mu.Unlock()
	if !ci.nodes.Synced() || !ci.pods.Synced() {
		return nil, nil, false
	}
	for _, v := range ci.nodes.List() {
		nodes = append(nodes, *v.(*corev1.Node))
	}
	for _, v := range ci.pods.List() {
		pods = append(pods, *v.(*corev1.Pod))
	}
	return nodes, pods, true
}

// clusterCache serves the cluster policy's objects from memory once it
// can (Live).
type clusterCache interface {
	ClusterObjects() (nodes []corev1.Node, pods []corev1.Pod, ok bool)
}
