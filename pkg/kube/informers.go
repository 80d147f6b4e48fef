package kube

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Informer is one informer started on demand, beside the project's Cache:
// the kinds the daemon's Role grants only for some manifests (Secrets,
// volume claims), the image pull Secret read by name, and the cluster
// policy's nodes and pods. Until it has listed, its caller reads the API
// instead (Synced says which); an informer the daemon may not list (an
// older Role) never syncs and keeps retrying, with client-go's backoff,
// while the caller keeps reading directly.
type Informer struct {
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
	mu     sync.Mutex
	err    error
}

// Synced: the informer has listed, its store is what the server has.
func (i *Informer) Synced() bool { return i != nil && i.inf.HasSynced() }

// List is every object in the store (pointers the caller must not
// change).
func (i *Informer) List() []any { return i.inf.GetStore().List() }

// Get is the object ns/name from the store.
func (i *Informer) Get(ns, name string) (any, bool) {
	key := name
	if ns != "" {
		key = ns + "/" + name
	}
	v, ok, err := i.inf.GetStore().GetByKey(key)
	return v, ok && err == nil
}

// Err is the last error of the informer's list or watch: why it has not
// synced, if it has not.
func (i *Informer) Err() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.err
}

// Stop ends the informer.
func (i *Informer) Stop() {
	if i != nil {
		i.cancel()
	}
}

// run starts inf under ctx, its list and watch errors recorded (not
// logged: the caller reads directly meanwhile, and its direct read's
// error is the one it reports).
func run(ctx context.Context, inf cache.SharedIndexInformer, transform cache.TransformFunc) *Informer {
	ctx, cancel := context.WithCancel(ctx)
	i := &Informer{inf: inf, cancel: cancel}
	_ = inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		i.mu.Lock()
		i.err = err
		i.mu.Unlock()
	})
	if transform != nil {
		_ = inf.SetTransform(transform)
	}
	go inf.Run(ctx.Done())
	return i
}

func selecting(labels, fields string) func(*metav1.ListOptions) {
	return func(o *metav1.ListOptions) { o.LabelSelector, o.FieldSelector = labels, fields }
}

// StartSecrets watches the Secrets of ns that labels selects.
func (c *Client) StartSecrets(ctx context.Context, ns, labels string) *Informer {
	return run(ctx, coreinformers.NewFilteredSecretInformer(c.cs, ns, 0, cache.Indexers{}, selecting(labels, "")), nil)
}

// StartSecret watches the one Secret ns/name: a list and watch with a
// metadata.name field selector, which RBAC authorizes by a rule's
// resourceNames (the daemon may not list the namespace's Secrets).
func (c *Client) StartSecret(ctx context.Context, ns, name string) *Informer {
	return run(ctx, coreinformers.NewFilteredSecretInformer(c.cs, ns, 0, cache.Indexers{}, selecting("", "metadata.name="+name)), nil)
}

// StartClaims watches the PersistentVolumeClaims of ns that labels
// selects.
func (c *Client) StartClaims(ctx context.Context, ns, labels string) *Informer {
	return run(ctx, coreinformers.NewFilteredPersistentVolumeClaimInformer(c.cs, ns, 0, cache.Indexers{}, selecting(labels, "")), nil)
}

// StartNodes watches every node, each kept as the cluster policy reads
// it (readiness and pressure, allocatable, unschedulable): a node's image
// list and managed fields, most of its size, are dropped.
func (c *Client) StartNodes(ctx context.Context) *Informer {
	return run(ctx, coreinformers.NewFilteredNodeInformer(c.cs, 0, cache.Indexers{}, nil), slimNode)
}

// ScheduledPods selects the pods that hold requests on a node: scheduled
// and not finished.
const ScheduledPods = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"

// StartScheduledPods watches the pods of every namespace that hold
// requests on a node, each kept as the cluster policy reads it (name,
// namespace, labels, node, phase, each container's requests).
func (c *Client) StartScheduledPods(ctx context.Context) *Informer {
	return run(ctx, coreinformers.NewFilteredPodInformer(c.cs, "", 0, cache.Indexers{}, selecting("", ScheduledPods)), slimPod)
}

func slimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil // a tombstone
	}
	out := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Labels: n.Labels}}
	out.Spec.Unschedulable = n.Spec.Unschedulable
	out.Status.Allocatable = n.Status.Allocatable
	for _, c := range n.Status.Conditions {
		out.Status.Conditions = append(out.Status.Conditions, corev1.NodeCondition{Type: c.Type, Status: c.Status})
	}
	return out, nil
}

func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion, Labels: p.Labels}}
	out.Spec.NodeName = p.Spec.NodeName
	for _, c := range p.Spec.Containers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Resources: corev1.ResourceRequirements{Requests: c.Resources.Requests}})
	}
	out.Status.Phase = p.Status.Phase
	return out, nil
}
