package controller

import (
	"context"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/docker"
)

// triggered drains the loop's trigger and reports whether a reconcile was
// asked for within wait.
func triggered(d *Daemon, wait time.Duration) bool {
	select {
	case <-d.trigger:
		return true
	case <-time.After(wait):
		return false
	}
}

// A container killed before the event stream opened (the daemon starting)
// sends no event the stream delivers: the watch asks for a reconcile of
// its own once open, and that reconcile heals the container. Without it
// the container stayed dead until the resync (30 s).
func TestWatchCatchesUpOnWhatHappenedBeforeItOpened(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.mustConverge()
	apps := fake.Names(h.fe.ByRole(stack.RoleApp))
	if err := h.fe.Kill(apps[0]); err != nil {
		t.Fatal(err)
	}
	for len(h.d.trigger) > 0 {
		<-h.d.trigger
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.d.target.Watch(ctx, h.d.Enqueue) }()
	defer func() { cancel(); <-done }()
	// docker.EventSettle is a second; ten leave room for a loaded host.
	if !triggered(h.d, 10*docker.EventSettle) {
		t.Fatal("the watch opened after a kill asked for no reconcile")
	}
	h.mustConverge()
	if got := h.running(); got != "stable:app:1×2" {
		t.Errorf("running %s after the catch-up reconcile, want both replicas", got)
	}
}

// An owned container's event asks for a reconcile at once and for another
// docker.EventSettle after the last event: Docker lists a container as running
// for a moment after its die event, so the first may see nothing to heal.
func TestWatchReconcilesAgainAfterTheEventsSettle(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	h.mustConverge()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.d.target.Watch(ctx, h.d.Enqueue) }()
	defer func() { cancel(); <-done }()
	if !triggered(h.d, 10*docker.EventSettle) { // the catch-up of the opening
		t.Fatal("no reconcile asked for when the watch opened")
	}
	apps := fake.Names(h.fe.ByRole(stack.RoleApp))
	if err := h.fe.Kill(apps[0]); err != nil {
		t.Fatal(err)
	}
	if !triggered(h.d, 10*docker.EventSettle) {
		t.Fatal("the die event asked for no reconcile")
	}
	// The loop ran that reconcile (the trigger is drained); a second one
	// follows the settle.
	if !triggered(h.d, 10*docker.EventSettle) {
		t.Fatal("no second reconcile after the events settled")
	}
}
