package fake_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
)

// Observe's engine reads are independent and run at once: with every read
// taking 150 ms, observing takes about one read, not three. A failed read
// still fails the observation, the network's first.
func TestObserveReadsTheEngineAtOnce(t *testing.T) {
	h := newHarness(t)
	h.mustConverge("")
	const slow = 150 * time.Millisecond
	h.f.BeforeCall(func(op, _ string) {
		switch op {
		case fake.OpFindNetwork, fake.OpListContainers, fake.OpMissingImages:
			time.Sleep(slow)
		}
	})
	start := time.Now()
	obs, err := h.r.Observe(bg, h.desired(""))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if obs.Network == nil || len(obs.Containers) != 3 || obs.Loaded == nil {
		t.Fatalf("observed %+v", obs)
	}
	if took >= 2*slow {
		t.Errorf("observe took %s with three reads of %s each: they ran one after another", took, slow)
	}
	h.f.BeforeCall(nil)
	h.f.FailNext(fake.OpMissingImages, errors.New("images: injected"))
	h.f.FailNext(fake.OpFindNetwork, errors.New("network: injected"))
	if _, err := h.r.Observe(bg, h.desired("")); err == nil || !strings.Contains(err.Error(), "network: injected") {
		t.Errorf("observe with two failed reads: %v, want the network's error", err)
	}
}
