package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// canaryWeight is the share of traffic the canary gets before promotion.
const canaryWeight = 20

// daemonEnv is one swiftdeployd on a manifest in its own directory.
type daemonEnv struct {
	b       *bench
	bin     string // the swiftdeployd binary
	project string
	dir     string
	port    int
	n       int
	socket  string
	logPath string
	api     *api.Client
	cmd     *exec.Cmd
	exited  chan struct{}
}

// manifest is the bench manifest. The infrastructure policy's thresholds
// are opened wide: on a busy 2-core host the load average alone would deny
// the deploy, and the benchmark measures rollouts, not the gate.
func (d *daemonEnv) manifest(image string, canary bool) string {
	c := ""
	if canary {
		c = fmt.Sprintf("  canary:\n    image: %s\n    weight: %d\n", images.AppImageV2, canaryWeight)
	}
	return fmt.Sprintf(`project: %s
services:
  image: %s
  port: %d
  replicas: %d
  health_path: %s
%snginx:
  image: %s
  port: %d
network:
  name: %s-net
  driver_type: bridge
metrics:
  scrape_interval: 1s
  window: 10s
policy:
  max_cpu_load: 1000
  min_disk_gb: 0.1
`, d.project, image, appPort, d.n, healthPath, c, images.NginxImage, d.port, d.project)
}

// writeManifest replaces the manifest the way editors do (temp + rename)
// and returns the instant of the rename.
func (d *daemonEnv) writeManifest(content string) (time.Time, error) {
	tmp := filepath.Join(d.dir, ".manifest.yaml.swp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return time.Time{}, err
	}
	t0 := time.Now()
	return t0, os.Rename(tmp, filepath.Join(d.dir, "manifest.yaml"))
}

func (d *daemonEnv) start(ctx context.Context) error {
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(d.bin, "--manifest", filepath.Join(d.dir, "manifest.yaml"), "--socket", d.socket)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the benchmark dies, so does its daemon.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start swiftdeployd: %w", err)
	}
	d.cmd = cmd
	d.exited = make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(d.exited) }()
	return d.waitFor(ctx, 15*time.Second, "daemon socket", func() (bool, string) {
		var s api.Status
		err := d.api.Get(ctx, api.PathStatus, &s)
		return err == nil, fmt.Sprint(err)
	})
}

func (d *daemonEnv) stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
}

