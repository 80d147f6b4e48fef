package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/failpoint"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// The crash suite (docs/reliability.md). Each trial arms one failpoint of
// the daemon (or picks a random moment to SIGKILL it), starts the daemon,
// sets a scenario going under load, lets the daemon die, restarts it
// without failpoints and checks what the crash left: it converges (to the
// manifest, or to the last transaction that took effect), Docker holds
// exactly the wanted containers, nginx serves what status says, the
// journal's chain verifies, and no request failed outside a window where
// nginx itself was stopped.
//
// SWIFTDEPLOY_CHAOS_TRIALS sets the number of trials (`task chaos-suite`
// runs 100); without it the normal suite runs a short seeded subset.
// SWIFTDEPLOY_CHAOS_SEED replays a run: the trial list is a pure function
// of the seed and the count, and is printed before the first trial.
const (
	chaosEnvTrials   = "SWIFTDEPLOY_CHAOS_TRIALS"
	chaosEnvSeed     = "SWIFTDEPLOY_CHAOS_SEED"
	chaosCITrials    = 6
	chaosDefaultSeed = 20261201
)

type scenario string

const (
	scRollout  scenario = "rollout"
	scScale    scenario = "scale"
	scPromote  scenario = "promotion"
	scRollback scenario = "rollback"
	scDown     scenario = "down"
)

// scenarioPoints are the failpoints each scenario passes through.
var scenarioPoints = map[scenario][]string{
	scRollout: {
		failpoint.Apply("before", "start-app"), failpoint.Apply("after", "start-app"),
		failpoint.Apply("before", "wait-healthy"), failpoint.Apply("after", "wait-healthy"),
		failpoint.Apply("before", "reload-nginx"), failpoint.NginxWritten, failpoint.Apply("after", "reload-nginx"),
		failpoint.Apply("before", "remove-app"), failpoint.Apply("after", "remove-app"),
		failpoint.JournalAppend + "=4",
	},
	scScale: {
		failpoint.Apply("before", "start-app"), failpoint.Apply("after", "wait-healthy"),
		failpoint.NginxWritten, failpoint.Apply("after", "reload-nginx"),
	},
	scPromote: {
		failpoint.PromotePending, failpoint.Apply("after", "start-app"), failpoint.NginxWritten,
		failpoint.PromoteApplied, failpoint.PromoteJournaled, failpoint.Apply("before", "remove-app"),
		failpoint.JournalAppend + "=6",
	},
	scRollback: {
		failpoint.RollbackPending, failpoint.NginxWritten, failpoint.RollbackApplied,
		failpoint.RollbackJournaled, failpoint.Apply("before", "remove-app"),
	},
	scDown: {failpoint.DownSaved, failpoint.DownRemoved},
}

var scenarioOrder = []scenario{scRollout, scPromote, scRollback, scScale, scDown}

// trial is one crash: a failpoint spec, or (point "") a random kill at
// frac of the action's measured duration after the action is set going.
// Rollouts got fast: a delay drawn from a fixed range (0–6 s) fell after
// the action in most trials and restarted an idle daemon, so the moment is
// drawn within the duration the action took on this stack (calibrate).
type trial struct {
	n        int
	scenario scenario
	point    string
	frac     float64
}

func (t trial) String() string {
	if t.point != "" {
		return fmt.Sprintf("#%d %s @ %s", t.n, t.scenario, t.point)
	}
	return fmt.Sprintf("#%d %s @ random %.0f%% of the action", t.n, t.scenario, 100*t.frac)
}

func (t trial) label() string {
	if t.point != "" {
		return t.point
	}
	return "random moment"
}

