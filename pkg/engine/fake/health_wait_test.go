package fake_test

import (
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
)

// A new container that does not answer at once is probed again within
// milliseconds, not a fixed 100 ms later, and the health wait does not list
// every container of the project on every probe round.
func TestHealthWaitRetriesSoonWithoutListingEveryRound(t *testing.T) {
	h := newHarness(t)
	h.mustConverge("")
	h.image = "swift-deploy-1-node:v2"
	h.r.HealthTimeout = 10 * time.Second
	h.f.SetHealthy("swift-deploy-1-node:v2", false)
	const unhealthyFor = 400 * time.Millisecond
	var mu sync.Mutex
	var probes []time.Time
	lists, waiting := 0, false
	h.f.BeforeCall(func(op, _ string) {
		mu.Lock()
		defer mu.Unlock()
		switch op {
		case fake.OpProbe:
			if len(probes) == 0 {
				waiting = true
				go func() {
					time.Sleep(unhealthyFor)
					h.f.SetHealthy("swift-deploy-1-node:v2", true)
				}()
			}
			probes = append(probes, time.Now())
		case fake.OpListContainers:
			if waiting {
				lists++
			}
		case fake.OpSignal:
			waiting = false
		}
	})
	if _, err := h.converge(bg, ""); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(probes) < 4 {
		t.Fatalf("%d probes in %s", len(probes), unhealthyFor)
	}
	// Two containers are probed per round: the first retry of either is
	// the third probe.
	if gap := probes[2].Sub(probes[0]); gap > 60*time.Millisecond {
		t.Errorf("first retry %s after the first probe, want about 10ms", gap)
	}
	if lists > 3 {
		t.Errorf("the containers were listed %d times while %s of probing ran", lists, unhealthyFor)
	}
}

// New containers start all at once up to the limit (16 by default), and
// never more than StartParallel when it is set; old ones are removed 4 at
// a time.
func TestStartsRunInParallelUpToTheLimit(t *testing.T) {
	for _, tc := range []struct {
		limit, replicas, want int
	}{{0, 10, 10}, {3, 10, 3}, {0, 20, 16}} {
		h := newHarness(t)
		h.replicas = tc.replicas
		h.r.StartParallel = tc.limit
		var mu sync.Mutex
		running, most := map[string]int{}, map[string]int{}
		h.f.BeforeCall(func(op, _ string) {
			if op != fake.OpRun && op != fake.OpRemove {
				return
			}
			mu.Lock()
			running[op]++
			most[op] = max(most[op], running[op])
			mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			mu.Lock()
			running[op]--
			mu.Unlock()
		})
		h.mustConverge("")
		h.image = "swift-deploy-1-node:v2"
		h.mustConverge("")
		h.f.BeforeCall(nil)
		// The first start of nginx is a Run too, but never beside the apps.
		if most[fake.OpRun] != tc.want {
			t.Errorf("StartParallel %d, %d replicas: at most %d starts at once, want %d", tc.limit, tc.replicas, most[fake.OpRun], tc.want)
		}
		if want := min(4, tc.replicas); most[fake.OpRemove] != want {
			t.Errorf("%d replicas: at most %d removals at once, want %d", tc.replicas, most[fake.OpRemove], want)
		}
	}
}
