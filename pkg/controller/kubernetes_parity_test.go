package controller

// Kubernetes parity on the fake API server and a fake Prometheus: the
// operator's commands of a stepped canary (pause, resume, promote
// --full), webhooks, `policy replay` of the journal, and chaos refused,
// each through the same entry the Docker target's tests use.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/notify"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/replay"
	"github.com/swiftdeploy/swiftdeploy/policies"
)

// kubeStepped is a Kubernetes harness whose stepped canary (10, 25, 50)
// serves its first step, the step started; extra is appended to the
// manifest.
func kubeStepped(t *testing.T, limit int, autoPromote bool, extra string) (*harness, *fakeKube, *fakeProm) {
	t.Helper()
	m, prom := withProm(t, fakeManifest("app:1", 2, steppedCanary("app:2", limit, autoPromote))+extra)
	h, fk := kubeHarness(t, m)
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	h.analyze(time.Now())
	if r := h.rollout(); r == nil || r.StepStarted.IsZero() || r.Step != 0 {
		t.Fatalf("the first step did not start: %+v; events %v", r, h.events())
	}
	if w := fk.weights("demo")["demo-canary"]; w != 10 {
		t.Fatalf("first step: canary weight %d on the route, want 10", w)
	}
	return h, fk, prom
}

func (p *fakeProm) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queries
}

// pause holds the live route's weight: no check asks Prometheus, and the
// step's pause does not run out however long it lasts; resume goes on
// where it stopped, and the step then moves the route.
func TestKubePauseHoldsTheStepAndResumeGoesOn(t *testing.T) {
	h, fk, prom := kubeStepped(t, 2, true, "")
	if err := h.d.SetPaused("alice", "", true); err != nil {
		t.Fatal(err)
	}
	if err := h.d.SetPaused("alice", "", true); err == nil {
		t.Error("pausing twice succeeded")
	}
	asked := prom.count()
	h.analyze(h.after(time.Hour)) // far past the step's 2s pause
	if r := h.rollout(); r.Checks != 0 || r.Step != 0 {
		t.Fatalf("a paused rollout checked or moved: %+v", r)
	}
	if w := fk.weights("demo")["demo-canary"]; w != 10 {
		t.Fatalf("paused: canary weight %d on the route, want 10 held", w)
	}
	if n := prom.count() - asked; n != 0 {
		t.Errorf("a paused rollout asked Prometheus %d times", n)
	}
	if s := h.status(); s.Rollout == nil || s.Rollout.Phase != api.PhasePaused {
		t.Errorf("status rollout %+v, want paused", s.Rollout)
	}
	if err := h.d.SetPaused("alice", "", false); err != nil {
		t.Fatal(err)
	}
	h.analyze(h.after(time.Second))
	h.analyze(h.after(2 * time.Second))
	if w := fk.weights("demo")["demo-canary"]; w != 25 {
		t.Fatalf("resumed: canary weight %d on the route, want the next step's 25; events %v", w, h.events())
	}
	if r := h.rollout(); r.Checks == 0 {
		t.Errorf("resumed rollout ran no check: %+v", r)
	}
	ev := h.events()
	if count(ev, journal.EventRolloutPaused) != 1 || count(ev, journal.EventRolloutResumed) != 1 || count(ev, journal.EventCanaryStep) != 2 {
		t.Errorf("events %v: want paused once, resumed once, two canary steps", ev)
	}
}

// promote moves the route one step on; promote --full skips the steps
// left: the stable Deployment on the canary's image, the canary deleted,
// the route at stable 100, promoted once.
func TestKubePromoteFullSkipsTheStepsLeft(t *testing.T) {
	h, fk, _ := kubeStepped(t, 2, false, "")
	if err := h.d.promoteRequest(context.Background(), "alice", "", false, func(string) {}); err != nil {
		t.Fatalf("promote one step: %v", err)
	}
	if w := fk.weights("demo")["demo-canary"]; w != 25 || fk.image("demo-stable") != "app:1" {
		t.Fatalf("promote without --full: canary weight %d, stable %s; want the next step's 25 on app:1", w, fk.image("demo-stable"))
	}
	if err := h.d.Promote(context.Background(), "alice", api.PromoteRequest{Full: true}, func(string) {}); err != nil {
		t.Fatalf("promote --full: %v", err)
	}
	if fk.image("demo-stable") != "app:2" || fk.has("Deployment/demo-canary") || fk.weights("demo")["demo-stable"] != 100 {
		t.Fatalf("after promote --full: stable %s, canary left %v, route %v; events %v",
			fk.image("demo-stable"), fk.has("Deployment/demo-canary"), fk.weights("demo"), h.events())
	}
	ev := h.events()
	if count(ev, journal.EventCanaryStep) != 2 || count(ev, journal.EventPromoted) != 1 {
		t.Errorf("events %v: want two canary steps (10, 25) and one promotion", ev)
	}
	if st := h.state(); st.Rollout != nil || st.Promoted == nil || st.Promoted.Image != "app:2" {
		t.Errorf("state after promote --full: rollout %+v promoted %+v", st.Rollout, st.Promoted)
	}
}