// chaosTrials lists n trials: every point of every scenario in turn, then
// random moments, with scenarios, journal-append counts and delays drawn
// from seed. The CI subset (n < all points) samples the points instead.
func chaosTrials(seed uint64, n int) []trial {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	var all []trial
	for _, sc := range scenarioOrder {
		for _, p := range scenarioPoints[sc] {
			all = append(all, trial{scenario: sc, point: p})
		}
	}
	if n < len(all) {
		// A short run (CI) samples the points of two scenarios drawn from
		// the seed: each scenario costs a stack of its own.
		first := rng.IntN(len(scenarioOrder))
		second := (first + 1 + rng.IntN(len(scenarioOrder)-1)) % len(scenarioOrder)
		var some []trial
		for _, tr := range all {
			if tr.scenario == scenarioOrder[first] || tr.scenario == scenarioOrder[second] {
				some = append(some, tr)
			}
		}
		rng.Shuffle(len(some), func(i, j int) { some[i], some[j] = some[j], some[i] })
		// A quarter (at least one) are random moments within the action,
		// in a scenario of the two that has them (down has none).
		var randomIn []scenario
		for _, sc := range []scenario{scenarioOrder[first], scenarioOrder[second]} {
			if sc != scDown {
				randomIn = append(randomIn, sc)
			}
		}
		k := 0
		if len(randomIn) > 0 && n >= 2 {
			k = max(1, n/4)
		}
		all = some[:min(n-k, len(some))]
		for i := 0; i < k; i++ {
			all = append(all, trial{scenario: randomIn[i%len(randomIn)], frac: rng.Float64()})
		}
		// One scenario after another: each keeps its stack between trials.
		sort.SliceStable(all, func(i, j int) bool { return scIndex(all[i].scenario) < scIndex(all[j].scenario) })
	}
	for len(all) < n {
		sc := scenarioOrder[rng.IntN(len(scenarioOrder)-1)] // down has no random moments: it is fast
		all = append(all, trial{scenario: sc, frac: rng.Float64()})
	}
	if n >= len(all) {
		sort.SliceStable(all, func(i, j int) bool { return scIndex(all[i].scenario) < scIndex(all[j].scenario) })
	}
	for i := range all {
		all[i].n = i + 1
	}
	return all
}

func scIndex(s scenario) int {
	for i, x := range scenarioOrder {
		if x == s {
			return i
		}
	}
	return len(scenarioOrder)
}

// result is what a trial found.
type result struct {
	trial
	fired         bool // the daemon died of the failpoint (or the random kill)
	during        bool // the kill came while the action was under way
	delay         time.Duration
	converged     bool
	dupOrphans    int
	failed        int64
	failedNginx   int64 // failed while nginx was stopped
	outcome       string
	problems      []string
	convergeAfter time.Duration
}

func TestCrashSuite(t *testing.T) {
	n := chaosCITrials
	if v := os.Getenv(chaosEnvTrials); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("%s=%q: want a whole number ≥ 1", chaosEnvTrials, v)
		}
	}
	seed := uint64(chaosDefaultSeed)
	if v := os.Getenv(chaosEnvSeed); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: want a whole number", chaosEnvSeed, v)
		}
	}
	trials := chaosTrials(seed, n)
	t.Logf("crash suite: seed %d, %d trials (replay: %s=%d %s=%d go test -run '^TestCrashSuite$' ./e2e/)", seed, n, chaosEnvSeed, seed, chaosEnvTrials, n)
	for _, tr := range trials {
		t.Logf("  %s", tr)
	}

	var results []result
	var c *chaosStack
	for _, tr := range trials {
		if c == nil || c.scenario != tr.scenario || c.broken {
			if c != nil {
				c.close()
			}
			c = newChaosStack(t, tr.scenario)
		}
		r := c.run(tr)
		results = append(results, r)
		status := "ok"
		if len(r.problems) > 0 {
			status = "FAIL: " + strings.Join(r.problems, "; ")
			c.broken = true
		}
		t.Logf("%s: fired=%v during=%v (%s) outcome=%s converged=%v in %s dup/orphans=%d failed=%d (nginx stopped: %d) %s",
			tr, r.fired, r.during, r.delay.Round(time.Millisecond), r.outcome, r.converged, r.convergeAfter.Round(time.Millisecond), r.dupOrphans, r.failed, r.failedNginx, status)
	}
	if c != nil {
		c.close()
	}
	table := figuresTable(results)
	during := 0
	for _, r := range results {
		if r.during {
			during++
		}
	}
	t.Logf("crash suite figures (seed %d): %d of %d trials killed during the action\n%s", seed, during, len(results), table)
	if out := os.Getenv("SWIFTDEPLOY_CHAOS_OUT"); out != "" {
		_ = os.WriteFile(out, []byte(table), 0o644)
	}
}

