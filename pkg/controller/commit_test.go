package controller

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
)

// A promotion, rollback, abort or step is journaled the moment nginx
// serves its configuration, before the drain and the removal of what the
// new configuration no longer routes to. The daemon is frozen at the
// first operation after the reload (what a crash there leaves on disk is
// checked), then "crashes" and a new daemon on the same engine and
// directory resumes: the transition is in force, journaled exactly once,
// the leftovers removed, nothing pending.
func TestTransitionJournaledWhenNginxServesIt(t *testing.T) {
	tests := []struct {
		name    string
		harness func(t *testing.T) *harness
		run     func(h *harness, ctx context.Context) error
		event   string
		// The first point after the reload: before the first removal, or
		// after the reload itself when nothing is removed (a step).
		point   string
		op      reconciler.OpKind
		running string // after the restart
		state   func(s State) bool
	}{
		{
			name: "abort", harness: func(t *testing.T) *harness { return steppedHarness(t, 3, true) },
			run: func(h *harness, ctx context.Context) error {
				return h.d.abortCanary(ctx, "alice", "", "bad canary", func(string) {})
			},
			event: journal.EventAborted, point: "before", op: reconciler.OpRemoveApp, running: "stable:app:1×2",
			state: func(s State) bool { return s.RolledBack != nil && s.RolledBack.Aborted },
		},
		{
			name: "rollback", harness: canaryHarness,
			run:   func(h *harness, ctx context.Context) error { return h.d.rollback(ctx, "alice", "", func(string) {}) },
			event: journal.EventRolledBack, point: "before", op: reconciler.OpRemoveApp, running: "stable:app:1×2",
			state: func(s State) bool { return s.RolledBack != nil && !s.RolledBack.Aborted },
		},
		{
			name: "promotion", harness: canaryHarness,
			run:   func(h *harness, ctx context.Context) error { return h.d.promote(ctx, "alice", "", func(string) {}) },
			event: journal.EventPromoted, point: "before", op: reconciler.OpRemoveApp, running: "stable:app:2×2",
			state: func(s State) bool { return s.Promoted != nil && s.Promoted.Image == "app:2" },
		},
		{
			name: "step", harness: func(t *testing.T) *harness { return steppedHarness(t, 3, true) },
			run: func(h *harness, ctx context.Context) error {
				return h.d.advance(ctx, "", "", 1, func(string) {})
			},
			event: journal.EventCanaryStep, point: "after", op: reconciler.OpReloadNginx, running: "stable:app:1×2 canary:app:2×1",
			state: func(s State) bool { return s.Rollout != nil && s.Rollout.Step == 1 && !s.Rollout.StepStarted.IsZero() },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.harness(t)
			before := count(h.events(), tc.event)
			thaw := h.freezeAt(tc.point, tc.op, func() error { return tc.run(h, context.Background()) })

			// What a crash here leaves on disk.
			recs := readEvents(t, h)
			if n := countRecs(recs, tc.event) - before; n != 1 {
				t.Errorf("at %s %s, after nginx loaded the new config: %s journaled %d times, want once; events %v", tc.point, tc.op, tc.event, n, names(recs))
			}
			reloaded := lastIndex(recs, journal.EventNginxReloaded)
			if j := lastIndex(recs, tc.event); reloaded < 0 || j < reloaded {
				t.Errorf("%s is not journaled after nginx_reloaded: %v", tc.event, names(recs))
			}
			if reloaded >= 0 && lastIndex(recs, journal.EventContainerRemoved) > reloaded {
				t.Fatalf("containers were removed after the reload, before the freeze: %v", names(recs))
			}
			if st := h.state(); st.Pending != nil || !tc.state(st) {
				t.Errorf("state.json at %s %s: %+v, want the transition committed and nothing pending", tc.point, tc.op, st)
			}

			// The crash: the frozen daemon never writes again; a new one
			// starts on what it left.
			h.d.jr.Close()
			h.d = h.newDaemon()
			h.mustConverge()
			if got := h.running(); got != tc.running {
				t.Errorf("after the restart: running %s, want %s", got, tc.running)
			}
			recs = readEvents(t, h)
			if n := countRecs(recs, tc.event) - before; n != 1 {
				t.Errorf("after the restart %s journaled %d times, want once: %v", tc.event, n, names(recs))
			}
			if n := countRecs(recs, journal.EventTransitionAborted); n != 0 {
				t.Errorf("the restart dropped a transition that had taken effect: %v", names(recs))
			}
			if st := h.state(); st.Pending != nil || !tc.state(st) {
				t.Errorf("state after the restart: %+v", st)
			}
			if err := thaw(); err != nil && !errors.Is(err, errCrashed) {
				t.Logf("the frozen transition ended with %v", err)
			}
		})
	}
}

