package controller

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/policies"
)

// chaosHarness is a converged three-replica project whose chaos posts are
// counted (and answered by post, when set) instead of sent.
func chaosHarness(t *testing.T, post func(n int64) (int, string, error), before func(h *harness)) (*harness, *atomic.Int64) {
	t.Helper()
	h := newHarness(t, fakeManifest("app:1", 3, ""))
	h.mustConverge()
	h.d.jr.Close()
	if before != nil {
		before(h)
	}
	var posts atomic.Int64
	h.d = h.newDaemonWith(func(c *Config) {
		c.ChaosPost = func(ctx context.Context, url string, payload []byte) (int, string, error) {
			n := posts.Add(1)
			if post != nil {
				return post(n)
			}
			return http.StatusOK, "ok", nil
		}
	})
	h.mustConverge()
	return h, &posts
}

func postChaos(h *harness, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	serveAPI(h.d, rec, httptest.NewRequest(http.MethodPost, "/v1/chaos", strings.NewReader(body)))
	return rec
}

func eventsNamed(t *testing.T, h *harness, name string) []journal.Record {
	var out []journal.Record
	for _, r := range readEvents(t, h) {
		if r.Event == name {
			out = append(out, r)
		}
	}
	return out
}

// Chaos that reaches some containers and then fails on one is journaled
// as it runs: one record per container it reached (they run the chaos
// whatever happened to the rest), then the failure, naming them. The
// caller hears which were hit as well as the failure.
func TestPartialChaosIsJournaled(t *testing.T) {
	h, _ := chaosHarness(t, func(n int64) (int, string, error) {
		if n == 2 {
			return 0, "", errors.New("connection refused")
		}
		return http.StatusOK, "ok", nil
	}, nil)
	rec := postChaos(h, `{"mode":"error","rate":0.5,"track":"stable"}`)
	if rec.Code == http.StatusOK {
		t.Fatalf("chaos that failed on one container answered 200: %s", rec.Body)
	}
	if !strings.Contains(rec.Body.String(), "already applied to") {
		t.Errorf("answer %q does not say which containers were hit", rec.Body)
	}
	got := eventsNamed(t, h, journal.EventChaosInjected)
	if len(got) != 1 {
		t.Fatalf("%d %s events after chaos hit one container and failed on the next, want 1", len(got), journal.EventChaosInjected)
	}
	cs, _ := got[0].Details["containers"].([]any)
	if len(cs) != 1 || got[0].Details["container"] != cs[0] {
		t.Errorf("chaos_injected details %v, want the one container hit", got[0].Details)
	}
	failed := eventsNamed(t, h, journal.EventChaosFailed)
	if len(failed) != 1 || failed[0].Details["error"] == nil {
		t.Fatalf("%s events %v, want one with the error", journal.EventChaosFailed, failed)
	}
	if applied, _ := failed[0].Details["applied"].([]any); len(applied) != 1 || applied[0] != cs[0] {
		t.Errorf("chaos_failed details %v, want the container already hit as applied", failed[0].Details)
	}
}

// Chaos is gated by the chaos policy before its first operation: a denied
// chaos hits no container, and the denial is journaled (the decision, with
// the input saying it is chaos, and a chaos_denied event).
func TestChaosDeniedHitsNothing(t *testing.T) {
	h, posts := chaosHarness(t, nil, nil)
	// The default policy bounds the rate as swiftctl does: a request that
	// went around swiftctl is denied.
	rec := postChaos(h, `{"mode":"error","rate":1.5,"track":"stable"}`)
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "DENIED by chaos policy") {
		t.Fatalf("chaos with rate 1.5: %d %s, want 409 DENIED by chaos policy", rec.Code, rec.Body)
	}
	if n := posts.Load(); n != 0 {
		t.Fatalf("a denied chaos reached %d containers, want none", n)
	}
	if got := eventsNamed(t, h, journal.EventChaosInjected); len(got) != 0 {
		t.Errorf("chaos_injected journaled for a denied chaos: %v", got)
	}
	denied := eventsNamed(t, h, journal.EventChaosDenied)
	if len(denied) != 1 || !strings.Contains(denied[0].Message, "rate 1.5") {
		t.Fatalf("%s events %v, want one naming the reason", journal.EventChaosDenied, denied)
	}
	var dec []journal.Record
	for _, r := range h.records(journal.TypeDecision) {
		if r.PolicyName == policy.Chaos {
			dec = append(dec, r)
		}
	}
	if len(dec) != 1 || dec[0].Allowed == nil || *dec[0].Allowed || dec[0].Input["operation"] != "chaos" || len(dec[0].Input["containers"].([]any)) != 3 {
		t.Fatalf("chaos decisions %+v, want one denial whose input says chaos and names the 3 containers", dec)
	}

	// Allowed by the same policy: every container hit, each journaled.
	if rec := postChaos(h, `{"mode":"error","rate":0.5,"track":"stable"}`); rec.Code != http.StatusOK {
		t.Fatalf("chaos with rate 0.5: %d %s", rec.Code, rec.Body)
	}
	if n := posts.Load(); n != 3 {
		t.Errorf("allowed chaos reached %d containers, want 3", n)
	}
	if got := eventsNamed(t, h, journal.EventChaosInjected); len(got) != 3 {
		t.Errorf("%d chaos_injected after chaos on 3 containers, want one each", len(got))
	}
}

