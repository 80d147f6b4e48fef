package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/policies"
)

// webhook is a real HTTP receiver on loopback that keeps every request.
type webhook struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []delivery
	seen chan struct{}
}

type delivery struct {
	at          time.Time
	method, ct  string
	agent, path string
	body        map[string]any
	raw         []byte
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{seen: make(chan struct{}, 64)}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		d := delivery{at: time.Now(), method: r.Method, ct: r.Header.Get("Content-Type"), agent: r.Header.Get("User-Agent"), path: r.URL.Path, raw: raw}
		if err := json.Unmarshal(raw, &d.body); err != nil {
			t.Errorf("webhook body is not JSON: %v: %s", err, raw)
		}
		w.mu.Lock()
		w.got = append(w.got, d)
		w.mu.Unlock()
		w.seen <- struct{}{}
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) deliveries() []delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got)
}

// hangingReceiver accepts connections (the kernel's backlog does) and
// never answers a request.
func hangingReceiver(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// notifyTimeout and notifyAttempts are swiftdeployd's delivery limits
// (docs/manifest.md): a step that waited for a delivery would be late by
// at least one attempt's timeout.
const (
	notifyTimeout  = 5 * time.Second
	notifyAttempts = 3
)

// A webhook receiver gets the step, promoted and aborted events with the
// documented body, field by field, and the journal's time and message; a
// receiver that is down (a closed port) and one that hangs delay neither
// the steps nor the healthy receiver, and their failures are journaled.
func TestWebhooksOnTheRealEngine(t *testing.T) {
	e := newEnv(t)
	good := newWebhook(t)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens
	hung := hangingReceiver(t)
	const interval = time.Second
	pause := 8 * time.Second
	notify := fmt.Sprintf("notify:\n  - url: %s/hooks/secret-token\n    events: [step, aborted, promoted]\n  - url: http://%s/down\n  - url: http://%s/hangs\n", good.srv.URL, dead, hung)
	// 10 requests a second reach a 10% canary: min_requests 5 lets its
	// first checks pass while its window fills.
	// max_p99_ms: on a host loaded by other work nginx's request times
	// can pass 500 ms; this test is about the events, not the latency.
	base := strings.Replace(e.manifest(images.AppImage, 2, notify), "  min_disk_gb: 0.1\n", "  min_disk_gb: 0.1\n  min_requests: 5\n  max_p99_ms: 3000\n", 1)
	e.writeManifest(base)
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})

	l := startTimedLoad(e.url("/"), 10*time.Millisecond)
	steps := fmt.Sprintf("      - {weight: 10, pause: %s}\n      - {weight: 50, pause: %[1]s}\n", pause)
	e.writeManifest(withSteps(base, images.AppImageV2, steps, "{interval: 1s, failure_limit: 3, auto_promote: true}"))
	e.waitFor(2*pause+90*time.Second, "promoted by the analysis", func() (bool, string) {
		s := e.status()
		return len(e.events(journal.EventPromoted)) == 1 && s.Mode == "stable" && s.StableImage == images.AppImageV2, rolloutText(s)
	})
	e.converged(map[string]int{images.AppImageV2: 2})

	// Step timings against the manifest: each step lasts its pause plus
	// the analysis's reaction and the next transaction, never an
	// attempt's delivery timeout more (which a wait on the dead or the
	// hung receiver would add).
	stepEv := e.events(journal.EventCanaryStep)
	requested := e.events(journal.EventPromoteRequested)
	if len(stepEv) != 2 || len(requested) != 1 {
		t.Fatalf("journal: %d canary_step and %d promote_requested, want 2 and 1", len(stepEv), len(requested))
	}
	bounds := []time.Time{stepEv[0].Timestamp, stepEv[1].Timestamp, requested[0].Timestamp}
	for i := range 2 {
		took := bounds[i+1].Sub(bounds[i])
		late := took - pause
		t.Logf("step %d: lasted %s for a pause of %s (late by %s; interval %s)", i+1, took.Round(10*time.Millisecond), pause, late.Round(10*time.Millisecond), interval)
		if late < 0 || late >= notifyTimeout {
			t.Errorf("step %d lasted %s for a pause of %s: late by %s, want 0 to less than one delivery timeout (%s)", i+1, took, pause, late, notifyTimeout)
		}
	}

	// A new canary (the old image) gets its first step, then an operator
	// aborts it.
	again := strings.Replace(withSteps(base, images.AppImage, "      - {weight: 10, pause: 60s}\n", "{interval: 1s, failure_limit: 3, auto_promote: false}"),
		"  image: "+images.AppImage+"\n  port: 3000", "  image: "+images.AppImageV2+"\n  port: 3000", 1)
	e.writeManifest(again)
	e.waitFor(90*time.Second, "the second canary's first step with a check", func() (bool, string) {
		s := e.status()
		return s.Rollout != nil && s.Rollout.Image == images.AppImage && s.Rollout.LastCheck != nil && len(e.events(journal.EventCanaryStep)) == 3, rolloutText(s)
	})
	if out, code := e.swiftctl("abort", "--reason", "e2e: operator abort"); code != 0 {
		t.Fatalf("abort exited %d: %s", code, out)
	}
	e.waitFor(30*time.Second, "aborted", func() (bool, string) {
		s := e.status()
		return s.Rollout != nil && s.Rollout.Phase == api.PhaseAborted && s.Mode == "stable", fmt.Sprintf("%s %+v", s.Mode, s.Rollout)
	})
	s := e.status()
	if s.Rollout.Aborted == nil || !slices.Equal(s.Rollout.Aborted.Reasons, []string{"e2e: operator abort"}) {
		t.Errorf("status after the abort: %+v", s.Rollout.Aborted)
	}

	// The healthy receiver: step, step, promoted, step, aborted, each
	// once, as journaled.
	type want struct {
		event, image string
		weight       float64
		journal      string
	}
	wants := []want{
		{"step", images.AppImageV2, 10, journal.EventCanaryStep},
		{"step", images.AppImageV2, 50, journal.EventCanaryStep},
		{"promoted", images.AppImageV2, 100, journal.EventPromoted},
		{"step", images.AppImage, 10, journal.EventCanaryStep},
		{"aborted", images.AppImage, 0, journal.EventAborted},
	}
	e.waitFor(10*time.Second, "5 deliveries to the healthy receiver", func() (bool, string) {
		return len(good.deliveries()) >= len(wants), fmt.Sprint(len(good.deliveries()))
	})
	time.Sleep(500 * time.Millisecond) // nothing more arrives
	got := good.deliveries()
	records := e.events(journal.EventCanaryStep, journal.EventPromoted, journal.EventAborted)
	if len(got) != len(wants) || len(records) != len(wants) {
		t.Fatalf("%d deliveries and %d journaled events, want %d of each: %v", len(got), len(records), len(wants), got)
	}
	var latencies []time.Duration
	for i, w := range wants {
		d, rec := got[i], records[i]
		if rec.Event != w.journal {
			t.Fatalf("journal event %d is %s, want %s", i, rec.Event, w.journal)
		}
		where := fmt.Sprintf("delivery %d (%s)", i+1, w.event)
		if d.method != http.MethodPost || d.ct != "application/json" || d.agent != "swiftdeployd" || d.path != "/hooks/secret-token" {
			t.Errorf("%s: %s %s, Content-Type %q, User-Agent %q", where, d.method, d.path, d.ct, d.agent)
		}
		keys := []string{"event", "image", "project", "text", "time", "weight"}
		if w.event == "aborted" {
			keys = []string{"event", "figures", "image", "project", "reasons", "text", "time", "weight"}
		}
		var gotKeys []string
		for k := range d.body {
			gotKeys = append(gotKeys, k)
		}
		sort.Strings(gotKeys)
		if !slices.Equal(gotKeys, keys) {
			t.Errorf("%s: fields %v, want %v: %s", where, gotKeys, keys, d.raw)
		}
		if d.body["project"] != e.project || d.body["event"] != w.event || d.body["image"] != w.image || d.body["weight"] != w.weight {
			t.Errorf("%s: project %v event %v image %v weight %v; want %s %s %s %v", where, d.body["project"], d.body["event"], d.body["image"], d.body["weight"], e.project, w.event, w.image, w.weight)
		}
		if text := fmt.Sprint(d.body["text"]); text != "["+e.project+"] "+rec.Message {
			t.Errorf("%s: text %q, want %q", where, text, "["+e.project+"] "+rec.Message)
		}
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(d.body["time"]))
		if err != nil || !at.Equal(rec.Timestamp) {
			t.Errorf("%s: time %v (%v), want the journal record's %s", where, d.body["time"], err, rec.Timestamp.Format(time.RFC3339Nano))
		}
		latencies = append(latencies, d.at.Sub(rec.Timestamp))
		if w.event == "aborted" {
			reasons, _ := d.body["reasons"].([]any)
			figures, _ := d.body["figures"].(map[string]any)
			if len(reasons) != 1 || reasons[0] != "e2e: operator abort" || figures["requests"] == nil {
				t.Errorf("%s: reasons %v figures %v, want the operator's reason and the last check's figures", where, d.body["reasons"], d.body["figures"])
			}
		}
	}
	slices.Sort(latencies)
	t.Logf("webhook delivery latency (journaled → received) beside a dead and a hung receiver: min %s, median %s, max %s over %d deliveries",
		latencies[0].Round(100*time.Microsecond), latencies[len(latencies)/2].Round(100*time.Microsecond), latencies[len(latencies)-1].Round(100*time.Microsecond), len(latencies))
	if max := latencies[len(latencies)-1]; max >= notifyTimeout {
		t.Errorf("a delivery to the healthy receiver took %s: the dead or hung receiver delayed it", max)
	}

	// Delivery failures are journaled, with the path (a secret) left out:
	// the dead receiver's at once (refused, 3 attempts), the hung one's
	// after its attempts time out.
	failedFor := func(host string) int {
		n := 0
		for _, r := range e.events(journal.EventNotifyFailed) {
			if r.Details["url"] == "http://"+host && !strings.Contains(r.Message, "/down") && !strings.Contains(r.Message, "/hangs") {
				n++
			}
		}
		return n
	}
	e.waitFor(notifyAttempts*notifyTimeout+30*time.Second, "notify_failed for the dead and the hung receiver", func() (bool, string) {
		return failedFor(dead) == len(wants) && failedFor(hung) >= 1, fmt.Sprintf("dead %d, hung %d", failedFor(dead), failedFor(hung))
	})
	e.saveJournal()
	e.saveJournal()
	for _, r := range e.events(journal.EventNotifyFailed) {
		t.Logf("  %s %s", r.Timestamp.Format("15:04:05.000"), r.Message)
	}
	_, failures := l.finish()
	if len(failures) > 0 {
		t.Errorf("%d requests failed during the rollouts (e.g. %v)", len(failures), failures[:min(5, len(failures))])
	}
}