// figuresTable is the Markdown table of docs/reliability.md.
func figuresTable(rs []result) string {
	type row struct {
		trials, fired, during, converged, dup int
		failed, nginx                         int64
	}
	rows := map[string]*row{}
	var keys []string
	for _, r := range rs {
		k := string(r.scenario) + " | " + r.label()
		if rows[k] == nil {
			rows[k] = &row{}
			keys = append(keys, k)
		}
		w := rows[k]
		w.trials++
		if r.fired {
			w.fired++
		}
		if r.during {
			w.during++
		}
		if r.converged {
			w.converged++
		}
		w.dup += r.dupOrphans
		w.failed += r.failed
		w.nginx += r.failedNginx
	}
	var b strings.Builder
	b.WriteString("| scenario | crash point | trials | killed there | killed during the action | converged | duplicates/orphans | requests failed (while nginx stopped) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	var tot row
	for _, k := range keys {
		w := rows[k]
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d (%d) |\n", k, w.trials, w.fired, w.during, w.converged, w.dup, w.failed, w.nginx)
		tot.trials += w.trials
		tot.fired += w.fired
		tot.during += w.during
		tot.converged += w.converged
		tot.dup += w.dup
		tot.failed += w.failed
		tot.nginx += w.nginx
	}
	fmt.Fprintf(&b, "| **all** | | **%d** | **%d** | **%d** | **%d** | **%d** | **%d (%d)** |\n", tot.trials, tot.fired, tot.during, tot.converged, tot.dup, tot.failed, tot.nginx)
	return b.String()
}

// chaosStack is one project kept across the trials of a scenario: each
// trial moves it from one state to the other (v1↔v2, 2↔3 replicas, the
// promoted and canary images swapped, up↔down).
type chaosStack struct {
	t        *testing.T
	e        *env
	scenario scenario
	flip     bool // which of the two states the stack is in
	broken   bool
	// actionTook is how long the scenario's action took here, start to
	// complete, with no crash (calibrate); random moments fall within it.
	actionTook time.Duration
}

var appVersions = map[string]string{images.AppImage: images.AppVersion, images.AppImageV2: images.AppV2Version}

// chaosPolicy relaxes latency for a busy test host: promotions must not be
// denied for p99, which is not what this suite tests.
const chaosPolicy = "  max_p99_ms: 5000\n"

func newChaosStack(t *testing.T, sc scenario) *chaosStack {
	t.Helper()
	c := &chaosStack{t: t, scenario: sc}
	// A subtest-less env: its cleanup runs when the suite ends, so close
	// removes the project's objects at once instead.
	c.e = newEnv(t)
	c.e.writeManifest(c.manifestFor(false))
	c.e.startDaemon()
	c.waitConverged(c.want(false))
	c.e.stopDaemon(syscall.SIGTERM)
	return c
}

// waitConverged waits until status itself says converged (the last run
// succeeded, nothing pending) with want running and nginx serving, so that
// a trial never starts in the middle of an apply.
func (c *chaosStack) waitConverged(want map[string]int) {
	c.e.waitFor(120*time.Second, fmt.Sprintf("converged with %v", want), func() (bool, string) {
		var s api.Status
		if err := c.e.api.Get(context.Background(), api.PathStatus, &s); err != nil {
			return false, err.Error()
		}
		ok := s.Converged && len(s.Pending) == 0 && s.Revision != "" && fmt.Sprint(c.e.running(s)) == fmt.Sprint(want)
		return ok, fmt.Sprintf("converged %v running %v pending %v revision %q last %+v", s.Converged, c.e.running(s), s.Pending, s.Revision, s.LastReconcile)
	})
}

func (c *chaosStack) close() {
	if c.e.daemon != nil {
		c.e.stopDaemon(syscall.SIGTERM)
	}
	removeProject(c.t, c.e)
}

// manifestFor is the manifest of the scenario's state flip (before the
// trial's action; the action moves to !flip).
func (c *chaosStack) manifestFor(flip bool) string {
	e := c.e
	a, b := images.AppImage, images.AppImageV2
	if flip {
		a, b = b, a
	}
	switch c.scenario {
	case scRollout:
		return e.manifest(a, 2, chaosPolicy)
	case scScale:
		if flip {
			return e.manifest(images.AppImage, 3, chaosPolicy)
		}
		return e.manifest(images.AppImage, 2, chaosPolicy)
	case scPromote, scRollback:
		// Stable a with canary b at 50%; promoting makes b stable, rolling
		// back drops b. The next trial swaps them.
		return withCanary(e.manifest(a, 2, chaosPolicy), b, 50)
	}
	return e.manifest(images.AppImage, 2, chaosPolicy) // down
}

// want is the running app containers per image in state flip before the
// action (canary scenarios: stable a ×2 + canary b ×1).
func (c *chaosStack) want(flip bool) map[string]int {
	a, b := images.AppImage, images.AppImageV2
	if flip {
		a, b = b, a
	}
	switch c.scenario {
	case scRollout:
		return map[string]int{a: 2}
	case scScale:
		if flip {
			return map[string]int{images.AppImage: 3}
		}
		return map[string]int{images.AppImage: 2}
	case scPromote, scRollback:
		return map[string]int{a: 2, b: 1}
	}
	return map[string]int{images.AppImage: 2}
}

// startArmed starts the daemon with failpoints armed by spec ("" for none)
// and waits for its socket, unless it dies first.
func (c *chaosStack) startArmed(spec string) {
	e := c.e
	logf, err := os.OpenFile(filepath.Join(e.dir, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	fmt.Fprintf(logf, "---- chaos: starting daemon with %s=%q\n", failpoint.Env, spec)
	cmd := exec.Command(filepath.Join(binDir, "swiftdeployd"), "--manifest", filepath.Join(e.dir, "manifest.yaml"), "--socket", e.socket)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), failpoint.Env+"="+spec)
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	e.daemon = cmd
	exited := make(chan struct{})
	e.exited = exited
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return
		default:
		}
		var s api.Status
		if e.api.Get(context.Background(), api.PathStatus, &s) == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("daemon socket did not appear within 15s")
}

