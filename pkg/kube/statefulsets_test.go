package kube

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	gatewayfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"
)

// stsCache is a Cache on a fake clientset whose StatefulSets' list
// answers err, counting the lists.
func stsCache(t *testing.T, err error) (*Cache, *atomic.Int32) {
	t.Helper()
	cs := fake.NewClientset()
	var lists atomic.Int32
	cs.PrependReactor("list", "statefulsets", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		return true, nil, err
	})
	c := NewFromClients(cs, gatewayfake.NewSimpleClientset(), dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()))
	k, serr := c.StartCache(context.Background(), "ns", CacheSelectors{Owned: "p=shop", Pods: "p=shop"}, 10*time.Second, nil)
	if serr != nil {
		t.Fatal(serr)
	}
	t.Cleanup(k.Stop)
	return k, &lists
}

// A StatefulSets' informer that never lists: a reconcile waiting for it
// does not hold status (StatefulSets answers at once, nil), a failed wait
// is answered at once by the calls that follow (backoff) and no call
// starts another watcher.
func TestStatefulSetsWaitHoldsNoLockAndBacksOff(t *testing.T) {
	k, lists := stsCache(t, errors.New("the server is not answering"))
	waited := make(chan error, 1)
	go func() { waited <- k.StartStatefulSets(context.Background(), 700*time.Millisecond) }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if l := k.StatefulSets(); l != nil {
		t.Fatal("a lister before the informer listed")
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("StatefulSets took %s while a start waited: it waits behind the start's lock", d)
	}
	if err := <-waited; err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the wait's timeout", err)
	}
	before := lists.Load()
	for range 5 {
		start := time.Now()
		if err := k.StartStatefulSets(context.Background(), 700*time.Millisecond); err == nil {
			t.Fatal("no error from an informer that never listed")
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("a call after a failed wait waited %s: want the last error at once (backoff)", d)
		}
	}
	// The reflector's own backoff retries the list (800ms at first): five
	// calls start no watcher of their own.
	if n := lists.Load() - before; n > 1 {
		t.Fatalf("%d lists during five calls: each call started a watcher", n)
	}
}

// A list the Role forbids (an older Role) ends the wait at once, with an
// error IsForbidden reports, instead of after the sync timeout.
func TestStatefulSetsForbiddenAnswersAtOnce(t *testing.T) {
	k, _ := stsCache(t, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "statefulsets"}, "", errors.New("RBAC: no rule")))
	start := time.Now()
	err := k.StartStatefulSets(context.Background(), 10*time.Second)
	if !IsForbidden(err) {
		t.Fatalf("err = %v, want forbidden", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a forbidden list took %s to report", d)
	}
}
