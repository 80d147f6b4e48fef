package kubernetes

import (
	"context"
	"time"
)

// Watch runs the informers' events into reconciles (a deleted canary
// Service or an edited image is reverted, a rollout's progress is
// noticed): a burst of events settles for the debounce, then one
// reconcile is enqueued. It also runs the leader election.
func (t *Target) Watch(ctx context.Context, kick func()) {
	d := t.d
	events := make(chan struct{}, 1)
	t.api.OnChange(func() {
		select {
		case events <- struct{}{}:
		default:
		}
	})
	defer t.api.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.runElection(ctx)
	}()
	defer func() { <-done }()
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-events:
			if debounce == nil {
				debounce = time.After(d.Debounce)
			}
		case <-debounce:
			debounce = nil
			kick()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
