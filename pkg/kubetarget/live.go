package kubetarget

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
)

// Live is the target's view of a real API server: writes go to the
// server, reads come from the informers' cache of the project (started
// on first use, restarted if the project's name changes). After each
// write it waits until the cache has seen it, so the next plan is made
// on what was just written and never repeats an op (nor journals a drift
// revert twice).
type Live struct {
	*kube.Client
	ns string
	// SyncTimeout bounds the informers' first list (default 30s).
	SyncTimeout time.Duration

	mu       sync.Mutex
	project  string
	starting *start
	cache    *kube.Cache
	changed  func()
	base     context.Context
	stop     context.CancelFunc
	// extras and cluster are informers started on demand (extras.go).
	extras  extraInformers
	cluster clusterInformers
}

// NewLive is Live over c for namespace ns.
func NewLive(c *kube.Client, ns string) *Live {
	base, stop := context.WithCancel(context.Background())
	return &Live{Client: c, ns: ns, SyncTimeout: 30 * time.Second, base: base, stop: stop}
}

// OnChange sets what an informer event calls (the daemon's debounced
// reconcile).
func (l *Live) OnChange(f func()) {
	l.mu.Lock()
	l.changed = f
	l.mu.Unlock()
}

func (l *Live) notify() {
	l.mu.Lock()
	f := l.changed
	l.mu.Unlock()
	if f != nil {
		f()
	}
}

// Close stops the informers.
func (l *Live) Close() {
	l.stop()
	l.mu.Lock()
	l.cache, l.starting = nil, nil
	l.extras, l.cluster = extraInformers{}, clusterInformers{}
	l.mu.Unlock()
}

// Cache is the informers' cache of project, started on first use. The
// informers start (and sync, for at most SyncTimeout) in the background:
// a caller waits only as long as its ctx allows, so status answers in
// its own time while the API server is slow or away; a start that fails
// is tried again by the next call.
func (l *Live) Cache(ctx context.Context, project string) (*kube.Cache, error) {
	l.mu.Lock()
	if l.project != project || l.starting == nil {
		if l.cache != nil {
			l.cache.Stop()
			l.cache = nil
		}
		l.project = project
		st := &start{done: make(chan struct{})}
		l.starting = st
		go func() {
			k, err := l.StartCache(l.base, l.ns, CacheSelectors(project), l.SyncTimeout, func() { go l.notify() })
			l.mu.Lock()
			if l.starting == st {
				if err != nil {
					l.starting = nil // the next call starts again
				} else {
					l.cache = k
				}
			} else if k != nil {
				k.Stop() // another project's meanwhile
			}
			l.mu.Unlock()
			st.k, st.err = k, err
			close(st.done)
		}()
	}
	st := l.starting
	l.mu.Unlock()
	select {
	case <-st.done:
		return st.k, st.err
	case <-ctx.Done():
		return nil, fmt.Errorf("the informers of namespace %s have not listed yet: %w", l.ns, ctx.Err())
	}
}

// start is one start of the informers.
type start struct {
	done chan struct{}
	k    *kube.Cache
	err  error
}

// Observe reads the project's objects from the cache; its Secrets and
// volume claims, when x asks (the Role grants them only for some
// manifests), and its pull Secret from informers started on demand, from
// the API until those have listed (extras.go). StatefulSets the Role
// does not grant are Unseen, not an error.
func (l *Live) Observe(ctx context.Context, project string, x Extras) (Observed, error) {
	k, err := l.Cache(ctx, project)
	if err != nil {
		return emptyObserved(), err
	}
	var forbidden error
	if x.StatefulSets {
		if err := k.StartStatefulSets(ctx, l.SyncTimeout); kube.IsForbidden(err) {
			forbidden = err
		} else if err != nil {
			return emptyObserved(), err
		}
	}
	o, err := FromCache(k)
	if err != nil {
		return o, err
	}
	if forbidden != nil {
		o.unseen(UnseenStatefulSets, forbidden)
	}
	return o, l.observeExtras(ctx, project, x, &o)
}

// Apply applies, then waits until the cache holds the answer.
func (l *Live) Apply(ctx context.Context, ref kube.Ref, body []byte, o kube.ApplyOptions) ([]byte, error) {
	out, err := l.Client.Apply(ctx, ref, body, o)
	if err != nil || o.DryRun {
		return out, err
	}
	var v struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if json.Unmarshal(out, &v) == nil {
		l.await(ctx, ref, func(rv string, ok bool) bool { return ok && newer(rv, v.Metadata.ResourceVersion) })
	}
	return out, nil
}

// Delete deletes, then waits until the object is gone from the cache
// or marked for deletion there (a Deployment's pods go in the
// background).
func (l *Live) Delete(ctx context.Context, ref kube.Ref) error {
	if err := l.Client.Delete(ctx, ref); err != nil {
		return err
	}
	l.await(ctx, ref, func(_ string, ok bool) bool { return !ok })
	return nil
}

// await polls the cache for ref until done says so, for at most 5s: the
// informer's watch is normally a few milliseconds behind; past that the
// next plan sees it (an apply is idempotent).
func (l *Live) await(ctx context.Context, ref kube.Ref, done func(rv string, ok bool) bool) {
	l.mu.Lock()
	k := l.cache
	l.mu.Unlock()
	version := l.extraVersion(ref)
	if k != nil && (ref.Resource == kube.Deployments || ref.Resource == kube.StatefulSets || ref.Resource == kube.Services || ref.Resource == kube.HTTPRoutes) {
		version = func() (string, bool) { return cachedVersion(k, ref) }
	}
	if version == nil {
		return
	}
	if ref.Resource == kube.StatefulSets && k.StatefulSets() == nil {
		return // not observed: nothing to wait for
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		rv, ok := version()
		if done(rv, ok) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func cachedVersion(k *kube.Cache, ref kube.Ref) (string, bool) {
	switch ref.Resource.Kind {
	case "Deployment":
		if d, err := k.Deployments.Deployments(ref.Namespace).Get(ref.Name); err == nil {
			return d.ResourceVersion, d.DeletionTimestamp == nil
		}
	case "StatefulSet":
		if l := k.StatefulSets(); l != nil {
			if s, err := l.StatefulSets(ref.Namespace).Get(ref.Name); err == nil {
				return s.ResourceVersion, s.DeletionTimestamp == nil
			}
		}
	case "Service":
		if s, err := k.Services.Services(ref.Namespace).Get(ref.Name); err == nil {
			return s.ResourceVersion, s.DeletionTimestamp == nil
		}
	case "HTTPRoute":
		if r, err := k.Routes.HTTPRoutes(ref.Namespace).Get(ref.Name); err == nil {
			return r.ResourceVersion, r.DeletionTimestamp == nil
		}
	}
	return "", false
}

// newer: resource version have is at least want. Resource versions are
// opaque, but etcd's are integers; anything else counts only when equal.
func newer(have, want string) bool {
	if have == want {
		return true
	}
	h, err1 := strconv.ParseUint(have, 10, 64)
	w, err2 := strconv.ParseUint(want, 10, 64)
	return err1 == nil && err2 == nil && h >= w
}
