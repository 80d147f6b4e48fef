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
