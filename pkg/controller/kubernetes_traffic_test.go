package controller

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// swiftctl traffic holds nginx's front door; the Kubernetes target has no
// nginx (its route is a Gateway's HTTPRoute), so every mode is refused up
// front: nothing is applied to the cluster, journaled or recorded, and the
// route keeps its weights.
func TestKubeTrafficRefused(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	before := h.events()
	weights := fk.weights("demo")
	for _, hold := range []*stack.Traffic{
		{Mode: stack.TrafficStop, Message: "maintenance"},
		{Mode: stack.TrafficPause, Max: time.Minute},
		nil, // resume
	} {
		fk.mu.Lock()
		ops, dry := len(fk.ops), fk.dryRuns
		fk.mu.Unlock()
		var said []string
		err := h.d.Traffic(context.Background(), "tester", hold, func(s string) { said = append(said, s) })
		if err == nil || !strings.Contains(err.Error(), "not implemented for the Kubernetes target") {
			t.Fatalf("traffic %+v on Kubernetes: err %v, want refused as not implemented", hold, err)
		}
		fk.mu.Lock()
		gotOps, gotDry := fk.ops[ops:], fk.dryRuns-dry
		fk.mu.Unlock()
		if len(gotOps) != 0 || gotDry != 0 {
			t.Errorf("traffic %+v: the cluster saw ops %v and %d dry runs, want none", hold, gotOps, gotDry)
		}
		if len(said) != 0 {
			t.Errorf("traffic %+v: progress %q, want none", hold, said)
		}
	}
	after := h.events()
	for _, ev := range []string{journal.EventTrafficPaused, journal.EventTrafficStopped, journal.EventTrafficResumed, journal.EventTrafficFailed} {
		if count(after, ev) != 0 {
			t.Errorf("events %v: %s journaled for a refused traffic change", after, ev)
		}
	}
	if !slices.Equal(before, after) {
		t.Errorf("journal changed by refused traffic changes:\nbefore %v\nafter  %v", before, after)
	}
	if st := h.state(); st.Traffic != nil {
		t.Errorf("state records traffic %+v after refusals", st.Traffic)
	}
	if w := fk.weights("demo"); w["demo-stable"] != weights["demo-stable"] || w["demo-canary"] != weights["demo-canary"] {
		t.Errorf("route weights %v after refusals, want %v", w, weights)
	}
}
