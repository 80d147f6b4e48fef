package fake_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// An image change under a trace records every step of the apply, in the
// order that keeps traffic safe: the gate before the first container, both
// new containers healthy before nginx is touched, nginx checking the config
// before it is installed and reloaded, nginx reporting the new revision
// before the drain, and the old containers removed last.
func TestApplyTracesAnImageChange(t *testing.T) {
	h := newHarness(t)
	h.r.Drain = 10 * time.Millisecond
	h.r.Record = func(string, string, map[string]any) {}
	h.r.AppliedPath = filepath.Join(t.TempDir(), "applied.json")
	h.mustConverge("")
	h.image = "swift-deploy-1-node:v2"
	tr := trace.New()
	if _, err := h.converge(trace.With(context.Background(), tr), ""); err != nil {
		t.Fatal(err)
	}
	spans := tr.Spans()
	first := func(step string) trace.Span {
		t.Helper()
		for _, s := range spans {
			if s.Step == step {
				return s
			}
		}
		t.Fatalf("no %q step in the trace: %v", step, steps(spans))
		return trace.Span{}
	}
	count := func(step string) int {
		n := 0
		for _, s := range spans {
			if s.Step == step {
				n++
			}
		}
		return n
	}
	for step, want := range map[string]int{"start-app": 2, "healthy": 2, "remove-app": 2, "journal": 5, "nginx -t": 1, "nginx SIGHUP": 1, "nginx -s reload": 0} {
		if got := count(step); got != want {
			t.Errorf("%d %q steps, want %d: %v", got, step, want, steps(spans))
		}
	}
	order := []string{"observe: containers", "gate", "start-app", "wait-healthy", "healthy", "reload-nginx", "nginx -t", "install config", "nginx SIGHUP", "nginx reports revision", "drain", "remove-app", "write applied"}
	for i := 1; i < len(order); i++ {
		a, b := first(order[i-1]), first(order[i])
		if b.Start.Before(a.Start) {
			t.Errorf("%q started before %q", order[i], order[i-1])
		}
	}
	// Sequential parts end before the next begins.
	for _, p := range [][2]string{{"gate", "start-app"}, {"nginx -t", "install config"}, {"install config", "nginx SIGHUP"}, {"nginx SIGHUP", "nginx reports revision"}, {"nginx reports revision", "drain"}, {"drain", "remove-app"}} {
		if a, b := first(p[0]), first(p[1]); b.Start.Before(a.End) {
			t.Errorf("%q began before %q ended", p[1], p[0])
		}
	}
	if n := first("drain").Note; !strings.Contains(n, "old workers exited") {
		t.Errorf("drain: %q, want the old workers seen to exit", n)
	}
	if n := first("nginx reports revision").Note; n == "" {
		t.Error("the wait for nginx's revision does not say how many polls it took")
	}
}

func steps(spans []trace.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Step)
	}
	return slices.Compact(out)
}

// The wait for nginx to report the new revision polls often enough that
// the rollout moves on within a few polls of nginx loading it, not after
// a backoff has grown: here nginx takes 310 ms to load the new config.
func TestNewRevisionIsSeenPromptly(t *testing.T) {
	h := newHarness(t)
	h.mustConverge("")
	const loadTakes = 310 * time.Millisecond
	var mu sync.Mutex
	var signalled time.Time
	h.f.BeforeCall(func(op, _ string) {
		if op == fake.OpSignal {
			mu.Lock()
			signalled = time.Now()
			mu.Unlock()
		}
	})
	status := h.r.NginxStatus
	h.r.NginxStatus = func(ctx context.Context) (*reconciler.Loaded, error) {
		l, err := status(ctx)
		mu.Lock()
		loading := !signalled.IsZero() && time.Since(signalled) < loadTakes
		mu.Unlock()
		if err == nil && loading {
			old := *l
			old.Revision = "still the old one"
			return &old, nil
		}
		return l, err
	}
	tr := trace.New()
	if _, err := h.converge(trace.With(context.Background(), tr), canary); err != nil {
		t.Fatal(err)
	}
	for _, s := range tr.Spans() {
		if s.Step == "nginx reports revision" {
			mu.Lock()
			late := s.End.Sub(signalled.Add(loadTakes))
			mu.Unlock()
			if late > 120*time.Millisecond {
				t.Errorf("the new revision was seen %s after nginx loaded it (%s)", late, s.Note)
			}
			return
		}
	}
	t.Fatal("no wait for the revision in the trace")
}
