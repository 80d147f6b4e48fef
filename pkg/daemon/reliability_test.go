package daemon

import (
	"context"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
)

// A daemon that dies in the middle of down (here: after nginx is removed,
// before the apps) leaves the state saying down and app containers
// behind. The restarted daemon finishes the down instead of leaving them
// running while status says down; it journals that once.
func TestInterruptedDownIsFinishedOnRestart(t *testing.T) {
	h := canaryHarness(t)
	ctx, crash := context.WithCancel(context.Background())
	h.fe.BeforeCall(func(op, target string) {
		if op == fake.OpRemove && target != "demo-nginx" {
			crash()
		}
	})
	_ = h.d.down(ctx, "alice", func(string) {})
	h.fe.BeforeCall(nil)
	if len(h.fe.ByRole("app")) == 0 {
		t.Fatal("the crash came too late: every app container is already gone")
	}
	h.d.jr.Close()

	h.d = h.newDaemon()
	for i := 0; i < 2; i++ { // a second resync has nothing more to do
		if err := h.reconcile(); err != nil {
			t.Fatalf("reconcile after restart: %v", err)
		}
	}
	if all := h.fe.Snapshot(); len(all) != 0 {
		t.Errorf("after restart: %v still exist, yet status says down", fake.Names(all))
	}
	if s := h.status(); !s.Down {
		t.Errorf("status after restart: down=%v", s.Down)
	}
	if n := count(h.events(), eventDown); n != 1 {
		t.Errorf("down journaled %d times, want once (by the daemon that finished it)", n)
	}
}
