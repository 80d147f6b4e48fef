package kube

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
)

// The StatefulSets' informer is not one of StartCache's: a Role rendered
// before the daemon observed StatefulSets may not grant them, and an
// informer that may not list never syncs, which would hold every other
// read back. It is started on the first StartStatefulSets and then kept:
// its reflector retries a failed list with client-go's own backoff, so a
// Role granted later is picked up without a new watcher.

// stsBackoff bounds how long StartStatefulSets answers a failed wait's
// error at once, without waiting again (doubling from the first).
var stsBackoff = struct{ first, max time.Duration }{time.Second, time.Minute}

// stsRun is the one StatefulSets' informer of a Cache.
type stsRun struct {
	inf    cache.SharedIndexInformer
	lister appslisters.StatefulSetLister
	mu     sync.Mutex
	err    error         // the reflector's last list or watch error
	failed chan struct{} // signalled (not closed) on each error
}

func (r *stsRun) lastErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// StatefulSets is the lister of the project's StatefulSets (an accessory
// of the named form runs as one), nil until its informer has listed.
// It never waits: status reads it while a reconcile starts the informer.
func (k *Cache) StatefulSets() appslisters.StatefulSetLister {
	k.stsMu.Lock()
	r := k.sts
	k.stsMu.Unlock()
	if r == nil || !r.inf.HasSynced() {
		return nil
	}
	return r.lister
}

// IsForbidden reports a 403 answer: the daemon's Role does not grant it.
func IsForbidden(err error) bool {
	var e *Error
	return (errors.As(err, &e) && e.Code == http.StatusForbidden) || apierrors.IsForbidden(err)
}

// StartStatefulSets starts the informer of the project's StatefulSets,
// once, and waits (within ctx and timeout, outside the Cache's lock) until
// it has listed. A list the server forbids (an older Role) ends the wait
// at once with an error IsForbidden reports. After a failed wait, calls
// answer that error without waiting until a backoff (1s, doubling up to a
// minute) has passed; the informer keeps retrying meanwhile.
func (k *Cache) StartStatefulSets(ctx context.Context, timeout time.Duration) error {
	k.stsMu.Lock()
	if k.sts == nil {
		r, err := k.startStatefulSets()
		if err != nil {
			k.stsMu.Unlock()
			return err
		}
		k.sts = r
	}
	r := k.sts
	if r.inf.HasSynced() {
		k.stsMu.Unlock()
		return nil
	}
	if time.Now().Before(k.stsRetryAt) {
		err := k.stsErr
		k.stsMu.Unlock()
		return err
	}
	k.stsMu.Unlock()

	err := k.waitStatefulSets(ctx, r, timeout)

	k.stsMu.Lock()
	defer k.stsMu.Unlock()
	switch {
	case err == nil:
		k.stsErr, k.stsRetryAt, k.stsWait = nil, time.Time{}, 0
	case ctx.Err() != nil:
		// The caller gave up: no word on the informer, no backoff.
	default:
		k.stsWait = min(max(2*k.stsWait, stsBackoff.first), stsBackoff.max)
		k.stsErr, k.stsRetryAt = err, time.Now().Add(k.stsWait)
	}
	return err
}

// startStatefulSets makes and runs the informer, a child of the cache's
// context (Stop ends it). k.stsMu is held.
func (k *Cache) startStatefulSets() (*stsRun, error) {
	inf := appsinformers.NewFilteredStatefulSetInformer(k.cs, k.Namespace, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
		func(o *metav1.ListOptions) { o.LabelSelector = k.owned })
	r := &stsRun{inf: inf, lister: appslisters.NewStatefulSetLister(inf.GetIndexer()), failed: make(chan struct{}, 1)}
	if k.handler != nil {
		if _, err := inf.AddEventHandler(k.handler); err != nil {
			return nil, fmt.Errorf("StatefulSet informer handler: %w", err)
		}
	}
	_ = inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		select {
		case r.failed <- struct{}{}:
		default:
		}
	})
	go inf.Run(k.ctx.Done())
	return r, nil
}

// waitStatefulSets waits until r has listed, its list is forbidden, ctx
// ends or timeout passes.
func (k *Cache) waitStatefulSets(ctx context.Context, r *stsRun, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if r.inf.HasSynced() {
			return nil
		}
		if err := r.lastErr(); IsForbidden(err) {
			return fmt.Errorf("the daemon may not list the StatefulSets of namespace %s (its Role grants no statefulsets: apply the RBAC swiftctl render writes): %w", k.Namespace, err)
		}
		select {
		case <-tick.C:
		case <-r.failed:
		case <-ctx.Done():
			return fmt.Errorf("the StatefulSets' informer of namespace %s has not listed yet: %w", k.Namespace, ctx.Err())
		case <-timer.C:
			why := "can the daemon list and watch statefulsets?"
			if err := r.lastErr(); err != nil {
				why = err.Error()
			}
			return fmt.Errorf("the StatefulSets' informer of namespace %s did not sync within %s (%s): %w", k.Namespace, timeout, why, context.DeadlineExceeded)
		}
	}
}
