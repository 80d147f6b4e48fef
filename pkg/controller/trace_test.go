package controller

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// A manifest edit is traced from the file event on: the reconcile it
// causes logs one line with the event, the debounce, the queue, every step
// of observe, plan, gate and apply, and the CPU the reconcile used. A
// converged resync logs no trace.
func TestManifestEditIsTraced(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 2, ""))
	core, logs := observer.New(zap.InfoLevel)
	h.d.jr.Close()
	h.d = h.newDaemonWith(func(c *Config) { c.Log = zap.New(core); c.Debounce = 30 * time.Millisecond })
	h.mustConverge()
	if err := h.reconcile(); err != nil { // converged: nothing to trace
		t.Fatal(err)
	}
	logs.TakeAll()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); h.d.watchManifest(ctx) }()
	time.Sleep(100 * time.Millisecond) // the watch is up
	tmp := filepath.Join(h.dir, ".manifest.swp")
	if err := os.WriteFile(tmp, []byte(fakeManifest("app:2", 2, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(h.dir, "manifest.yaml")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.d.wake:
	case <-time.After(5 * time.Second):
		t.Fatal("the edit did not wake the loop")
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done

	lines := logs.FilterMessage("reconcile trace").All()
	if len(lines) != 1 {
		t.Fatalf("%d trace lines, want 1", len(lines))
	}
	f := lines[0].ContextMap()
	if f["trigger"] != "manifest" || f["ok"] != true {
		t.Errorf("trace fields %v", f)
	}
	if cpu, ok := f["cpu"].(time.Duration); !ok || cpu <= 0 {
		t.Errorf("cpu = %v, want the reconcile's CPU time", f["cpu"])
	}
	spans, ok := f["spans"].([]trace.Span)
	if !ok {
		t.Fatalf("spans are %T", f["spans"])
	}
	got := map[string]trace.Span{}
	for _, s := range spans {
		if _, seen := got[s.Step]; !seen {
			got[s.Step] = s
		}
	}
	for _, step := range []string{"manifest event", "debounce", "queued", "read manifest", "observe", "plan", "gate", "gate: host facts", "gate: policy", "start-app", "wait-healthy", "reload-nginx", "nginx reports revision", "remove-app", "observe after apply"} {
		if _, ok := got[step]; !ok {
			t.Errorf("no %q step in the trace", step)
		}
	}
	if d := got["debounce"].Duration(); d < renameSettle {
		t.Errorf("debounce took %s, want at least the %s a renamed manifest settles", d, renameSettle)
	}
	if !got["debounce"].Start.Equal(got["manifest event"].Start) || got["queued"].Start.Before(got["debounce"].End) {
		t.Errorf("event, debounce and queue do not follow each other: %+v %+v %+v", got["manifest event"], got["debounce"], got["queued"])
	}
	if got["gate"].Start.Before(got["plan"].End) || got["start-app"].Start.Before(got["gate"].End) {
		t.Error("the gate is not between the plan and the first start")
	}
}