// hookRecorder is a webhook receiver (a real HTTP server) that keeps what
// it is sent.
type hookRecorder struct {
	mu  sync.Mutex
	got []notify.Message
}

func (r *hookRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var m notify.Message
	if err := json.NewDecoder(req.Body).Decode(&m); err == nil {
		r.mu.Lock()
		r.got = append(r.got, m)
		r.mu.Unlock()
	}
}

// wait returns what arrived once n messages have (or 5s passed), and a
// moment more, so that one too many would show.
func (r *hookRecorder) wait(n int) []notify.Message {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		k := len(r.got)
		r.mu.Unlock()
		if k >= n {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Message(nil), r.got...)
}

// Webhooks are told of the Kubernetes target's transitions as of
// Docker's, once each: a walk's steps and its promotion, a failing
// canary's abort with the reasons and Prometheus's figures.
func TestKubeWebhooksGetStepsPromotionAndAbort(t *testing.T) {
	for _, failing := range []bool{false, true} {
		rec := &hookRecorder{}
		srv := httptest.NewServer(rec)
		hooks := "notify:\n  - url: " + srv.URL + "/hook\n    events: [step, aborted, promoted]\n"
		h, fk, prom := kubeStepped(t, 1, true, hooks)
		want := []string{"step", "step", "step", "promoted"}
		if failing {
			prom.set(0.5)
			h.analyze(h.after(time.Second)) // fails 1/1: aborted
			if fk.has("Deployment/demo-canary") {
				t.Fatalf("failing canary not aborted: events %v", h.events())
			}
			want = []string{"step", "aborted"}
		} else {
			for range 3 {
				h.analyze(h.after(time.Second))
				h.analyze(h.after(2 * time.Second))
			}
			if fk.image("demo-stable") != "app:2" {
				t.Fatalf("the walk did not promote: events %v", h.events())
			}
		}
		got := rec.wait(len(want))
		srv.Close()
		var events []string
		for _, m := range got {
			events = append(events, m.Event)
		}
		if strings.Join(events, ",") != strings.Join(want, ",") {
			t.Fatalf("failing=%v: received %v, want %v (check events not asked for)", failing, events, want)
		}
		for i, m := range got {
			if m.Project != "demo" || m.Image != "app:2" || m.Text == "" || m.Time.IsZero() {
				t.Errorf("%s body %+v", m.Event, m)
			}
			if m.Event == "step" && (m.Weight == nil || *m.Weight != []int{10, 25, 50}[i]) {
				t.Errorf("step %d body weight %v, want %d", i+1, m.Weight, []int{10, 25, 50}[i])
			}
		}
		if failing {
			if m := got[1]; len(m.Reasons) == 0 || m.Weight == nil || *m.Weight != 0 || !(number(m.Figures["error_rate"]) > 0.01) {
				t.Errorf("aborted body %+v, want the reasons, weight 0 and Prometheus's error rate", m)
			}
		}
	}
}

