package kube

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	appslisters "k8s.io/client-go/listers/apps/v1"
)

// StatefulSets is the lister of the project's StatefulSets (an accessory
// of the named form runs as one), nil until StartStatefulSets has synced.
func (k *Cache) StatefulSets() appslisters.StatefulSetLister {
	k.stsMu.Lock()
	defer k.stsMu.Unlock()
	return k.sts
}

// StartStatefulSets starts the informer of the project's StatefulSets,
// once, and waits (within ctx and timeout) until it has listed. It is not
// one of StartCache's informers because the daemon's Role grants
// statefulsets only when the manifest has an accessory: an informer that
// may not list never syncs, and would hold every other read back. An
// informer that does not sync in time is stopped; the next call starts it
// again.
func (k *Cache) StartStatefulSets(ctx context.Context, timeout time.Duration) error {
	k.stsMu.Lock()
	defer k.stsMu.Unlock()
	if k.sts != nil {
		return nil
	}
	ictx, cancel := context.WithCancel(k.ctx)
	f := informers.NewSharedInformerFactoryWithOptions(k.cs, 0, informers.WithNamespace(k.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = k.owned }))
	inf := f.Apps().V1().StatefulSets()
	if k.handler != nil {
		if _, err := inf.Informer().AddEventHandler(k.handler); err != nil {
			cancel()
			return fmt.Errorf("StatefulSet informer handler: %w", err)
		}
	}
	lister := inf.Lister()
	f.Start(ictx.Done())
	wctx, wcancel := context.WithTimeout(ctx, timeout)
	defer wcancel()
	for _, ok := range f.WaitForCacheSync(wctx.Done()) {
		if !ok {
			cancel()
			return fmt.Errorf("the StatefulSets' informer of namespace %s did not sync within %s (can the daemon list and watch statefulsets?): %w", k.Namespace, timeout, wctx.Err())
		}
	}
	k.sts, k.stsStop = lister, cancel // cancelled with the cache's context
	return nil
}
