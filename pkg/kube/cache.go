package kube

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
	gwlisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"
)

// Cache is what the informers hold of one project in one namespace: its
// own objects (label-selected by Owned), its pods and ReplicaSets
// (label-selected by Pods: they carry the pod template's labels, not the
// managed-by label) and the namespace's HorizontalPodAutoscalers (which
// are not the daemon's: an HPA that targets a Deployment owns its
// replicas). Reads are from memory: status never asks the API server.
type Cache struct {
	Namespace   string
	Deployments appslisters.DeploymentLister
	Services    corelisters.ServiceLister
	Routes      gwlisters.HTTPRouteLister
	Pods        corelisters.PodLister
	ReplicaSets appslisters.ReplicaSetLister
	HPAs        autoscalinglisters.HorizontalPodAutoscalerLister
	cancel      context.CancelFunc

	// The StatefulSets' informer starts only when asked (statefulsets.go).
	ctx        context.Context
	cs         kubernetes.Interface
	owned      string
	handler    cache.ResourceEventHandler
	stsMu      sync.Mutex
	sts        *stsRun
	stsErr     error     // the last failed wait's
	stsRetryAt time.Time // until then a call answers stsErr at once
	stsWait    time.Duration
}

// CacheSelectors are the label selectors of a Cache's informers.
type CacheSelectors struct {
	Owned, Pods string
}

// StartCache starts the informers of ns and waits (up to timeout) until
// each has listed once. changed is called on every add, update and delete
// of an owned object or an HPA (pods and ReplicaSets change with their
// Deployment's status, which is watched), and on a pod's new image pull
// failure (which does not change the Deployment). Stop ends the informers.
func (c *Client) StartCache(ctx context.Context, ns string, sel CacheSelectors, timeout time.Duration, changed func()) (*Cache, error) {
	ctx, cancel := context.WithCancel(ctx)
	tweak := func(s string) func(*metav1.ListOptions) {
		return func(o *metav1.ListOptions) { o.LabelSelector = s }
	}
	owned := informers.NewSharedInformerFactoryWithOptions(c.cs, 0, informers.WithNamespace(ns), informers.WithTweakListOptions(tweak(sel.Owned)))
	pods := informers.NewSharedInformerFactoryWithOptions(c.cs, 0, informers.WithNamespace(ns), informers.WithTweakListOptions(tweak(sel.Pods)))
	all := informers.NewSharedInformerFactoryWithOptions(c.cs, 0, informers.WithNamespace(ns))
	gw := gwinformers.NewSharedInformerFactoryWithOptions(c.gw, 0, gwinformers.WithNamespace(ns), gwinformers.WithTweakListOptions(tweak(sel.Owned)))

	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed() },
		UpdateFunc: func(any, any) { changed() },
		DeleteFunc: func(any) { changed() },
	}
	k := &Cache{Namespace: ns, cancel: cancel, ctx: ctx, cs: c.cs, owned: sel.Owned}
	if changed != nil {
		k.handler = h
	}
	dep := owned.Apps().V1().Deployments()
	svc := owned.Core().V1().Services()
	route := gw.Gateway().V1().HTTPRoutes()
	hpa := all.Autoscaling().V2().HorizontalPodAutoscalers()
	for _, inf := range []cache.SharedIndexInformer{dep.Informer(), svc.Informer(), route.Informer(), hpa.Informer()} {
		if changed != nil {
			if _, err := inf.AddEventHandler(h); err != nil {
				cancel()
				return nil, fmt.Errorf("informer handler: %w", err)
			}
		}
	}
	k.Deployments, k.Services, k.Routes, k.HPAs = dep.Lister(), svc.Lister(), route.Lister(), hpa.Lister()
	podInf := pods.Core().V1().Pods().Informer()
	if changed != nil {
		// A pod's status changes with its Deployment's, which is watched,
		// except a pull failure: a registry's refusal is a lasting
		// denial, reported at once rather than at the next resync.
		if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(old, cur any) {
			if pullWaitChanged(old, cur) {
				changed()
			}
		}}); err != nil {
			cancel()
			return nil, fmt.Errorf("informer handler: %w", err)
		}
	}
	k.Pods = pods.Core().V1().Pods().Lister()
	k.ReplicaSets = pods.Apps().V1().ReplicaSets().Lister()

	owned.Start(ctx.Done())
	pods.Start(ctx.Done())
	all.Start(ctx.Done())
	gw.Start(ctx.Done())
	wctx, wcancel := context.WithTimeout(ctx, timeout)
	defer wcancel()
	var missing []string
	for t, ok := range owned.WaitForCacheSync(wctx.Done()) {
		if !ok {
			missing = append(missing, t.String())
		}
	}
	for t, ok := range pods.WaitForCacheSync(wctx.Done()) {
		if !ok {
			missing = append(missing, t.String())
		}
	}
	for t, ok := range all.WaitForCacheSync(wctx.Done()) {
		if !ok {
			missing = append(missing, t.String())
		}
	}
	for t, ok := range gw.WaitForCacheSync(wctx.Done()) {
		if !ok {
			missing = append(missing, t.String())
		}
	}
	if len(missing) > 0 {
		cancel()
		return nil, fmt.Errorf("informers of namespace %s not synced within %s (can the daemon list and watch them?): %v", ns, timeout, missing)
	}
	return k, nil
}

// pullWaitChanged: a container of the pod now waits for its image
// (ErrImagePull, ImagePullBackOff) with a reason or message it did not
// have before.
func pullWaitChanged(old, cur any) bool {
	o, ok1 := old.(*corev1.Pod)
	c, ok2 := cur.(*corev1.Pod)
	if !ok1 || !ok2 {
		return false
	}
	was := map[string]corev1.ContainerStateWaiting{}
	for _, cs := range append(slices.Clone(o.Status.InitContainerStatuses), o.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			was[cs.Name] = *w
		}
	}
	for _, cs := range append(slices.Clone(c.Status.InitContainerStatuses), c.Status.ContainerStatuses...) {
		w := cs.State.Waiting
		if w == nil || (w.Reason != "ErrImagePull" && w.Reason != "ImagePullBackOff") {
			continue
		}
		if p, ok := was[cs.Name]; !ok || p.Reason != w.Reason || p.Message != w.Message {
			return true
		}
	}
	return false
}

// Stop ends the cache's informers.
func (k *Cache) Stop() { k.cancel() } // the StatefulSets' informer too: it runs on k.ctx