func readEvents(t *testing.T, h *harness) []journal.Record {
	t.Helper()
	var out []journal.Record
	err := journal.Read(filepath.Join(h.dir, "history.jsonl"), journal.Filter{Types: []string{journal.TypeEvent}}, func(r journal.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func countRecs(recs []journal.Record, event string) int {
	n := 0
	for _, r := range recs {
		if r.Event == event {
			n++
		}
	}
	return n
}

func lastIndex(recs []journal.Record, event string) int {
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Event == event {
			return i
		}
	}
	return -1
}

func names(recs []journal.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Event
	}
	return out
}

// A transition whose reload nginx rejects never took effect: nothing is
// committed or journaled as done, the old state stays, and what the
// promotion started is removed by the next reconcile.
func TestTransitionNotCommittedWhenTheReloadFails(t *testing.T) {
	h := canaryHarness(t)
	h.fe.FailReload(errors.New("bind() to 0.0.0.0:8080 failed"))
	if err := h.promote(); err == nil {
		t.Fatal("a promotion whose reload failed succeeded")
	}
	ev := h.events()
	if count(ev, journal.EventPromoted) != 0 || count(ev, journal.EventPromoteFailed) != 1 {
		t.Errorf("journal after a failed reload: %v", ev)
	}
	if st := h.state(); st.Pending != nil || st.Promoted != nil {
		t.Errorf("state after a failed reload: %+v", st)
	}
	h.fe.FailReload(nil)
	h.mustConverge()
	if got := h.running(); got != "stable:app:1×2 canary:app:2×1" {
		t.Errorf("after the failed promotion: running %s, want the old state", got)
	}
}

// A daemon died after journaling a promotion and before recording it
// (failpoint promote/journaled): state.json still holds it pending. The
// restarted daemon settles it, and must know whether it is journaled; if
// the journal cannot be read, guessing "not journaled" journals the
// promotion a second time. The read error stops the settling instead, and
// once the journal reads again the promotion is committed, journaled once.
func TestSettlingDoesNotJournalTwiceWhenTheJournalCannotBeRead(t *testing.T) {
	h := canaryHarness(t)
	if err := h.promote(); err != nil {
		t.Fatal(err)
	}
	recs := readEvents(t, h)
	txn, _ := recs[lastIndex(recs, journal.EventPromoted)].Details["txn"].(string)
	st := h.state()
	rev := h.status().Revision
	if txn == "" || st.Promoted == nil || rev == "" {
		t.Fatalf("after the promotion: txn %q, state %+v, revision %q", txn, st, rev)
	}
	// What the crash at promote/journaled leaves: journaled, still pending.
	st.Pending = &Transition{ID: txn, Kind: kindPromote, Promoted: st.Promoted, Revision: rev, Started: time.Now().UTC()}
	st.Promoted = nil
	h.d.mu.Lock()
	h.d.state = st
	if err := h.d.saveStateLocked(); err != nil {
		t.Fatal(err)
	}
	h.d.mu.Unlock()
	h.d.jr.Close()

	// A rotated file that cannot be read (a bad sector, a botched restore).
	bad := filepath.Join(h.dir, "history.1.jsonl")
	if err := os.WriteFile(bad, []byte("not a record\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.d = h.newDaemon()
	if err := h.reconcile(); err == nil {
		t.Errorf("settling with an unreadable journal succeeded; it cannot know whether the promotion is journaled")
	}
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	if n := countRecs(readEvents(t, h), journal.EventPromoted); n != 1 {
		t.Errorf("with the journal unreadable, %s journaled %d times, want once", journal.EventPromoted, n)
	}
	if st := h.state(); st.Pending == nil {
		t.Errorf("with the journal unreadable the promotion was settled: %+v, want it still pending", st)
	}
	h.mustConverge()
	if n := countRecs(readEvents(t, h), journal.EventPromoted); n != 1 {
		t.Errorf("once the journal reads again: %s journaled %d times, want once", journal.EventPromoted, n)
	}
	if st := h.state(); st.Pending != nil || st.Promoted == nil {
		t.Errorf("once the journal reads again: state %+v, want the promotion committed", st)
	}
}

// Each failure is journaled under its own name: a canary step whose new
// weight nginx refused is step_failed (not promote_failed: nothing was
// promoted), and policies that did not reload are policy_reload_failed
// (not manifest_rejected: the manifest is fine).
func TestFailuresJournaledUnderTheirOwnNames(t *testing.T) {
	t.Run("step", func(t *testing.T) {
		h := steppedHarness(t, 3, false)
		h.fe.FailReload(errors.New("nginx: [emerg] reload refused"))
		if err := h.d.advance(context.Background(), "", "", 1, func(string) {}); err == nil {
			t.Fatal("a step whose reload failed succeeded")
		}
		ev := h.events()
		if count(ev, journal.EventStepFailed) != 1 || count(ev, journal.EventPromoteFailed) != 0 {
			t.Errorf("after a failed step: %v, want one %s and no %s", ev, journal.EventStepFailed, journal.EventPromoteFailed)
		}
	})
	t.Run("policy reload", func(t *testing.T) {
		h := newHarness(t, fakeManifest("app:1", 1, ""))
		h.mustConverge()
		dir := filepath.Join(h.dir, "policies")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package swiftdeploy.broken\n\nthis is not rego {\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		h.d.Reload()
		ev := h.events()
		if count(ev, journal.EventPolicyReloadFailed) != 1 || count(ev, journal.EventManifestRejected) != 0 {
			t.Errorf("after a failed policy reload: %v, want one %s and no %s", ev, journal.EventPolicyReloadFailed, journal.EventManifestRejected)
		}
	})
}

// manifest_applied is journaled once, when the manifest's change takes
// effect: not when status or diff read the file, not for a change the
// infrastructure policy denies, not again after a restart.
func TestManifestAppliedJournaledWhenItTakesEffect(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.mustConverge()
	applied := func() int { return count(h.events(), journal.EventManifestApplied) }
	if n := applied(); n != 1 {
		t.Fatalf("after the first deploy: %d manifest_applied, want 1", n)
	}
	h.write(fakeManifest("app:2", 1, ""))
	h.status()
	serveAPI(h.d, httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/diff", nil))
	if n := applied(); n != 1 {
		t.Errorf("after status and diff read the edited manifest: %d manifest_applied, want still 1", n)
	}
	h.setLoad(busy)
	var denied *reconciler.DeniedError
	if err := h.reconcile(); !errors.As(err, &denied) {
		t.Fatalf("reconcile on a busy host: %v, want denied", err)
	}
	if n := applied(); n != 1 {
		t.Errorf("after the change was denied: %d manifest_applied, want still 1", n)
	}
	h.setLoad(idle)
	h.mustConverge()
	if n := applied(); n != 2 {
		t.Errorf("after the change took effect: %d manifest_applied, want 2", n)
	}
	h.mustConverge()
	h.d.jr.Close()
	h.d = h.newDaemon()
	h.mustConverge()
	if n := applied(); n != 2 {
		t.Errorf("after a resync and a restart: %d manifest_applied, want still 2", n)
	}
}
