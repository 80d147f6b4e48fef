package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// proxyCanary is a stepped canary at 10% for a minute, judged every second,
// aborted at the third failed check, with the daemon following nginx's
// access log: the set-up of the two tests below, up to a first passing
// check that had nginx's figures.
func proxyCanary(t *testing.T, nginxExtra string) (*env, *sentLoad) {
	t.Helper()
	e := newEnv(t)
	steps := "      - {weight: 10, pause: 60s}\n      - {weight: 50, pause: 60s}\n"
	base := e.manifest(images.AppImage, 2, "")
	if nginxExtra != "" {
		base = strings.Replace(base, "nginx:\n", "nginx:\n"+nginxExtra, 1)
	}
	// failure_limit 5, and the load running before the canary's step
	// starts: the checks begin with the step, and a check with no data
	// then counts (only the first is graced); and once a canary hangs or
	// dies its app side is silent at the next check, before nginx has
	// logged a timed-out request. With 3, on a loaded host, a check that
	// found no data before the load reached the canary plus two silent
	// ones aborted it before nginx's view of the fault was in, the view
	// these tests are about.
	e.writeManifest(withSteps(base, images.AppImageV2, steps, "{interval: 1s, failure_limit: 5, auto_promote: true}"))
	e.startDaemon()
	l := startSentLoad(e.url("/"), 5*time.Millisecond) // failures before the fault are not counted (afterAbort)
	e.converged(map[string]int{images.AppImage: 2, images.AppImageV2: 1})
	e.waitFor(60*time.Second, "step 1 passing a check on both views", func() (bool, string) {
		s := e.status()
		c := trackOf(s, "canary")
		ok := s.Rollout != nil && s.Rollout.StepPasses > 0 && c != nil && c.Proxy != nil && c.Proxy.Outcome == "ok"
		return ok, fmt.Sprintf("rollout %+v canary %+v", s.Rollout, c)
	})
	if c := e.status().Rollout.LastCheck; c.Figures["proxy_error_rate"] == nil || c.Figures["proxy_p99_latency_ms"] == nil {
		t.Fatalf("a passing check without nginx's figures: %+v", c)
	}
	return e, l
}

// sentLoad is open-loop load that keeps, for every request, when it was
// sent, whether it failed and which track answered: a request that nginx
// routed to a dead canary can fail seconds after it was sent (a connect
// timeout), so what the abort changed is told by the sending time.
type sentLoad struct {
	mu   sync.Mutex
	reqs []sent
	stop func()
}

type sent struct {
	at     time.Time
	mode   string // X-App-Mode of a 200
	failed bool
	took   time.Duration
}

func startSentLoad(url string, every time.Duration) *sentLoad {
	l := &sentLoad{}
	l.stop = openLoop(url, every, func(at time.Time, mode string, err error) {
		took := time.Since(at)
		l.mu.Lock()
		l.reqs = append(l.reqs, sent{at: at, mode: mode, failed: err != nil, took: took})
		l.mu.Unlock()
	})
	return l
}

func (l *sentLoad) finish() []sent {
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reqs
}

func trackOf(s api.Status, track string) *api.TrackStats {
	for i := range s.Tracks {
		if s.Tracks[i].Track == track {
			return &s.Tracks[i]
		}
	}
	return nil
}