// killedByFailpoint reports whether the daemon process ended by SIGKILL.
func killedBySIGKILL(cmd *exec.Cmd) bool {
	if cmd.ProcessState == nil {
		return false
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// run is one trial.
func (c *chaosStack) run(tr trial) (r result) {
	r.trial = tr
	e := c.e
	if tr.point == "" && c.actionTook == 0 {
		// Before the trial's clock starts: its journal check counts the
		// transitions journaled since then, and calibrating makes one.
		c.calibrate()
	}
	start := time.Now()
	stopped := watchNginxStops(e)
	l := startChaosLoad(e.url("/"), 25*time.Millisecond)

	c.startArmed(tr.point)
	proc := e.daemon
	exited := e.exited
	triggered, actionDone := c.startAction(exited)
	var random <-chan time.Time
	var triggeredAt time.Time
	if tr.point == "" {
		<-triggered
		triggeredAt = time.Now()
		r.delay = time.Duration(tr.frac * float64(c.actionTook))
		random = time.After(r.delay)
	}
	// Wait for the daemon to die. A point not on this run's path (or a
	// random moment after the end) becomes a kill once the action is
	// complete: still a crash to recover from, but the trial of a point
	// fails (it did not test what it names).
	deadline := time.After(90 * time.Second)
	poll := time.NewTicker(300 * time.Millisecond)
	killedByUs := false // after the action was complete: not a kill at the point
wait:
	for {
		select {
		case <-exited:
			break wait
		case <-random:
			// Killed during the action if it is not complete yet.
			r.during = !c.actionComplete(actionDone)
			r.delay = time.Since(triggeredAt)
			_ = proc.Process.Signal(syscall.SIGKILL)
		case <-deadline:
			killedByUs = true
			_ = proc.Process.Signal(syscall.SIGKILL)
		case <-poll.C:
			if !killedByUs && c.actionComplete(actionDone) {
				// The CLI call also returns when the daemon dies (its
				// socket closes): an exit under way is seen first, or a
				// kill at the failpoint would count as ours (seen: "never
				// fired" after the log said it fired).
				select {
				case <-exited:
					break wait
				case <-time.After(time.Second):
				}
				killedByUs = true
				_ = proc.Process.Signal(syscall.SIGKILL)
			}
		}
	}
	poll.Stop()
	r.fired = killedBySIGKILL(proc) && !killedByUs
	if tr.point != "" {
		r.during = r.fired // a failpoint is on the action's path
	}
	<-actionDone
	e.daemon = nil

	// Restart without failpoints and check.
	restarted := time.Now()
	c.startArmed("")
	if c.scenario == scDown && c.isDownRecorded() {
		r.outcome = "down"
	}
	r.converged, r.outcome = c.settle(r.outcome)
	r.convergeAfter = time.Since(restarted)
	failed, times, samples := l.finish()
	r.failed = failed
	r.failedNginx = stopped.countDuring(times)
	stopped.stop()
	if !r.converged {
		r.problems = append(r.problems, "did not converge within 120s")
	} else if (c.scenario == scRollout || c.scenario == scScale) && r.outcome != "after" {
		r.problems = append(r.problems, "converged to the old manifest, not the one on disk")
	} else {
		r.dupOrphans, r.problems = c.checkContainers(r.outcome, r.problems)
		r.problems = c.checkServes(r.outcome, r.problems)
	}
	r.problems = c.checkJournal(start, r.outcome, r.problems)
	if tr.point != "" && !r.fired {
		// A trial whose failpoint never fired tested a crash at some
		// other moment (after the action), not the one it names.
		r.problems = append(r.problems, fmt.Sprintf("failpoint %s never fired: the daemon was not killed there", tr.point))
	}
	if unexplained := r.failed - r.failedNginx; unexplained > 0 {
		r.problems = append(r.problems, fmt.Sprintf("%d requests failed while nginx was running (e.g. %v)", unexplained, samples))
	}
	if len(r.problems) > 0 {
		// The problems first: CI keeps the head and tail of a long
		// output, and the log below can push them out of both.
		c.t.Errorf("%s: %s", tr, strings.Join(r.problems, "; "))
		b, _ := os.ReadFile(filepath.Join(e.dir, "daemon.log"))
		c.t.Logf("%s daemon log (last 40 lines):\n%s", tr, lastLines(string(b), 40))
	}
	// Move to the next trial's starting state, then stop the daemon.
	c.prepareNext(r.outcome)
	e.stopDaemon(syscall.SIGTERM)
	return r
}

// startAction sets the scenario's action going in the background (a CLI
// call fails when the daemon dies); triggered closes when it starts (after
// a promotion became allowed), actionDone when its call returned.
func (c *chaosStack) startAction(exited <-chan struct{}) (triggered, actionDone chan struct{}) {
	e := c.e
	triggered, actionDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(actionDone)
		if c.scenario == scPromote {
			c.waitPromotable(exited)
		}
		close(triggered)
		switch c.scenario {
		case scRollout, scScale:
			e.writeManifest(c.manifestFor(!c.flip))
		case scPromote:
			runCLI(e, "promote")
		case scRollback:
			runCLI(e, "rollback")
		case scDown:
			runCLI(e, "down")
		}
	}()
	return triggered, actionDone
}

// calibrate runs the scenario's action once with no crash and measures how
// long it takes from start to complete, so that random moments fall
// within it; the stack is then moved on as after any trial.
func (c *chaosStack) calibrate() {
	l := startChaosLoad(c.e.url("/"), 25*time.Millisecond)
	defer l.finish()
	c.startArmed("")
	triggered, actionDone := c.startAction(c.e.exited)
	<-triggered
	began := time.Now()
	deadline := time.Now().Add(90 * time.Second)
	for !c.actionComplete(actionDone) {
		if time.Now().After(deadline) {
			c.t.Fatalf("calibrating %s: the action did not complete within 90s", c.scenario)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.actionTook = time.Since(began)
	c.t.Logf("calibrated %s: the action takes %s here; random moments fall within it", c.scenario, c.actionTook.Round(time.Millisecond))
	outcome := "after"
	if c.scenario == scDown {
		outcome = "down"
	}
	c.prepareNext(outcome)
	c.e.stopDaemon(syscall.SIGTERM)
}

// actionComplete: the CLI call returned, or the manifest edit has
// converged (the daemon lived through the whole action).
func (c *chaosStack) actionComplete(actionDone <-chan struct{}) bool {
	select {
	case <-actionDone:
	default:
		return false
	}
	if c.scenario != scRollout && c.scenario != scScale {
		return true
	}
	var s api.Status
	if err := c.e.api.Get(context.Background(), api.PathStatus, &s); err != nil {
		return false
	}
	return s.Converged && fmt.Sprint(c.e.running(s)) == fmt.Sprint(c.wantAfter())
}

func runCLI(e *env, args ...string) {
	full := append([]string{"--manifest", filepath.Join(e.dir, "manifest.yaml"), "--socket", e.socket}, args...)
	_ = exec.Command(filepath.Join(binDir, "swiftctl"), full...).Run()
}

// waitPromotable waits until canary safety allows a promotion (the restarted
// daemon needs a window of figures), or the daemon dies.
func (c *chaosStack) waitPromotable(exited <-chan struct{}) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return
		default:
		}
		var s api.Status
		if c.e.api.Get(context.Background(), api.PathStatus, &s) == nil {
			if allowed, _, ok := canaryVerdict(s); ok && allowed {
				return
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (c *chaosStack) isDownRecorded() bool {
	var s api.Status
	return c.e.api.Get(context.Background(), api.PathStatus, &s) == nil && s.Down
}

// settle waits for the restarted daemon to converge and names the state it
// converged to: "before" (the action did not take effect), "after" (it
// did) or "down".
func (c *chaosStack) settle(outcome string) (bool, string) {
	e := c.e
	before, after := c.want(c.flip), c.wantAfter()
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		var s api.Status
		if err := e.api.Get(context.Background(), api.PathStatus, &s); err == nil {
			if outcome == "down" || s.Down {
				if len(e.dockerContainers()) == 0 && s.Down {
					return true, "down"
				}
			} else if s.Converged && len(s.Pending) == 0 {
				got := fmt.Sprint(e.running(s))
				switch got {
				case fmt.Sprint(after):
					return true, "after"
				case fmt.Sprint(before):
					return true, "before"
				}
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return false, outcome
}

// wantAfter is the running app containers once the action took effect.
func (c *chaosStack) wantAfter() map[string]int {
	a, b := images.AppImage, images.AppImageV2
	if c.flip {
		a, b = b, a
	}
	switch c.scenario {
	case scRollout:
		return map[string]int{b: 2}
	case scScale:
		return c.want(!c.flip)
	case scPromote:
		return map[string]int{b: 2}
	case scRollback:
		return map[string]int{a: 2}
	}
	return map[string]int{}
}

// checkContainers asks Docker: exactly the wanted containers, all running,
// one nginx, nothing half-created or left over (check containers included).
func (c *chaosStack) checkContainers(outcome string, problems []string) (int, []string) {
	e := c.e
	all := e.dockerContainers()
	var want map[string]int
	switch outcome {
	case "down":
		if len(all) != 0 {
			problems = append(problems, fmt.Sprintf("down, yet Docker has %v", all))
		}
		return len(all), problems
	case "after":
		want = c.wantAfter()
	default:
		want = c.want(c.flip)
	}
	total := 1
	for _, n := range want {
		total += n
	}
	bad := 0
	nginx := 0
	for _, x := range all {
		if !strings.HasSuffix(x, "/running") {
			bad++
			problems = append(problems, "container not running: "+x)
		}
		if strings.HasPrefix(x, e.project+"-nginx/") {
			nginx++
		}
	}
	if extra := len(all) - total; extra != 0 || nginx != 1 {
		bad += max(extra, 0)
		problems = append(problems, fmt.Sprintf("Docker has %d containers (%d nginx), want %d (1 nginx): %v", len(all), nginx, total, all))
	}
	return bad, problems
}

// checkServes compares what status says nginx serves with what answers
// through nginx.
func (c *chaosStack) checkServes(outcome string, problems []string) []string {
	if outcome == "down" {
		return problems
	}
	s := c.e.status()
	allowed := map[string]bool{appVersions[s.StableImage]: true}
	if s.Mode == "canary" {
		allowed[appVersions[s.CanaryImage]] = true
	}
	if s.Revision == "" {
		problems = append(problems, "status reports no loaded nginx revision")
	}
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		code, info, err := get(c.e.url("/"))
		if err != nil || code != 200 {
			problems = append(problems, fmt.Sprintf("GET through nginx: %d %v", code, err))
			break
		}
		seen[info.Version]++
	}
	for v := range seen {
		if !allowed[v] {
			problems = append(problems, fmt.Sprintf("nginx serves version %s; status says mode %s stable %s canary %s (revision %s)", v, s.Mode, s.StableImage, s.CanaryImage, s.Revision))
		}
	}
	return problems
}

// checkJournal verifies the chain (as swiftctl audit does) and that a
// transaction's outcome is journaled exactly when it took effect.
func (c *chaosStack) checkJournal(since time.Time, outcome string, problems []string) []string {
	path := filepath.Join(c.e.dir, "history.jsonl")
	rep, err := journal.Verify(path)
	if err != nil || !rep.OK {
		problems = append(problems, fmt.Sprintf("journal chain does not verify: %v %+v", err, rep.First))
	}
	if out, code := c.e.swiftctl("audit", "--out", filepath.Join(c.e.dir, "audit.md")); code != 0 {
		problems = append(problems, "swiftctl audit: "+strings.TrimSpace(out))
	}
	event := map[scenario]string{scPromote: journal.EventPromoted, scRollback: journal.EventRolledBack}[c.scenario]
	if event == "" {
		return problems
	}
	n := 0
	_ = journal.Read(path, journal.Filter{Types: []string{journal.TypeEvent}}, func(r journal.Record) error {
		if r.Event == event && !r.Timestamp.Before(since) {
			n++
		}
		return nil
	})
	want := 0
	if outcome == "after" {
		want = 1
	}
	if n != want {
		problems = append(problems, fmt.Sprintf("%s journaled %d times since the trial began, want %d (outcome %s)", event, n, want, outcome))
	}
	return problems
}

// prepareNext moves the stack to a starting state for the next trial.
func (c *chaosStack) prepareNext(outcome string) {
	e := c.e
	switch {
	case outcome == "down" || c.scenario == scDown:
		runCLI(e, "deploy")
		c.waitConverged(c.want(c.flip))
	case outcome == "after" && c.scenario == scScale:
		// Scale always goes 2→3: scaling down starts nothing, so the
		// points before start-app and after wait-healthy would never fire.
		e.writeManifest(c.manifestFor(false))
		c.waitConverged(c.want(false))
	case outcome == "after":
		c.flip = !c.flip
		if c.scenario == scPromote || c.scenario == scRollback {
			// The promoted (or kept) image becomes the manifest's stable,
			// with the other one as the next canary.
			e.writeManifest(c.manifestFor(c.flip))
			c.waitConverged(c.want(c.flip))
		}
	case c.scenario == scRollout || c.scenario == scScale:
		// The action did not take effect yet the manifest says it should:
		// converging means "after"; settle found "before" only if the
		// manifest edit was never made.
		e.writeManifest(c.manifestFor(c.flip))
		c.waitConverged(c.want(c.flip))
	}
}

// nginxStops records when the project's nginx container was stopped
// (die … start), from Docker's events.
type nginxStops struct {
	mu      sync.Mutex
	windows [][2]time.Time
	open    time.Time // stopped and not started again (yet): down
	cancel  context.CancelFunc
	done    chan struct{}
}

func watchNginxStops(e *env) *nginxStops {
	ctx, cancel := context.WithCancel(context.Background())
	n := &nginxStops{cancel: cancel, done: make(chan struct{})}
	res := e.cli.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).
		Add("type", "container").Add("label", "io.swiftdeploy.project="+e.project).
		Add("label", "io.swiftdeploy.role=nginx")})
	go func() {
		defer close(n.done)
		var down time.Time
		for {
			select {
			case m := <-res.Messages:
				at := time.Unix(0, m.TimeNano)
				switch string(m.Action) {
				case "die", "kill", "stop", "destroy":
					if down.IsZero() {
						down = at
						n.mu.Lock()
						n.open = at
						n.mu.Unlock()
					}
				case "start":
					if !down.IsZero() {
						n.mu.Lock()
						n.windows = append(n.windows, [2]time.Time{down, at})
						n.open = time.Time{}
						n.mu.Unlock()
						down = time.Time{}
					}
				}
			case <-res.Err:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return n
}

func (n *nginxStops) stop() { n.cancel(); <-n.done }

// countDuring counts failures within a stop window (1s margin each side
// for requests already in flight and for nginx starting to listen).
func (n *nginxStops) countDuring(ts []time.Time) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	windows := n.windows
	if !n.open.IsZero() { // still stopped when the load ended (down)
		windows = append(windows, [2]time.Time{n.open, time.Now().Add(time.Hour)})
	}
	var c int64
	for _, t := range ts {
		for _, w := range windows {
			if t.After(w[0].Add(-time.Second)) && t.Before(w[1].Add(time.Second)) {
				c++
				break
			}
		}
	}
	return c
}

// removeProject removes the project's containers and network now (the
// suite's projects would otherwise pile up until the test ends).
func removeProject(t *testing.T, e *env) {
	ctx := context.Background()
	res, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", "io.swiftdeploy.project="+e.project)})
	if err == nil {
		for _, c := range res.Items {
			_, _ = e.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		}
	}
	_, _ = e.cli.NetworkRemove(ctx, e.network, client.NetworkRemoveOptions{})
}

// chaosLoad is startLoad's open-loop load, keeping when each request failed
// (to tell failures while nginx was stopped from the others).
type chaosLoad struct {
	mu       sync.Mutex
	failedAt []time.Time
	samples  []string
	stop     func()
}

func startChaosLoad(url string, every time.Duration) *chaosLoad {
	l := &chaosLoad{}
	l.stop = openLoop(url, every, func(sent time.Time, _ string, err error) {
		if err == nil {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.failedAt = append(l.failedAt, sent)
		if len(l.samples) < 5 {
			l.samples = append(l.samples, err.Error())
		}
	})
	return l
}

func (l *chaosLoad) finish() (failed int64, at []time.Time, samples []string) {
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	return int64(len(l.failedAt)), l.failedAt, l.samples
}