// waitFor polls cond every 100 ms until it holds, timeout passes, the
// daemon exits or ctx ends.
func (d *daemonEnv) waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, detail := cond()
		if ok {
			return nil
		}
		last = detail
		select {
		case <-d.exited:
			return fmt.Errorf("swiftdeployd exited while waiting for %s; log %s:\n%s", what, d.logPath, tail(d.logPath, 20))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s; last: %s", timeout, what, last)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// converged waits until the daemon runs exactly want (running app
// containers per image) and its plan is empty, as the e2e tests do.
func (d *daemonEnv) converged(ctx context.Context, want map[string]int, timeout time.Duration) error {
	return d.convergedOnce(ctx, want, timeout, nil)
}

// convergedOnce is converged asking the daemon every 100 ms only once
// ready says it may be done, and every second before: each status is a
// full look at the engine, and ten a second during a rollout would load
// the daemon and the engine the rollout is measured on.
func (d *daemonEnv) convergedOnce(ctx context.Context, want map[string]int, timeout time.Duration, ready func() bool) error {
	var asked time.Time
	return d.waitFor(ctx, timeout, fmt.Sprintf("converged with %v", want), func() (bool, string) {
		if ready != nil && !ready() && time.Since(asked) < time.Second {
			return false, "not ready yet"
		}
		asked = time.Now()
		var s api.Status
		if err := d.api.Get(ctx, api.PathStatus, &s); err != nil {
			return false, err.Error()
		}
		got := map[string]int{}
		for _, c := range s.Containers {
			if c.Role == "app" && c.State == "running" {
				got[c.Image]++
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return false, fmt.Sprintf("running %v, last reconcile %+v", got, s.LastReconcile)
		}
		var df api.Diff
		if err := d.api.Get(ctx, api.PathDiff, &df); err != nil {
			return false, err.Error()
		}
		return len(df.Plan) == 0 && df.Blocked == "", fmt.Sprintf("plan %v %s", df.Plan, df.Blocked)
	})
}

func (d *daemonEnv) swiftctl(ctx context.Context, timeout time.Duration, args ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	full := append([]string{"--manifest", filepath.Join(d.dir, "manifest.yaml"), "--socket", d.socket}, args...)
	out, err := exec.CommandContext(ctx, d.b.swiftctl, full...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return string(out), -1, fmt.Errorf("swiftctl %s: %w", strings.Join(args, " "), ctx.Err())
	case errors.As(err, &ee):
		return string(out), ee.ExitCode(), nil
	case err != nil:
		return string(out), -1, fmt.Errorf("swiftctl %s: %w", strings.Join(args, " "), err)
	}
	return string(out), 0, nil
}

// newDaemonEnv prepares a directory, a port and a stable v1 stack with n
// replicas, converged, and returns it with its teardown.
func (b *bench) newDaemonEnv(ctx context.Context, kind string, n int) (*daemonEnv, func(), error) {
	return b.newDaemonEnvWith(ctx, kind, n, b.swiftdeployd)
}

// newDaemonEnvWith is newDaemonEnv running the swiftdeployd binary bin.
func (b *bench) newDaemonEnvWith(ctx context.Context, kind string, n int, bin string) (*daemonEnv, func(), error) {
	port, err := freePort()
	if err != nil {
		return nil, func() {}, err
	}
	project := fmt.Sprintf("%s-%s%d", b.runID, kind, n)
	dir := filepath.Join(b.dir, project)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, func() {}, err
	}
	d := &daemonEnv{b: b, bin: bin, project: project, dir: dir, port: port, n: n,
		socket: filepath.Join(dir, "sd.sock"), logPath: filepath.Join(dir, "daemon.log")}
	d.api = api.NewClient(d.socket)
	teardown := func() {
		d.stop()
		d.keepLog()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := testenv.RemoveProject(cctx, b.cli, project); err != nil {
			b.logf("clean up %s: %v", project, err)
		}
		if err := waitPortFree(cctx, port, 30*time.Second); err != nil {
			b.logf("%v", err)
		}
	}
	if _, err := d.writeManifest(d.manifest(images.AppImage, false)); err != nil {
		return d, teardown, err
	}
	b.logf("swiftdeployd %s N=%d: starting daemon (project %s, port %d, log %s)", kind, n, project, port, d.logPath)
	if err := d.start(ctx); err != nil {
		return d, teardown, err
	}
	if err := d.converged(ctx, map[string]int{images.AppImage: n}, b.phaseTimeout); err != nil {
		return d, teardown, err
	}
	if err := waitServes(ctx, d.url(), images.AppVersion, b.phaseTimeout); err != nil {
		return d, teardown, err
	}
	return d, teardown, nil
}

// watchApps starts collecting the app containers' engine events.
func (d *daemonEnv) watchApps(ctx context.Context) *engineWatch {
	return watchEngine(ctx, d.b.cli, stack.LabelProject+"="+d.project, stack.LabelRole+"="+stack.RoleApp)
}

// milestones ends w and condenses its events since t0.
func (d *daemonEnv) milestones(w *engineWatch, t0 time.Time) []engineMilestone {
	ms, err := w.stop(t0)
	if err != nil {
		d.b.logf("engine events: %v", err)
	}
	return ms
}

// keepLog copies the daemon's log to the -logs directory, if one was given.
func (d *daemonEnv) keepLog() {
	if d.b.logsDir == "" {
		return
	}
	data, err := os.ReadFile(d.logPath)
	if err == nil {
		err = os.WriteFile(filepath.Join(d.b.logsDir, d.project+".daemon.log"), data, 0o644)
	}
	if err != nil {
		d.b.logf("keep daemon log: %v", err)
	}
}

func (d *daemonEnv) url() string { return fmt.Sprintf("http://127.0.0.1:%d/", d.port) }

// runDaemon measures (b): swiftdeployd converging a manifest image edit.
func (b *bench) runDaemon(ctx context.Context, n int) (outcome, error) {
	return b.runDaemonBuild(ctx, n, methodDaemon, "d", b.swiftdeployd)
}

// runCompare measures the same with the -compare build.
func (b *bench) runCompare(ctx context.Context, n int) (outcome, error) {
	return b.runDaemonBuild(ctx, n, methodCompare, "b", b.compare)
}

func (b *bench) runDaemonBuild(ctx context.Context, n int, method, kind, bin string) (outcome, error) {
	res := outcome{Method: method, N: n}
	d, teardown, err := b.newDaemonEnvWith(ctx, kind, n, bin)
	defer teardown()
	if err != nil {
		return res, err
	}
	rec := newRecorder(images.AppV2Version)
	l := startLoad(ctx, d.url(), b.rps, rec, b.maxLoad())
	if err := sleep(ctx, b.warmup); err != nil {
		l.finish()
		return res, err
	}
	watch := d.watchApps(ctx)
	b.logf("swiftdeployd N=%d: manifest edited to %s", n, images.AppImageV2)
	t0, err := d.writeManifest(d.manifest(images.AppImageV2, false))
	if err != nil {
		l.finish()
		watch.stop(t0)
		return res, err
	}
	// It cannot be done before the engine destroyed the n old containers.
	oldGone := func() bool { return watch.count("destroy", images.AppImage, t0) >= n }
	convErr := d.convergedOnce(ctx, map[string]int{images.AppImageV2: n}, b.phaseTimeout, oldGone)
	res.Done = time.Since(t0)
	waitErr := waitSettled(ctx, rec, b.tail, t0, b.phaseTimeout)
	sum, _ := l.finish()
	res.fill(rec, sum, t0)
	res.trace(d.logPath, t0, "manifest")
	res.Engine = d.milestones(watch, t0)
	res.Notes = append(res.Notes, fmt.Sprintf("daemon reported converged (status + empty diff, polled every 100 ms once the engine destroyed the old containers, every second before) after %s", fmtDur(res.Done)))
	if err := errors.Join(convErr, waitErr); err != nil {
		return res, fmt.Errorf("swiftdeployd N=%d: %w", n, err)
	}
	return res, nil
}

// runCanary measures the canary promotion: declare a canary at 20% under
// load, wait converged, then `swiftctl promote` (retried while the
// canary-safety policy denies it) until every answer is the new version.
func (b *bench) runCanary(ctx context.Context, n int) (outcome, error) {
	res := outcome{Method: methodCanary, N: n}
	d, teardown, err := b.newDaemonEnv(ctx, "k", n)
	defer teardown()
	if err != nil {
		return res, err
	}
	rec := newRecorder(images.AppV2Version)
	l := startLoad(ctx, d.url(), b.rps, rec, b.maxLoad()+b.phaseTimeout)
	fail := func(err error) (outcome, error) {
		sum, _ := l.finish()
		res.fill(rec, sum, time.Now())
		res.FirstNew, res.AllNew = -1, -1
		return res, err
	}
	if err := sleep(ctx, b.warmup); err != nil {
		return fail(err)
	}
	b.logf("canary N=%d: declaring canary %s at %d%%", n, images.AppImageV2, canaryWeight)
	declared, err := d.writeManifest(d.manifest(images.AppImage, true))
	if err != nil {
		return fail(err)
	}
	if err := d.converged(ctx, map[string]int{images.AppImage: n, images.AppImageV2: 1}, b.phaseTimeout); err != nil {
		return fail(fmt.Errorf("canary N=%d: %w", n, err))
	}
	res.Notes = append(res.Notes, fmt.Sprintf("canary declared and converged in %s", fmtDur(time.Since(declared))))
	watch := d.watchApps(ctx)
	defer func() {
		if watch != nil {
			watch.stop(time.Now())
		}
	}()

	// Promote, retrying while the policy denies (e.g. too few canary
	// requests in the window yet).
	first := time.Now()
	deadline := first.Add(b.phaseTimeout)
	var t0 time.Time
	denials := map[string]int{}
	attempts := 0
	for {
		attempts++
		at := time.Now()
		out, code, err := d.swiftctl(ctx, b.phaseTimeout, "promote")
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("canary N=%d: swiftctl promote did not return within %s (-phase-timeout); output so far: %q", n, b.phaseTimeout, out)
			}
			return fail(err)
		}
		if code == 0 {
			t0 = at
			res.Done = time.Since(at)
			break
		}
		reason := strings.TrimSpace(out)
		if i := strings.Index(reason, "DENIED: "); i >= 0 {
			reason = strings.TrimSpace(strings.SplitN(reason[i:], "\n", 2)[0])
		}
		denials[reason]++
		b.debugf("promote attempt %d: exit %d: %s", attempts, code, out)
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("canary N=%d: promote not allowed after %s and %d attempts; last: %s", n, b.phaseTimeout, attempts, out))
		}
		if err := sleep(ctx, time.Second); err != nil {
			return fail(err)
		}
	}
	if attempts > 1 {
		res.Notes = append(res.Notes, fmt.Sprintf("promote allowed on attempt %d, %s after the first (denied: %s)", attempts, fmtDur(t0.Sub(first)), failureKinds(denials)))
	} else {
		res.Notes = append(res.Notes, "promote allowed on the first attempt")
	}
	res.Notes = append(res.Notes, fmt.Sprintf("`swiftctl promote` returned after %s", fmtDur(res.Done)))
	convErr := d.converged(ctx, map[string]int{images.AppImageV2: n}, b.phaseTimeout)
	waitErr := waitSettled(ctx, rec, b.tail, t0, b.phaseTimeout)
	sum, _ := l.finish()
	res.fill(rec, sum, t0)
	// Before the promotion the canary already answered 20% of requests.
	res.FirstNew = -1
	res.trace(d.logPath, t0, "promote")
	res.Engine = d.milestones(watch, t0)
	watch = nil
	pre := 0
	for _, s := range rec.snapshot() {
		if s.failed && s.sent.Before(t0) {
			pre++
		}
	}
	if res.Failed > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d of the %d failed requests were sent before the promotion (while the canary was declared)", pre, res.Failed))
	}
	if err := errors.Join(convErr, waitErr); err != nil {
		return res, fmt.Errorf("canary N=%d: %w", n, err)
	}
	return res, nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
