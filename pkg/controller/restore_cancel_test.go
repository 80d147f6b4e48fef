package controller

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// A client that hangs up on `rollback worker --to` the moment nginx has
// loaded the rollback: on Docker nginx's revision names the worker's new
// containers, so the rollback is committed right there, by the Served
// hook, as any transition is, never left to after the apply (which, its
// context ended, stops before the old containers drain) for want of a
// look at the worker under the ended context.
func TestServiceRollbackCommitsWhenServedThoughTheClientLeft(t *testing.T) {
	h := namedReleases(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var hup atomic.Bool
	status := h.fe.NginxStatus("demo-nginx")
	h.d.rec.NginxStatus = func(c context.Context) (*reconciler.Loaded, error) {
		l, err := status(c)
		if hup.Load() {
			cancel() // the client hangs up once nginx has loaded the rollback
		}
		return l, err
	}
	h.fe.BeforeCall(func(op, _ string) {
		if op == fake.OpSignal {
			hup.Store(true)
		}
	})
	defer h.fe.BeforeCall(nil)
	var atServed *State
	h.d.target = &servedSpy{Target: h.d.target, served: func() {
		st := h.state()
		atServed = &st
	}}
	err := h.d.rollbackTo(ctx, "bob", "worker", api.RollbackPrevious, func(string) {})
	if !hup.Load() || atServed == nil {
		t.Fatalf("rollback worker: %v; nginx never served it: %v", err, h.events())
	}
	if atServed.Pending != nil || atServed.Restores["worker"] == nil || atServed.Restores["worker"].Rev != 1 {
		t.Fatalf("once nginx served the rollback: pending %+v, restores %+v; want it committed there", atServed.Pending, atServed.Restores)
	}
	if n := len(h.rolledBackRecords()); n != 1 {
		t.Fatalf("%d rolled_back records, want 1: %v", n, h.events())
	}
}

// servedSpy calls served right after the transaction's Served hook ran.
type servedSpy struct {
	targets.Target
	served func()
}

func (s *servedSpy) Apply(ctx context.Context, ch targets.Change, h targets.Hooks) ([]string, error) {
	if inner := h.Served; inner != nil {
		h.Served = func() {
			inner()
			s.served()
		}
	}
	return s.Target.Apply(ctx, ch, h)
}

// ctxReader is a WorkloadReader (as the Kubernetes target is) whose look
// fails under an ended context, as the API's would.
type ctxReader struct {
	targets.Target
	image string
}

func (c ctxReader) WorkloadRuns(ctx context.Context, _ *manifest.Manifest, _, image string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return image == c.image, nil
}

// On a target whose route does not cover a worker (Kubernetes), a
// client that hung up does not make the look at the worker's workload
// unknown: the look is detached from its context (and bounded).
func TestRestoredRunsOutlivesTheClient(t *testing.T) {
	h := namedReleases(t)
	h.d.target = ctxReader{Target: h.d.target, image: "app:1"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tr := &Transition{Kind: kindRestore, Project: "demo", ServiceRestored: &Restore{Service: "worker", Image: "app:1"}}
	if v, own := h.d.restoredRuns(ctx, h.d.readManifest(), tr); !own || v != targets.ServesYes {
		t.Fatalf("restoredRuns under an ended context: %v (own %v), want yes", v, own)
	}
}