// A policies directory whose chaos policy denies everything: chaos hits
// nothing and is journaled denied; recover, which undoes chaos, is never
// gated and still reaches every container. A directory without chaos.rego
// (written before chaos was gated) denies too, saying so.
func TestChaosPolicyFromPoliciesDir(t *testing.T) {
	writePolicies := func(chaosRego string) func(h *harness) {
		return func(h *harness) {
			dir := filepath.Join(h.dir, "policies")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			names, _ := fs.Glob(policies.FS, "*.rego")
			for _, n := range names {
				if n == "chaos.rego" || strings.HasSuffix(n, "_test.rego") {
					continue
				}
				b, _ := policies.FS.ReadFile(n)
				if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if chaosRego != "" {
				if err := os.WriteFile(filepath.Join(dir, "chaos.rego"), []byte(chaosRego), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	h, posts := chaosHarness(t, nil, writePolicies("package swiftdeploy.chaos\n\nallow := false\n\ndeny contains \"No chaos on this host\"\n"))
	rec := postChaos(h, `{"mode":"hang","track":"stable"}`)
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "No chaos on this host") {
		t.Fatalf("chaos under a deny-all policy: %d %s", rec.Code, rec.Body)
	}
	if n := posts.Load(); n != 0 {
		t.Fatalf("a denied chaos reached %d containers", n)
	}
	if rec := postChaos(h, `{"mode":"recover","track":"stable"}`); rec.Code != http.StatusOK {
		t.Fatalf("recover under a deny-all chaos policy: %d %s, want it ungated", rec.Code, rec.Body)
	}
	if n := posts.Load(); n != 3 {
		t.Errorf("recover reached %d containers, want 3", n)
	}
	if got := eventsNamed(t, h, journal.EventChaosRecovered); len(got) != 3 {
		t.Errorf("%d chaos_recovered, want one per container", len(got))
	}

	h2, posts2 := chaosHarness(t, nil, writePolicies(""))
	rec = postChaos(h2, `{"mode":"hang","track":"stable"}`)
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "no chaos.rego") {
		t.Fatalf("chaos with no chaos.rego: %d %s, want denied saying chaos.rego is missing", rec.Code, rec.Body)
	}
	if posts2.Load() != 0 {
		t.Fatal("chaos with no chaos policy reached containers")
	}
}

// Chaos takes the run lock, as every mutation of what runs: while a
// reconcile is under way (frozen before it starts a container), chaos
// waits and hits nothing; it runs once the reconcile has ended.
func TestChaosWaitsForTheRunLock(t *testing.T) {
	h, posts := chaosHarness(t, nil, nil)
	h.write(fakeManifest("app:2", 3, ""))
	thaw := h.freezeAt("before", reconciler.OpStartApp, h.reconcile)
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- postChaos(h, `{"mode":"slow","duration":1,"track":"stable"}`) }()
	select {
	case rec := <-done:
		t.Fatalf("chaos answered %d (%s) while a reconcile was under way; want it to wait", rec.Code, rec.Body)
	case <-time.After(300 * time.Millisecond):
	}
	if n := posts.Load(); n != 0 {
		t.Fatalf("chaos reached %d containers while a reconcile was under way", n)
	}
	// A caller that gives up while waiting: nothing decided, hit or
	// journaled for it once the lock is free.
	gaveUp := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := h.d.Chaos(ctx, "", api.ChaosRequest{Mode: "hang", Track: "stable"})
		gaveUp <- err
	}()
	time.Sleep(200 * time.Millisecond)
	_ = thaw() // the frozen reconcile fails (a crash stands for it)
	select {
	case rec := <-done:
		if rec.Code != http.StatusOK {
			t.Fatalf("chaos after the reconcile: %d %s", rec.Code, rec.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("chaos did not run once the reconcile ended")
	}
	if posts.Load() == 0 {
		t.Error("chaos reached no container once the run lock was free")
	}
	if err := <-gaveUp; err == nil {
		t.Error("chaos whose caller gave up while waiting succeeded")
	}
	if n := posts.Load(); n != 3 {
		t.Errorf("%d chaos posts, want the 3 of the one chaos that ran", n)
	}
	if got := eventsNamed(t, h, journal.EventChaosDenied); len(got) != 0 {
		t.Errorf("a chaos whose caller gave up was journaled denied: %v", got)
	}
}

// A dry run answers the plan, one chaos operation per container, gated,
// and hits, decides and journals nothing.
func TestChaosDryRunIsThePlan(t *testing.T) {
	h, posts := chaosHarness(t, nil, nil)
	before := len(readEvents(t, h))
	var res api.ChaosResult
	rec := postChaos(h, `{"mode":"error","rate":0.5,"track":"stable","dry_run":true}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("dry run: %d %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Plan) != 3 || !res.Gated || len(res.Containers) != 0 {
		t.Fatalf("dry run %+v, want 3 gated operations and nothing hit", res)
	}
	for _, line := range res.Plan {
		if !strings.HasPrefix(line, string(reconciler.OpChaos)+" ") || !strings.Contains(line, "[gated]") {
			t.Errorf("plan line %q, want a gated chaos operation", line)
		}
	}
	if posts.Load() != 0 || len(readEvents(t, h)) != before {
		t.Errorf("a dry run hit %d containers or journaled events", posts.Load())
	}
}

// On the Kubernetes target chaos stays refused with its message (501):
// nothing decided, nothing journaled as chaos.
func TestChaosRefusedOnKubernetes(t *testing.T) {
	h, _ := kubeHarness(t, fakeManifest("app:1", 2, ""))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"mode":"error","rate":0.5}`, `{"mode":"recover"}`, `{"mode":"hang","dry_run":true}`} {
		rec := postChaos(h, body)
		if rec.Code != http.StatusNotImplemented || !strings.Contains(rec.Body.String(), "chaos is not available on the Kubernetes target") {
			t.Errorf("chaos %s on Kubernetes: %d %s, want 501 saying chaos is not available", body, rec.Code, rec.Body)
		}
	}
	for _, r := range h.records(journal.TypeDecision) {
		if r.PolicyName == policy.Chaos {
			t.Errorf("chaos decided on Kubernetes: %+v", r)
		}
	}
	for _, name := range []string{journal.EventChaosInjected, journal.EventChaosRecovered, journal.EventChaosDenied, journal.EventChaosFailed} {
		if got := eventsNamed(t, h, name); len(got) != 0 {
			t.Errorf("%s journaled on Kubernetes: %v", name, got)
		}
	}
}

// A dry run asks the chaos policy what the chaos itself would ask, and
// answers its decision: a request the policy denies (a rate above its
// limit, sent around swiftctl's own check) is answered denied with the
// reasons, one it allows allowed, recover not gated. Nothing is hit, and
// no decision or event is journaled.
func TestChaosDryRunAsksThePolicy(t *testing.T) {
	h, posts := chaosHarness(t, nil, nil)
	events, decisions := len(readEvents(t, h)), len(h.records(journal.TypeDecision))
	dryRun := func(body string) api.ChaosResult {
		t.Helper()
		rec := postChaos(h, body)
		if rec.Code != http.StatusOK {
			t.Fatalf("dry run %s: %d %s", body, rec.Code, rec.Body)
		}
		var res api.ChaosResult
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := dryRun(`{"mode":"error","rate":1.5,"track":"stable","dry_run":true}`)
	if res.Allowed == nil || *res.Allowed || len(res.Reasons) == 0 || !strings.Contains(strings.Join(res.Reasons, "; "), "rate 1.5") {
		t.Errorf("dry run of a rate the policy denies: allowed=%v reasons=%q, want denied naming the rate", res.Allowed, res.Reasons)
	}
	if len(res.Plan) != 3 {
		t.Errorf("dry run of a denied chaos: plan %q, want the 3 operations it would have run", res.Plan)
	}
	if res := dryRun(`{"mode":"error","rate":0.5,"track":"stable","dry_run":true}`); res.Allowed == nil || !*res.Allowed || len(res.Reasons) != 0 {
		t.Errorf("dry run of an allowed chaos: allowed=%v reasons=%q, want allowed", res.Allowed, res.Reasons)
	}
	if res := dryRun(`{"mode":"recover","track":"stable","dry_run":true}`); res.Allowed != nil || res.Gated {
		t.Errorf("dry run of recover: gated=%v allowed=%v, want not gated, no decision", res.Gated, res.Allowed)
	}
	if n := posts.Load(); n != 0 {
		t.Errorf("dry runs hit %d containers", n)
	}
	if n := len(readEvents(t, h)); n != events {
		t.Errorf("dry runs journaled %d events", n-events)
	}
	if n := len(h.records(journal.TypeDecision)); n != decisions {
		t.Errorf("dry runs journaled %d decisions", n-decisions)
	}
}

// recover only undoes chaos: it runs (under the run lock, ungated) while
// the manifest is missing or its whole directory is gone, the states in
// which chaos itself, like every transition, is refused and hits nothing.
func TestChaosRecoverWithTheManifestDirectoryBroken(t *testing.T) {
	for _, broken := range []struct {
		name    string
		breakIt func(h *harness) error
	}{
		{"manifest missing", func(h *harness) error { return os.Remove(filepath.Join(h.dir, "manifest.yaml")) }},
		{"directory gone", func(h *harness) error { return os.RemoveAll(h.dir) }},
	} {
		t.Run(broken.name, func(t *testing.T) {
			h, posts := chaosHarness(t, nil, nil)
			if err := broken.breakIt(h); err != nil {
				t.Fatal(err)
			}
			if rec := postChaos(h, `{"mode":"hang","track":"stable"}`); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "missing") {
				t.Fatalf("chaos with the %s: %d %s, want 409 naming what is missing", broken.name, rec.Code, rec.Body)
			}
			if n := posts.Load(); n != 0 {
				t.Fatalf("chaos with the %s hit %d containers", broken.name, n)
			}
			rec := postChaos(h, `{"mode":"recover","track":"stable"}`)
			if rec.Code != http.StatusOK {
				t.Fatalf("recover with the %s: %d %s, want it to run", broken.name, rec.Code, rec.Body)
			}
			if n := posts.Load(); n != 3 {
				t.Errorf("recover with the %s reached %d containers, want 3", broken.name, n)
			}
		})
	}
}

// A POST that fails once sent (a timeout, a reset) may have reached the
// container, which then runs the chaos: the chaos_failed event and the
// answer say so and name the command that undoes it. A POST that could
// not connect reached nothing, and says nothing of the kind.
func TestChaosTimeoutMayHaveApplied(t *testing.T) {
	timeout := &url.Error{Op: "Post", URL: "http://10.0.0.2:3000/chaos", Err: context.DeadlineExceeded}
	h, _ := chaosHarness(t, func(n int64) (int, string, error) {
		if n == 2 {
			return 0, "", timeout
		}
		return http.StatusOK, "ok", nil
	}, nil)
	rec := postChaos(h, `{"mode":"error","rate":0.5,"track":"stable"}`)
	if rec.Code == http.StatusOK {
		t.Fatalf("chaos whose POST timed out answered 200: %s", rec.Body)
	}
	failed := eventsNamed(t, h, journal.EventChaosFailed)
	if len(failed) != 1 {
		t.Fatalf("%s events %v, want one", journal.EventChaosFailed, failed)
	}
	target, _ := failed[0].Details["container"].(string)
	for what, text := range map[string]string{"event": failed[0].Message, "answer": rec.Body.String()} {
		for _, want := range []string{target + " may have applied it", "swiftctl chaos recover --track stable"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s %q lacks %q", what, text, want)
			}
		}
	}
	if failed[0].Details["maybe_applied"] != target {
		t.Errorf("chaos_failed details %v, want maybe_applied %s", failed[0].Details, target)
	}

	refused := &url.Error{Op: "Post", URL: "http://10.0.0.2:3000/chaos", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	h2, _ := chaosHarness(t, func(n int64) (int, string, error) { return 0, "", refused }, nil)
	rec = postChaos(h2, `{"mode":"error","rate":0.5,"track":"stable"}`)
	if rec.Code == http.StatusOK || strings.Contains(rec.Body.String(), "may have applied") || strings.Contains(rec.Body.String(), "chaos recover") {
		t.Errorf("chaos that could not connect to its first container: %d %s, want failed without saying it may have applied", rec.Code, rec.Body)
	}
	if failed := eventsNamed(t, h2, journal.EventChaosFailed); len(failed) != 1 || strings.Contains(failed[0].Message, "may have applied") {
		t.Errorf("%s events %v, want one not saying it may have applied", journal.EventChaosFailed, failed)
	}
}