// `swiftctl policy replay` on a Kubernetes project's journal: every
// decision the daemon journaled (canary safety on Prometheus's figures,
// the cluster policy) carries its input, so the policies that decided
// re-judge each one the same, and a candidate without the relative
// verdict flips the denial that aborted the canary.
func TestKubePolicyReplayOfTheJournal(t *testing.T) {
	h, fk, prom := kubeStepped(t, 1, true, "  max_error_rate: 0.05\n  relative: {confidence: 0.95, min_requests: 100}\n")
	h.analyze(h.after(time.Second)) // two passing checks, the second ends the step
	h.analyze(h.after(2 * time.Second))
	prom.set(0.03) // under 5%, but worse than stable's 0%
	h.analyze(h.after(time.Second))
	if fk.has("Deployment/demo-canary") || count(h.events(), journal.EventAborted) != 1 {
		t.Fatalf("the relative verdict did not abort the canary: events %v", h.events())
	}
	if err := h.d.jr.Flush(); err != nil {
		t.Fatal(err)
	}
	read := func(fn func(journal.Record) error) error {
		return journal.Read(filepath.Join(h.dir, "history.jsonl"), journal.Filter{Types: []string{journal.TypeDecision}}, fn)
	}
	replayWith := func(e *policy.Engine) (replay.Report, []replay.Change) {
		var changes []replay.Change
		rep, err := replay.Run(context.Background(), e, replay.Options{}, read, func(c replay.Change) error {
			changes = append(changes, c)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return rep, changes
	}

	same, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	rep, changes := replayWith(same)
	if rep.Policies["canary_safety"] != 3 || rep.Policies["cluster"] == 0 || rep.NoInput != 0 || len(changes) != 0 {
		t.Fatalf("replay with the policies that decided: %s %v; changes %+v; want 3 canary_safety and the cluster decisions replayed, each with its input, none changed",
			rep.Summary(), rep.Policies, changes)
	}

	src, err := policies.FS.ReadFile("canary_safety.rego")
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	cut, end := strings.Index(text, "deny contains lasting(\"relative_fail\""), strings.Index(text, "lasting(code, reason) :=")
	if cut < 0 || end < cut {
		t.Fatal("canary_safety.rego: the relative rules moved")
	}
	dir := t.TempDir()
	for _, name := range []string{"infrastructure.rego", "cluster.rego"} {
		b, err := policies.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "canary_safety.rego"), []byte(text[:cut]+text[end:]), 0o644); err != nil {
		t.Fatal(err)
	}
	noRelative, err := policy.NewFromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	rep, changes = replayWith(noRelative)
	if rep.DeniedToAllowed != 1 || rep.AllowedToDenied != 0 || len(changes) != 1 || changes[0].Policy != "canary_safety" {
		t.Fatalf("replay without the relative verdict: %s; changes %+v; want the one relative denial flipped to ALLOWED", rep.Summary(), changes)
	}
	if !strings.Contains(strings.Join(changes[0].Recorded, " "), "relative") && !strings.Contains(strings.Join(changes[0].Recorded, " "), "stable") {
		t.Errorf("the flipped decision's recorded reasons %q do not name the relative verdict", changes[0].Recorded)
	}
}

// `swiftctl chaos` on Kubernetes is refused through the control API with
// 501 and its message, journaling nothing and touching nothing.
func TestKubeChaosRefused(t *testing.T) {
	h, fk := kubeHarness(t, fakeManifest("app:1", 2, kubeCanary))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	posted := 0
	h.d.cfg.ChaosPost = func(context.Context, string, []byte) (int, string, error) {
		posted++
		return http.StatusOK, "ok", nil
	}
	fk.mu.Lock()
	fk.ops = nil
	fk.mu.Unlock()
	before := len(h.events())
	for _, body := range []string{`{"mode":"error","rate":0.5}`, `{"mode":"recover","track":"stable"}`} {
		w := httptest.NewRecorder()
		serveAPI(h.d, w, httptest.NewRequest(http.MethodPost, api.PathChaos, strings.NewReader(body)))
		if w.Code != http.StatusNotImplemented || !strings.Contains(w.Body.String(), "chaos is not available on the Kubernetes target") {
			t.Fatalf("POST %s %s: %d %s, want 501 saying chaos is not available on the Kubernetes target", api.PathChaos, body, w.Code, w.Body)
		}
	}
	if posted != 0 || len(fk.ops) != 0 {
		t.Fatalf("refused chaos still ran: %d chaos requests sent, API ops %v", posted, fk.ops)
	}
	if ev := h.events()[before:]; count(ev, journal.EventChaosInjected) != 0 || count(ev, journal.EventChaosRecovered) != 0 {
		t.Fatalf("refused chaos journaled: %v", ev)
	}
}