// afterAbort checks what every proxy test checks once the canary is
// aborted: journaled once with nginx's reason or the app's missing data, status saying so with both
// views, no canary left, and stable answering everything afterwards. It
// logs the figures and returns the aborted record.
func (e *env) afterAbort(l *sentLoad, faultAt time.Time, fault string) journal.Record {
	e.t.Helper()
	aborted := e.events(journal.EventAborted)
	if len(aborted) != 1 {
		e.t.Fatalf("aborted journaled %d times", len(aborted))
	}
	ab := aborted[0]
	took := ab.Timestamp.Sub(faultAt)
	time.Sleep(3 * time.Second)
	var during, failed, after, afterCanary, afterFailed int
	var lastFailed time.Time // sent
	var slowest time.Duration
	for _, r := range l.finish() {
		switch {
		case r.at.After(ab.Timestamp):
			after++
			if r.mode == "canary" {
				afterCanary++
			}
			if r.failed {
				afterFailed++
			}
		case r.at.After(faultAt):
			during++
			if r.failed {
				failed++
				lastFailed = r.at
			}
			slowest = max(slowest, r.took)
		}
	}
	for _, r := range e.events(journal.EventCheckFailed, journal.EventCheckPassed, journal.EventRollbackRequested, journal.EventAborted) {
		if r.Timestamp.After(faultAt.Add(-time.Second)) {
			e.t.Logf("  %+.2fs %s %s", r.Timestamp.Sub(faultAt).Seconds(), r.Event, r.Message)
		}
	}
	share := 100 * float64(failed) / float64(max(during, 1))
	e.t.Logf("%s → aborted journaled after %s; %d of %d requests sent in between failed (%.1f%%, canary weight 10%%), the last sent %s after the fault, the slowest took %s; %d requests sent after the abort, %d answered by the canary, %d failed (host loaded by other test runs)",
		fault, took.Round(10*time.Millisecond), failed, during, share, lastFailed.Sub(faultAt).Round(10*time.Millisecond), slowest.Round(10*time.Millisecond), after, afterCanary, afterFailed)
	// The rule: nginx's figures or the app's silence ("no data")
	// fail it. Which comes first depends on the host: a killed container's
	// requests may hang in nginx's connect until after the app side has
	// gone silent for three checks. The hang test insists on nginx's view.
	if !strings.Contains(ab.Message, "Proxy") && !strings.Contains(ab.Message, "no error metrics for the canary") {
		e.t.Errorf("aborted %q names neither nginx's view nor the app's missing data", ab.Message)
	}
	// Five failed checks a second apart plus one interval, plus the
	// rollback (drain and removal), with a margin for a loaded host.
	if took > 6*time.Second+2*time.Second+10*time.Second {
		e.t.Errorf("aborted %s after the fault", took)
	}
	if after == 0 || afterCanary != 0 || afterFailed != 0 {
		e.t.Errorf("of %d requests sent after the abort %d were answered by the canary and %d failed: stable must serve them all", after, afterCanary, afterFailed)
	}
	if share > 10+5 {
		e.t.Errorf("clients saw %.1f%% failures while the canary had 10%% of traffic", share)
	}
	s := e.status()
	// Status names the same reasons as the journal: nginx's view or the
	// app's missing data (the rule above).
	var reasons string
	if s.Rollout != nil && s.Rollout.Aborted != nil {
		reasons = strings.Join(s.Rollout.Aborted.Reasons, " ")
	}
	if s.Mode != "stable" || s.Rollout == nil || s.Rollout.Phase != api.PhaseAborted || (!strings.Contains(reasons, "Proxy") && !strings.Contains(reasons, "no error metrics for the canary")) {
		e.t.Errorf("status after the abort: mode %s rollout %+v", s.Mode, s.Rollout)
	}
	for _, c := range s.Containers {
		if c.Track == "canary" {
			e.t.Errorf("canary container %s still there after the abort", c.Name)
		}
	}
	if st := trackOf(s, "stable"); st == nil || st.Proxy == nil || st.Proxy.Outcome != "ok" || st.Proxy.ErrorRate != 0 {
		e.t.Errorf("stable's figures after the abort: %+v", st)
	}
	out, _ := e.swiftctl("status")
	for _, want := range []string{"ABORTED", "5 of 5 allowed failed checks", "Proxy (nginx's access log):", "Proxy error rate:"} {
		if !contains(out, want) {
			e.t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, code := e.swiftctl("status", "-o", "json")
	var js api.Status
	if err := json.Unmarshal([]byte(out), &js); code != 0 || err != nil {
		e.t.Fatalf("status -o json: exit %d, %v", code, err)
	}
	if st := trackOf(js, "stable"); st == nil || st.Proxy == nil || st.Proxy.Requests == 0 {
		e.t.Errorf("status -o json lacks nginx's figures: %+v", st)
	}
	return ab
}

// A canary whose process dies: the container is killed, its /metrics
// falls silent, and nginx answers its share with errors until the daemon
// has restored it. nginx's figures fail the checks (the app's only say
// no data), and the analysis aborts it.
func TestProxyCanaryDies(t *testing.T) {
	e, l := proxyCanary(t, "")
	var canary string
	for _, c := range e.status().Containers {
		if c.Track == "canary" {
			canary = c.Name
		}
	}
	killedAt := time.Now()
	if _, err := e.cli.ContainerKill(context.Background(), canary, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatalf("kill %s: %v", canary, err)
	}
	e.waitFor(60*time.Second, "aborted", func() (bool, string) {
		s := e.status()
		return s.Rollout != nil && s.Rollout.Phase == api.PhaseAborted && s.Mode == "stable", fmt.Sprintf("%s %+v", s.Mode, s.Rollout)
	})
	e.afterAbort(l, killedAt, "canary killed")
}

// A canary that crashes on half its requests: the handler dies and the
// connection drops with no answer, which the app's own metrics never count
// (they see only the requests it answered, all 200). Only nginx's access
// log sees the failures (its 502s), so the abort must come from nginx's
// view alone: the access-log path on its own, with the app's figures
// saying all is well.
func TestProxyCanaryCrashesUnseenByItsMetrics(t *testing.T) {
	e, l := proxyCanary(t, "")
	crashedAt := time.Now()
	e.chaos(api.ChaosRequest{Mode: "crash", Rate: 0.5, Track: "canary"})
	e.waitFor(60*time.Second, "aborted", func() (bool, string) {
		s := e.status()
		return s.Rollout != nil && s.Rollout.Phase == api.PhaseAborted && s.Mode == "stable", fmt.Sprintf("%s %+v", s.Mode, s.Rollout)
	})
	ab := e.afterAbort(l, crashedAt, "canary crashing on half its requests")
	if !strings.Contains(ab.Message, "Proxy error rate exceeds") {
		t.Errorf("aborted %q: want nginx's error rate", ab.Message)
	}
	// The app's view passed: no app-side reason in any failed check.
	for _, r := range e.events(journal.EventCheckFailed) {
		if r.Timestamp.Before(crashedAt) {
			continue
		}
		if strings.Contains(r.Message, "Error rate exceeds") || strings.Contains(r.Message, "no error metrics") || strings.Contains(r.Message, "Insufficient data") {
			t.Errorf("a failed check had an app-side reason: %q (the app's metrics must not see the crashes)", r.Message)
		}
	}
}

// A canary that hangs: it answers nothing, its /metrics included, so the
// app side has no data, and nginx gives up on it after proxy_timeout with
// 504s. nginx's error rate and p99 fail the checks and the analysis aborts
// it. The hang itself is unreachable through nginx.
func TestProxyCanaryHangs(t *testing.T) {
	e, l := proxyCanary(t, "  proxy_timeout: 1s\n")
	resp, err := http.Post(e.url("/chaos"), "application/json", strings.NewReader(`{"mode":"hang"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST /chaos through nginx: %d, want 403", resp.StatusCode)
	}
	hungAt := time.Now()
	e.chaos(api.ChaosRequest{Mode: "hang", Track: "canary"})
	e.waitFor(60*time.Second, "aborted", func() (bool, string) {
		s := e.status()
		return s.Rollout != nil && s.Rollout.Phase == api.PhaseAborted && s.Mode == "stable", fmt.Sprintf("%s %+v", s.Mode, s.Rollout)
	})
	ab := e.afterAbort(l, hungAt, "canary hung")
	if !strings.Contains(ab.Message, "Proxy P99 latency exceeds") && !strings.Contains(ab.Message, "Proxy error rate exceeds") {
		t.Errorf("aborted %q: want nginx's latency or error rate", ab.Message)
	}
}

// nginx killed and restored by the daemon: the log stream of the old
// container ended, and the daemon follows the new one (nginx's figures
// come back, from requests the new nginx served).
func TestProxyFollowsRecreatedNginx(t *testing.T) {
	e := newEnv(t)
	e.writeManifest(e.manifest(images.AppImage, 2, ""))
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})
	l := startSentLoad(e.url("/"), 10*time.Millisecond)
	defer l.finish()
	proxyOK := func() (bool, string) {
		st := trackOf(e.status(), "stable")
		return st != nil && st.Proxy != nil && st.Proxy.Outcome == "ok", fmt.Sprintf("%+v", st)
	}
	e.waitFor(60*time.Second, "nginx's figures for stable", proxyOK)
	var nginx string
	for _, c := range e.status().Containers {
		if c.Role == "nginx" {
			nginx = c.Name
		}
	}
	killed := time.Now()
	if _, err := e.cli.ContainerKill(context.Background(), nginx, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatalf("kill %s: %v", nginx, err)
	}
	sawMissing := false
	e.waitFor(60*time.Second, "nginx restored and its log followed", func() (bool, string) {
		s := e.status()
		st := trackOf(s, "stable")
		if st != nil && st.Proxy != nil && st.Proxy.Outcome == "missing_data" {
			sawMissing = true
		}
		ok, detail := proxyOK()
		return ok && time.Since(killed) > time.Second, detail
	})
	t.Logf("nginx killed → its log followed again and nginx's figures ok after %s (missing data seen in between: %v)", time.Since(killed).Round(100*time.Millisecond), sawMissing)
	b, _ := os.ReadFile(filepath.Join(e.dir, "daemon.log"))
	if n := strings.Count(string(b), "following nginx's access log"); n < 2 {
		t.Errorf("the daemon followed nginx's log %d times, want again after the kill:\n%s", n, lastLines(string(b), 30))
	}
}
