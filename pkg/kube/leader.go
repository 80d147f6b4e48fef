package kube

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Election is one daemon's candidacy for the Lease of a namespace.
type Election struct {
	Namespace, Lease, Identity string
	// LeaseDuration is how long a lease holds without renewal (default
	// 15s). RenewDeadline (default 2/3 of it) is how long the leader
	// retries a renewal before it stops leading. RetryPeriod (default
	// DefaultRetryPeriod) is how often the leader renews and candidates
	// look: a leader killed without releasing the Lease is replaced
	// within LeaseDuration + TakeoverSlack(RetryPeriod).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// OnNewLeader is told each identity seen holding the Lease.
	OnNewLeader func(identity string)
}

// Elect runs e until ctx ends: while this daemon holds the Lease, lead
// runs with a context that ends when it loses it. A lost lease is
// campaigned for again (the daemon stays up, read-only, meanwhile). At
// ctx's end a held lease is released, so a stopped leader is replaced
// at once, not after LeaseDuration.
func (c *Client) Elect(ctx context.Context, e Election, lead func(ctx context.Context), lost func()) error {
	if e.LeaseDuration <= 0 {
		e.LeaseDuration = 15 * time.Second
	}
	if e.RenewDeadline <= 0 {
		e.RenewDeadline = e.LeaseDuration * 2 / 3
	}
	if e.RetryPeriod <= 0 {
		e.RetryPeriod = DefaultRetryPeriod(e.LeaseDuration)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Lease},
		Client:     c.cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   e.LeaseDuration,
		RenewDeadline:   e.RenewDeadline,
		RetryPeriod:     e.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            e.Lease,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: lead,
			OnStoppedLeading: lost,
			OnNewLeader: func(id string) {
				if e.OnNewLeader != nil {
					e.OnNewLeader(id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election on Lease %s/%s: %w", e.Namespace, e.Lease, err)
	}
	for ctx.Err() == nil {
		le.Run(ctx) // returns when leadership is lost or ctx ends
	}
	return nil
}

// DefaultRetryPeriod is 1/30 of the lease (at least 100ms): a killed
// leader is replaced within the lease duration and TakeoverSlack of it,
// under 15% of the lease (0.88s with a 6s lease, 2.2s with the default
// 15s). client-go's own example, 1/7, let the takeover pass the lease by
// up to 63% (measured 5.4-7.5s with a 6s lease). The price is the
// leader's renewal, one Lease update per retry period (two a second with
// a 15s lease), and each candidate's read as often.
func DefaultRetryPeriod(lease time.Duration) time.Duration {
	return max(lease/30, 100*time.Millisecond)
}

// TakeoverSlack is how far past the lease duration a candidate may take
// over from a leader killed without releasing the Lease, with retry
// period rp: a candidate counts the lease from when it last saw the
// record change, not from the record's renew time (clocks may differ),
// and tries every rp jittered by client-go up to 1.2 more
// (leaderelection.JitterFactor). So it sees the last renewal up to 2.2
// rp after it was made, and tries again up to 2.2 rp after the lease
// ran out from then.
func TakeoverSlack(rp time.Duration) time.Duration {
	return 2 * time.Duration(float64(rp)*(1+leaderelection.JitterFactor))
}

// MinLeaseDuration is the shortest lease that keeps one leader: a killed
// leader stops acting within its renew deadline (2/3 of the lease) and
// two retry periods, and a candidate may take over up to one second and
// a retry period before the lease runs out (the record's renew time is
// in whole seconds: renewals within a second look alike to it).
const MinLeaseDuration = 4 * time.Second

// CheckLeaseDuration refuses a lease the election cannot keep: under
// MinLeaseDuration, or not whole seconds (the Lease records whole
// seconds; the rest would be dropped). 0 is the default, 15s.
func CheckLeaseDuration(d time.Duration) error {
	switch {
	case d == 0:
		return nil
	case d < MinLeaseDuration:
		return fmt.Errorf("%s is under %s: a killed leader could still be acting when another takes over", d, MinLeaseDuration)
	case d%time.Second != 0:
		return fmt.Errorf("%s is not whole seconds (the Lease records whole seconds)", d)
	}
	return nil
}