// The relative verdict fails a canary whose error rate is 3% against
// stable's 0% even with the absolute threshold raised to 5%: the analysis
// aborts it, and the journal and status say why, with the test statistic
// and the sample sizes. Then `swiftctl policy replay` re-judges the
// recorded decisions: unchanged with the policies that made them; a
// candidate without the relative rule would have let the canary through;
// a stricter p99 threshold would have denied the checks that passed.
func TestRelativeVerdictAbortsCanaryOnTheRealEngine(t *testing.T) {
	e := newEnv(t)
	// max_p99_ms: the abort must be the relative verdict's alone, and a
	// loaded host can push nginx's request times past 500 ms.
	relative := "  max_error_rate: 0.05\n  max_p99_ms: 3000\n  relative: {confidence: 0.95, min_requests: 100, max_p99_factor: 0}\n"
	base := e.manifest(images.AppImage, 2, "")
	base = strings.Replace(base, "  min_disk_gb: 0.1\n", "  min_disk_gb: 0.1\n"+relative, 1)
	e.writeManifest(base)
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})
	l := startTimedLoad(e.url("/"), 5*time.Millisecond)
	e.writeManifest(withSteps(base, images.AppImageV2, "      - {weight: 50, pause: 120s}\n", "{interval: 2s, failure_limit: 2, auto_promote: false}"))
	e.waitFor(90*time.Second, "step 1 with a passing check", func() (bool, string) {
		s := e.status()
		return s.Rollout != nil && s.Rollout.StepPasses > 0, fmt.Sprintf("%+v", s.Rollout)
	})
	e.chaos(api.ChaosRequest{Mode: "error", Rate: 0.03, Track: "canary"})
	chaosAt := time.Now()
	e.waitFor(60*time.Second, "aborted by the relative verdict", func() (bool, string) {
		s := e.status()
		return s.Rollout != nil && s.Rollout.Phase == api.PhaseAborted && s.Mode == "stable", fmt.Sprintf("%s %+v", s.Mode, s.Rollout)
	})
	abortedAt := e.events(journal.EventAborted)
	answers, failures := l.finish()
	if len(abortedAt) != 1 {
		t.Fatalf("aborted journaled %d times", len(abortedAt))
	}
	t.Logf("chaos (3%% errors on the canary at 50%%) → aborted in %s; %d of %d requests failed meanwhile",
		abortedAt[0].Timestamp.Sub(chaosAt).Round(10*time.Millisecond), len(failures), len(failures)+len(answers))

	// The journal: failed checks by the relative verdict, never by the
	// raised absolute threshold, with the statistic and sample sizes.
	var failedChecks int
	for _, r := range e.events(journal.EventCheckFailed) {
		failedChecks++
		figures, _ := r.Details["figures"].(map[string]any)
		rel, _ := figures["relative"].(map[string]any)
		if rel["verdict"] != "fail" || !strings.Contains(r.Message, "significantly higher than stable's") {
			t.Errorf("check_failed %q: relative %v, want a failing relative verdict", r.Message, rel)
		}
		if er, _ := figures["error_rate"].(float64); er >= 0.05 {
			t.Errorf("check_failed at error rate %v: the absolute threshold (5%%) would have failed it too", er)
		}
	}
	if failedChecks != 2 {
		t.Errorf("%d failed checks journaled, want the failure limit, 2", failedChecks)
	}
	var denied, allowed int
	err := journal.Read(filepath.Join(e.dir, "history.jsonl"), journal.Filter{Types: []string{journal.TypeDecision}}, func(r journal.Record) error {
		if r.PolicyName != "canary_safety" || r.Allowed == nil {
			return nil
		}
		if *r.Allowed {
			allowed++
			return nil
		}
		rel, _ := r.Input["relative"].(map[string]any)
		if rel == nil {
			t.Errorf("a canary_safety decision without the relative verdict in its input: %v", r.Input)
			return nil
		}
		if rel["verdict"] != "fail" {
			return nil // no data yet (the grace check)
		}
		denied++
		z, _ := rel["z"].(float64)
		zc, _ := rel["z_critical"].(float64)
		cr, _ := rel["canary_requests"].(float64)
		sr, _ := rel["stable_requests"].(float64)
		if z < zc || zc < 1.6 || cr < 100 || sr < 100 || rel["stable_error_rate"] != 0.0 {
			t.Errorf("relative verdict %v: want z above the critical value for 95%% and at least 100 requests each, stable at 0%%", rel)
		}
		if er, _ := r.Input["error_rate"].(float64); er >= 0.05 || strings.Contains(strings.Join(r.Reasons, ";"), "exceeds 5%") {
			t.Errorf("decision at error rate %v with reasons %v: want only the relative reason", er, r.Reasons)
		}
		if len(r.Reasons) == 0 || !strings.Contains(strings.Join(r.Reasons, ";"), "significantly higher than stable's 0.00%") {
			t.Errorf("decision reasons %v", r.Reasons)
		}
		if denied == 1 {
			t.Logf("relative verdict: canary %.2f%% over %.0f requests vs stable %.2f%% over %.0f: z %.2f (critical %.3f), p %.2g",
				100*rel["canary_error_rate"].(float64), cr, 100*rel["stable_error_rate"].(float64), sr, z, zc, rel["p_value"])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if denied < 2 || allowed < 1 {
		t.Errorf("%d canary_safety decisions denied by the relative verdict and %d allowed; want at least 2 and 1", denied, allowed)
	}

	// Status: aborted (from the moment nginx stopped routing to the
	// canary), the relative reason shown; the canary removed after the
	// drain.
	e.waitFor(30*time.Second, "the aborted canary removed", func() (bool, string) {
		s := e.status()
		for _, c := range s.Containers {
			if c.Track == "canary" {
				return false, c.Name + " " + c.State
			}
		}
		return s.Converged, fmt.Sprint(s.Pending)
	})
	s := e.status()
	if s.Rollout.Aborted == nil || !strings.Contains(strings.Join(s.Rollout.Aborted.Reasons, ";"), "2 of 2 allowed failed checks reached") ||
		!strings.Contains(strings.Join(s.Rollout.Aborted.Reasons, ";"), "significantly higher than stable's") {
		t.Errorf("status's abort: %+v", s.Rollout.Aborted)
	}
	if out, _ := e.swiftctl("status"); !contains(out, "ABORTED") || !contains(out, "significantly higher") {
		t.Errorf("swiftctl status after the abort:\n%s", out)
	}

	// Replays of the journal just recorded.
	e.saveJournal()
	out, code := e.swiftctl("policy", "replay")
	if code != 0 || !contains(out, " would flip (0 ALLOWED → DENIED, 0 DENIED → ALLOWED), 0 undefined, 0 errors") {
		t.Errorf("replay with the policies that decided: exit %d\n%s", code, out)
	}
	candidate := t.TempDir()
	for _, name := range []string{"infrastructure.rego", "canary_safety.rego"} {
		src, err := policies.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		text := string(src)
		if name == "canary_safety.rego" { // without the relative verdict
			cut := strings.Index(text, "deny contains lasting(\"relative_fail\"")
			end := strings.Index(text, "lasting(code, reason) :=")
			text = text[:cut] + text[end:]
		}
		if err := os.WriteFile(filepath.Join(candidate, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, code = e.swiftctl("policy", "replay", "--policies", candidate)
	flips := strings.Count(out, "canary_safety DENIED → ALLOWED")
	if code != 1 || flips < 2 || !contains(out, "    was: ") || !contains(out, "significantly higher than stable's") {
		t.Errorf("replay without the relative rule: exit %d, %d DENIED → ALLOWED flips, want exit 1 and the relative denials flipped:\n%s", code, flips, out)
	}
	t.Logf("replay without the relative rule:\n%s", lastLines(out, 6))
	out, code = e.swiftctl("policy", "replay", "--threshold", "max_p99_ms=0.001")
	stricter := strings.Count(out, "canary_safety ALLOWED → DENIED")
	if code != 1 || stricter != allowed || strings.Count(out, "    P99 latency exceeds 0.001ms") != allowed {
		t.Errorf("replay with max_p99_ms 0.001: exit %d, %d ALLOWED → DENIED flips, want exit 1 and all %d allowed canary decisions:\n%s", code, stricter, allowed, out)
	}
	t.Logf("replay with a stricter p99 threshold: %s", lastLines(out, 1))
}

// rolloutText is status's rollout with its last check and abort spelt out.
func rolloutText(s api.Status) string {
	r := s.Rollout
	if r == nil {
		return s.Mode + " " + s.StableImage + ", no rollout"
	}
	out := fmt.Sprintf("%s %s step %d/%d at %d%%, %d passes, %d/%d failed", s.Mode, r.Phase, r.Step, r.Steps, r.Weight, r.StepPasses, r.Failures, r.FailureLimit)
	if c := r.LastCheck; c != nil {
		out += fmt.Sprintf("; last check %s %v %v", c.Outcome, c.Reasons, c.Figures)
	}
	if a := r.Aborted; a != nil {
		out += fmt.Sprintf("; aborted: %v", a.Reasons)
	}
	return out
}

// saveJournal copies the test's journal to $SWIFTDEPLOY_E2E_SAVE_JOURNAL/
// <test>.jsonl when that is set: how cmd/swiftctl/testdata/replay's
// recorded journals were made.
func (e *env) saveJournal() {
	dir := os.Getenv("SWIFTDEPLOY_E2E_SAVE_JOURNAL")
	if dir == "" {
		return
	}
	b, err := os.ReadFile(filepath.Join(e.dir, "history.jsonl"))
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, e.t.Name()+".jsonl"), b, 0o644)
	}
	if err != nil {
		e.t.Errorf("save the journal: %v", err)
	}
}
