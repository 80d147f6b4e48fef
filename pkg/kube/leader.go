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
	// LeaseDuration is how long a lease holds without renewal: a leader
	// killed without releasing it is replaced within this (default 15s).
	// RenewDeadline (default 2/3 of it) is how long the leader retries a
	// renewal before it stops leading; RetryPeriod (default 1/7 of it)
	// is how often candidates try.
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
		e.RetryPeriod = max(e.LeaseDuration/7, 100*time.Millisecond)
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
