package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/selfmetrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// A manifest that cannot be deployed (it parses, but its metrics.path
// would open a side door) is rejected; the last good one stays in force
// and nothing that runs is touched.
func TestUnrenderableManifestNeverBecomesLastGood(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	for _, path := range []string{"/chaos", "/Chaos", "/metrics$x", "/metrics?x=1", "/internal", "/DEBUG/"} {
		h.write(strings.Replace(fakeManifest("app:2", 1, ""), "  window: 10s\n", "  window: 10s\n  path: \""+path+"\"\n", 1))
		h.fe.ResetCalls()
		if err := h.reconcile(); err != nil {
			t.Fatalf("metrics.path %q: reconcile: %v", path, err)
		}
		if m := h.d.manifestNow(); m.Services.Image != "app:1" {
			t.Errorf("metrics.path %q: manifest in force names %s, want the last good app:1", path, m.Services.Image)
		}
		if errs := strings.Join(h.d.manifestErrors(), "; "); !strings.Contains(errs, "metrics.path") {
			t.Errorf("metrics.path %q: errors %q do not name the field", path, errs)
		}
		if m := h.fe.Mutations(); len(m) != 0 {
			t.Errorf("metrics.path %q: rejected manifest mutated the engine: %v", path, m)
		}
	}
}

// Env values reach the container byte for byte as written.
func TestEnvValuesReachTheContainerAsWritten(t *testing.T) {
	h := newHarness(t, strings.Replace(fakeManifest("app:1", 1, ""), "  replicas: 1\n",
		"  replicas: 1\n  env:\n    VERSION: 1.10\n    MASK: 0x1F\n    FLAG: on\n    OCT: 010\n", 1))
	h.mustConverge()
	apps := h.fe.ByRole(stack.RoleApp)
	if len(apps) != 1 {
		t.Fatalf("apps: %v", apps)
	}
	env := strings.Join(apps[0].Spec.Env, " ")
	for _, want := range []string{"VERSION=1.10", "MASK=0x1F", "FLAG=on", "OCT=010"} {
		if !strings.Contains(env, want) {
			t.Errorf("container env %q lacks %s", env, want)
		}
	}
}

// Repeated identical denials are one journal record plus one summary with
// the count, not one record per retry.
func TestRepeatedDenialsAreOneStreak(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.setLoad(busy)
	h.write(fakeManifest("app:2", 1, ""))
	for i := 0; i < 12; i++ {
		if err := h.reconcile(); err == nil {
			t.Fatal("busy host allowed the change")
		}
		h.setLoad(busy + float64(i)/10) // the figures move; the reason does not
	}
	if n := count(h.events(), journal.EventDeployDenied); n != 1 {
		t.Errorf("%d deploy_denied records for 12 denied retries, want 1 until the streak ends", n)
	}
	// The decisions are not coalesced: each was made on its own reading,
	// and keeps it for a replay.
	var loads []any
	for _, r := range h.records(journal.TypeDecision) {
		if r.PolicyName == "infrastructure" && r.Allowed != nil && !*r.Allowed {
			loads = append(loads, r.Input["cpu_load"])
		}
	}
	if len(loads) != 12 {
		t.Errorf("%d denied infrastructure decisions journaled for 12 retries on drifting loads, want 12 with their loads: %v", len(loads), loads)
	}
	h.setLoad(idle)
	h.mustConverge()
	var summary *journal.Record
	for _, r := range h.records(journal.TypeEvent) {
		if r.Event == journal.EventDeployDenied && r.Count > 0 {
			r := r
			summary = &r
		}
	}
	if summary == nil || summary.Count != 12 || summary.FirstSeen.IsZero() || !summary.LastSeen.After(summary.FirstSeen) {
		t.Fatalf("streak summary %+v, want count 12 with first and last seen", summary)
	}
	if strings.Contains(summary.Message, "[") {
		t.Errorf("reasons printed as a Go slice: %q", summary.Message)
	}
}

// A manifest edit wakes the loop even while it backs off after failures;
// an engine event caused by the failure itself does not.
func TestManifestEditWakesTheLoopDuringBackoff(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.fe.Down()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { h.d.loop(ctx); close(done) }()
	go h.d.watchManifest(ctx)
	defer func() { cancel(); <-done }()
	h.d.Enqueue()
	// Three failures: the next retry is 4s after the third, well past the
	// deadline below even on a loaded host.
	waitUntil(t, 8*time.Second, "three failed reconciles", func() bool {
		return h.d.metrics.Recorder.(*selfmetrics.Recorder).ReconcileFailures() >= 3
	})
	h.fe.Up()
	h.d.Enqueue() // an engine event: must not cut the backoff short
	time.Sleep(300 * time.Millisecond)
	if got := h.running(); got != "" {
		t.Fatalf("an engine event during backoff ran a reconcile: %s", got)
	}
	start := time.Now()
	h.write(fakeManifest("app:1", 1, "")) // a fix, saved again
	waitUntil(t, 2500*time.Millisecond, "the reconcile the edit wakes", func() bool { return h.running() == "stable:app:1×1" })
	t.Logf("manifest edit during backoff → converged in %s", time.Since(start).Round(time.Millisecond))
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
