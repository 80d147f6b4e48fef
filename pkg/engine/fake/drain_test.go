package fake_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// An obsolete container is removed only once the nginx workers that could
// still send it requests have exited: while they drain (finishing long
// requests) the old containers keep running; once they exit, removal
// follows at once instead of after the full drain bound. Without a list
// of the workers the drain waits its whole bound.
func TestObsoleteContainersOutliveTheOldWorkers(t *testing.T) {
	h := newHarness(t)
	h.r.Drain = 5 * time.Second
	h.r.AppliedPath = filepath.Join(t.TempDir(), "applied.json")
	h.mustConverge("")
	h.image = "swift-deploy-1-node:v2"
	h.f.HoldOldWorkers("demo-nginx")
	const holdFor = 400 * time.Millisecond
	var mu sync.Mutex
	var released, removed, reloaded time.Time
	h.f.BeforeCall(func(op, _ string) {
		mu.Lock()
		defer mu.Unlock()
		switch op {
		case fake.OpSignal:
			go func() {
				time.Sleep(holdFor)
				mu.Lock()
				released = time.Now()
				mu.Unlock()
				h.f.ReleaseOldWorkers()
			}()
		case fake.OpRemove:
			if removed.IsZero() {
				removed = time.Now()
			}
		}
	})
	start := time.Now()
	if _, err := h.converge(bg, ""); err != nil {
		t.Fatal(err)
	}
	h.f.BeforeCall(nil)
	mu.Lock()
	defer mu.Unlock()
	if removed.IsZero() || released.IsZero() {
		t.Fatalf("removed %v, released %v", removed, released)
	}
	if removed.Before(released) {
		t.Errorf("an old container was removed %s before the old workers exited", released.Sub(removed))
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the change took %s: the drain waited for its bound, not for the workers", took)
	}
	if got := len(h.f.ByImage("swift-deploy-1-node:v1")); got != 0 {
		t.Errorf("%d old containers left", got)
	}

	// The engine cannot list nginx's processes: the drain waits the whole
	// bound before the old containers go.
	h.r.Drain = 600 * time.Millisecond
	h.image = ""
	h.f.FailAlways(fake.OpTop, errors.New("top: injected"))
	removed = time.Time{}
	mu.Unlock()
	h.f.BeforeCall(func(op, _ string) {
		mu.Lock()
		defer mu.Unlock()
		if op == fake.OpRemove && removed.IsZero() {
			removed = time.Now()
		}
	})
	h.r.Record = func(event, _ string, _ map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		if event == "nginx_reloaded" {
			reloaded = time.Now()
		}
	}
	_, err := h.converge(context.Background(), "")
	mu.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if wait := removed.Sub(reloaded); wait < h.r.Drain-50*time.Millisecond {
		t.Errorf("without a process list the old containers went %s after the reload, want the full %s", wait, h.r.Drain)
	}
	if n := len(h.f.ByRole(stack.RoleApp)); n != 2 {
		t.Errorf("%d app containers, want 2", n)
	}
}
