package kube

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	gatewayfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"
)

// A leader that stops renewing without releasing the Lease (a SIGKILL:
// its updates fail from then on) is replaced by the standby within the
// lease duration and TakeoverSlack, through client-go's elector, and no
// sooner than the lease allows: the standby sees a renewal only when the
// record changes, and the record's renew time is kept in whole seconds
// (metav1.Time), so it may count from up to 1s before the last renewal.
// The killed one stops leading before the standby starts (never two
// leaders: its renew deadline, 2/3 of the lease, and two retry periods
// end before the lease less that second).
func TestKilledLeaderIsReplacedWithinTheLeaseAndTheSlack(t *testing.T) {
	cs := fake.NewClientset()
	var killed atomic.Bool
	cs.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l, ok := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		// Once killed, a writes nothing: neither its renewals nor the
		// release (an empty holder) client-go makes when renewing fails.
		if killed.Load() && ok && (l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "a" || *l.Spec.HolderIdentity == "") {
			return true, nil, errors.New("daemon a was killed")
		}
		return false, nil, nil
	})
	c := NewFromClients(cs, gatewayfake.NewSimpleClientset(), dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()))
	const lease = 4 * time.Second
	rp := DefaultRetryPeriod(lease)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type at struct {
		who  string
		lead bool
		when time.Time
	}
	events := make(chan at, 16)
	elect := func(id string) {
		go func() {
			_ = c.Elect(ctx, Election{Namespace: "ns", Lease: "shop-swiftdeployd", Identity: id, LeaseDuration: lease},
				func(context.Context) { events <- at{id, true, time.Now()} },
				func() { events <- at{id, false, time.Now()} })
		}()
	}
	next := func() at {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no election event in 10s")
			return at{}
		}
	}
	elect("a")
	if e := next(); e.who != "a" || !e.lead {
		t.Fatalf("first event %+v, want a leading", e)
	}
	elect("b")
	time.Sleep(3 * rp) // b has seen a's renewals
	killed.Store(true)
	kill := time.Now()
	lost, won := next(), next()
	if lost.who != "a" || lost.lead || won.who != "b" || !won.lead {
		t.Fatalf("after the kill: %+v then %+v, want a to stop leading, then b to lead", lost, won)
	}
	took, most := won.when.Sub(kill), lease+TakeoverSlack(rp)+200*time.Millisecond
	t.Logf("killed leader replaced after %s (lease %s, retry period %s, slack %s); it stopped leading after %s",
		took.Round(time.Millisecond), lease, rp, TakeoverSlack(rp), lost.when.Sub(kill).Round(time.Millisecond))
	if took > most {
		t.Errorf("b took over %s after the kill, want at most %s", took, most)
	}
	if least := lease - rp - time.Second - 50*time.Millisecond; took < least {
		t.Errorf("b took over %s after the kill, before the lease can have run out (%s)", took, least)
	}
}

func TestCheckLeaseDuration(t *testing.T) {
	for d, ok := range map[time.Duration]bool{0: true, 4 * time.Second: true, 15 * time.Second: true,
		time.Second: false, 3 * time.Second: false, 5500 * time.Millisecond: false} {
		if err := CheckLeaseDuration(d); (err == nil) != ok {
			t.Errorf("CheckLeaseDuration(%s) = %v, want ok %v", d, err, ok)
		}
	}
}
