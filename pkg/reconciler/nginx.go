package reconciler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/failpoint"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

func (r *Reconciler) loadTimeout() time.Duration {
	if r.LoadTimeout > 0 {
		return r.LoadTimeout
	}
	return 15 * time.Second
}

// stage writes conf beside the live config for `nginx -t`.
func (r *Reconciler) stage(conf []byte) (string, error) {
	if err := os.MkdirAll(r.ConfigDir, 0o755); err != nil {
		return "", fmt.Errorf("create nginx config dir %s: %w", r.ConfigDir, err)
	}
	staged := filepath.Join(r.ConfigDir, stagedName)
	if err := atomicfile.Write(staged, conf, 0o644); err != nil {
		return "", err
	}
	return staged, nil
}

func checkResult(code int, out string, err error) error {
	switch {
	case err != nil:
		return fmt.Errorf("check nginx config: %w", err)
	case code != 0:
		return fmt.Errorf("nginx config rejected by nginx -t: %s", strings.TrimSpace(out))
	}
	return nil
}

var testCmd = []string{"nginx", "-t", "-q", "-c", stack.ConfigDir + "/" + stagedName}

// checkNginx runs `nginx -t` on the desired config with the desired nginx
// image in a throwaway container on the project network (where upstream
// names resolve), while the old nginx keeps serving.
func (r *Reconciler) checkNginx(ctx context.Context, d Desired) error {
	staged, err := r.stage(d.Conf)
	if err != nil {
		return err
	}
	defer os.Remove(staged)
	check := r.nginxSpec(d.Stack)
	check.Name = fmt.Sprintf("%s-check-%d", d.Stack.Nginx.Name, time.Now().UnixNano()%1e6)
	check.HostPort = 0
	check.ExtraPorts = nil
	check.Restart = false
	// A run directory of its own: nginx -t needs one, and the socket in the
	// real one belongs to the nginx that serves.
	run, err := os.MkdirTemp(filepath.Dir(r.RunDir), "nginx-check-")
	if err != nil {
		return fmt.Errorf("nginx check run dir: %w", err)
	}
	defer os.RemoveAll(run)
	if err := os.Chmod(run, 0o755); err != nil {
		return err
	}
	check.Binds[1].Source = run
	check.Labels = map[string]string{stack.LabelProject: d.Stack.Project, stack.LabelRole: "check"}
	check.Cmd = testCmd
	return checkResult(r.Engine.RunOnce(ctx, check))
}

// startNginx installs conf and starts nginx, then waits until nginx itself
// reports the desired revision loaded. A first start needs no separate
// check: if nginx rejects the config it exits, and nothing served before.
func (r *Reconciler) startNginx(ctx context.Context, d Desired) error {
	// nginx creates its status socket world-writable: the directory keeps
	// it to the daemon's user and group. Each gets its id, which the new
	// container's label records.
	if err := r.EnsureDirs(); err != nil {
		return err
	}
	// A socket left by a previous nginx would make the new one fail to bind.
	_ = os.Remove(filepath.Join(r.RunDir, stack.NginxStatusSocket))
	if err := atomicfile.Write(filepath.Join(r.ConfigDir, confName), d.Conf, 0o644); err != nil {
		return err
	}
	id, err := r.Engine.Run(ctx, r.nginxSpec(d.Stack))
	if err != nil {
		return err
	}
	if err := r.waitLoaded(ctx, d, id, r.loadTimeout()); err != nil {
		if ctx.Err() != nil {
			// The daemon is stopping, nginx is not failing: removing it
			// would take the front door down; the next run observes it.
			return err
		}
		// Leave nothing half-made behind: a crash-looping nginx helps no one.
		_ = r.Engine.Remove(context.WithoutCancel(ctx), id, 0)
		return err
	}
	return nil
}

// reloadNginx checks conf with the running nginx (`nginx -t` inside it),
// installs it, makes nginx load it and reads back the loaded revision. If
// nginx rejects or does not load it, the previous file is restored: the
// old config keeps serving, and the next reconcile retries. The live file
// only ever holds a configuration nginx -t accepted.
//
// The reload is a SIGHUP to the container's main process, one engine call.
// `nginx -s reload`, a second exec, starts a process that parses the whole
// file again (resolving every upstream name) only to send that same signal
// to the master. It remains the fallback when nginx does not report the
// new revision within hupWait: the image may run nginx under a process
// that ignores SIGHUP, or the master failed to load the file, which
// `nginx -s reload` reports.
func (r *Reconciler) reloadNginx(ctx context.Context, d Desired) (oldWorkers []int, err error) {
	name := d.Stack.Nginx.Name
	staged, err := r.stage(d.Conf)
	if err != nil {
		return nil, err
	}
	// The workers that serve now: once they have exited, nothing routes by
	// the old config any more (drain). Listed while nginx -t runs, off the
	// way to the reload.
	workers := make(chan []int, 1)
	go func() { workers <- r.nginxWorkers(ctx, name) }()
	end := trace.Begin(ctx, "nginx -t", name)
	code, out, err := r.Engine.Exec(ctx, name, testCmd)
	end()
	oldWorkers = <-workers
	if err := checkResult(code, out, err); err != nil {
		os.Remove(staged)
		return nil, fmt.Errorf("%w; keeping the old config", err)
	}
	live := filepath.Join(r.ConfigDir, confName)
	prev, prevErr := os.ReadFile(live)
	// restore puts the previous file back, unless nginx did load the new
	// one after all (a slow host, a cancelled caller): a reload that took
	// effect is never restored away. It reports whether it restored.
	restore := func() bool {
		if l, serr := r.nginxStatus(context.WithoutCancel(ctx)); serr == nil && l.Revision == d.Revision {
			return false
		}
		if prevErr == nil {
			if err := atomicfile.Write(live, prev, 0o644); err != nil {
				r.log().Error("restore previous nginx config", zap.Error(err))
			}
		}
		return true
	}
	end = trace.Begin(ctx, "install config", live)
	err = os.Rename(staged, live)
	end()
	if err != nil {
		return nil, fmt.Errorf("install nginx config: %w", err)
	}
	failpoint.Hit(failpoint.NginxWritten)
	end = trace.Begin(ctx, "nginx SIGHUP", name)
	sigErr := r.Engine.Signal(ctx, name, "HUP")
	end()
	if sigErr == nil {
		err := r.waitLoaded(ctx, d, "", min(hupWait, r.loadTimeout()))
		if err == nil {
			return oldWorkers, nil
		}
		if ctx.Err() != nil {
			if !restore() {
				return oldWorkers, nil
			}
			return nil, fmt.Errorf("%w; previous config file restored", err)
		}
		r.log().Warn("nginx did not load the new config after SIGHUP; reloading with nginx -s reload", zap.String("container", name), zap.Duration("waited", hupWait), zap.Error(err))
	} else {
		if ctx.Err() != nil {
			if !restore() {
				return oldWorkers, nil
			}
			return nil, fmt.Errorf("reload nginx: %w; previous config restored", sigErr)
		}
		r.log().Warn("could not signal nginx; reloading with nginx -s reload", zap.String("container", name), zap.Error(sigErr))
	}
	end = trace.Begin(ctx, "nginx -s reload", name)
	code, out, err = r.Engine.Exec(ctx, name, []string{"nginx", "-s", "reload", "-c", stack.ConfigDir + "/" + confName})
	end()
	switch {
	case err != nil:
		if !restore() {
			return oldWorkers, nil
		}
		return nil, fmt.Errorf("reload nginx: %w; previous config restored", err)
	case code != 0:
		if !restore() {
			return oldWorkers, nil
		}
		return nil, fmt.Errorf("reload nginx: %s; previous config restored", strings.TrimSpace(out))
	}
	if err := r.waitLoaded(ctx, d, "", r.loadTimeout()); err != nil {
		if !restore() {
			return oldWorkers, nil
		}
		return nil, fmt.Errorf("%w; previous config file restored", err)
	}
	return oldWorkers, nil
}

// nginxWorkers returns the PIDs of the nginx container's worker processes,
// or nil if they cannot be listed or none is found (the drain then waits
// its full bound: no list is never taken for "no old workers").
func (r *Reconciler) nginxWorkers(ctx context.Context, name string) []int {
	end := trace.Begin(ctx, "list nginx workers", name)
	ps, err := r.Engine.Top(ctx, name)
	var pids []int
	for _, p := range ps {
		if strings.HasPrefix(p.Cmd, nginxWorkerTitle) {
			pids = append(pids, p.PID)
		}
	}
	if err != nil {
		end(err.Error())
		return nil
	}
	end(strconv.Itoa(len(pids)) + " workers")
	return pids
}

// nginxWorkerTitle starts the title nginx gives its worker processes
// ("nginx: worker process", "... is shutting down" while it drains).
const nginxWorkerTitle = "nginx: worker process"

// drain waits until the nginx workers that served before the reload have
// exited, and no worker is still shutting down, or r.Drain passed. A worker
// that received the reload stops accepting, finishes the requests it is
// serving (to the old containers) and exits: once none is left, no request
// can reach an obsolete container through nginx. (The second condition
// covers a worker the master respawned with the old config after the list
// was taken.) Without a list of the old workers (the engine could not list
// them, or listed none) it waits the whole of r.Drain, as it would for
// workers that never finish.
//
// bound (nginx.drain_timeout, at least r.Drain) is how long old workers
// that are seen still serving are waited for: a WebSocket keeps its worker
// until it closes, so an open one on a replaced container is left to
// close by itself that long (nginx's worker_shutdown_timeout, set to the
// same bound, then closes it). Without a list only r.Drain is waited.
func (r *Reconciler) drain(ctx context.Context, name string, old []int, bound time.Duration) error {
	end := trace.Begin(ctx, "drain", name)
	start := time.Now()
	deadline := start.Add(r.Drain)
	if len(old) > 0 {
		deadline = start.Add(bound)
	}
	note := fmt.Sprintf("no list of the old workers: the full %s", r.Drain)
	defer func() { end(note) }()
	polls := 0
	for len(old) > 0 && time.Now().Before(deadline) {
		polls++
		ps, err := r.Engine.Top(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			note = "cannot list nginx's processes (" + err.Error() + "): the rest of " + r.Drain.String()
			deadline = start.Add(r.Drain)
			break
		}
		if !anyOf(ps, old) && !shuttingDown(ps) {
			note = fmt.Sprintf("%d old workers exited (%d polls)", len(old), polls)
			return nil
		}
		note = fmt.Sprintf("old workers still serving after %s", bound)
		select {
		case <-time.After(drainPoll):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-time.After(time.Until(deadline)):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drainPoll is how often drain lists nginx's processes.
const drainPoll = 25 * time.Millisecond

// shuttingDown reports whether a worker is finishing its requests after a
// reload (nginx titles it "nginx: worker process is shutting down").
func shuttingDown(ps []engine.Process) bool {
	for _, p := range ps {
		if strings.HasPrefix(p.Cmd, nginxWorkerTitle) && strings.HasSuffix(p.Cmd, "is shutting down") {
			return true
		}
	}
	return false
}

func anyOf(ps []engine.Process, pids []int) bool {
	for _, p := range ps {
		if slices.Contains(pids, p.PID) {
			return true
		}
	}
	return false
}

// oldStopAccepting waits, at most acceptWait, until none of the workers
// that served before a reload still accepts connections. nginx reports the
// new revision as soon as one new worker answers, but an old worker closes
// its listening sockets only when it handles the master's quit (which the
// master sends 100 ms after starting the new workers), retitling itself
// "... is shutting down": until then a new connection can land on
// it and be served by the old configuration (seen: a request answered by
// the app right after a pause had loaded). A list that cannot be taken
// ends the wait: the new configuration is loaded either way.
func (r *Reconciler) oldStopAccepting(ctx context.Context, name string, old []int) {
	if len(old) == 0 {
		return
	}
	end := trace.Begin(ctx, "old workers stop accepting", name)
	deadline := time.Now().Add(acceptWait)
	for polls := 1; ; polls++ {
		ps, err := r.Engine.Top(ctx, name)
		switch {
		case err != nil:
			end("cannot list nginx's processes: " + err.Error())
			return
		case !acceptingAny(ps, old):
			end(fmt.Sprintf("%d polls", polls))
			return
		case time.Now().After(deadline):
			end("still accepting after " + acceptWait.String())
			return
		}
		select {
		case <-time.After(drainPoll):
		case <-ctx.Done():
			end(ctx.Err().Error())
			return
		}
	}
}

// acceptWait bounds oldStopAccepting: a worker handles its quit signal in
// its next event-loop turn, milliseconds even on a busy host.
const acceptWait = 5 * time.Second

// acceptingAny reports whether a worker of pids is still a plain worker
// (not one shutting down).
func acceptingAny(ps []engine.Process, pids []int) bool {
	for _, p := range ps {
		if slices.Contains(pids, p.PID) && strings.TrimSpace(p.Cmd) == nginxWorkerTitle {
			return true
		}
	}
	return false
}

// hupWait bounds the wait for nginx to load a new config after SIGHUP
// before falling back to `nginx -s reload`. A master that handles the
// signal loads a config in milliseconds, tens of them on a busy host.
const hupWait = 2 * time.Second

// waitLoaded polls nginx's status until it reports d.Revision, for at most
// timeout. id, when set, is the nginx container just started: if it exits,
// stop waiting.
//
// The status socket is polled every loadPoll: a read is one request over a
// Unix socket to nginx, and the sooner the new revision is seen, the sooner
// the rollout moves on. Whether a starting nginx exited is an engine call,
// asked only every exitPoll.
func (r *Reconciler) waitLoaded(ctx context.Context, d Desired, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	var lastExitCheck time.Time
	polls := 0
	end := trace.Begin(ctx, "nginx reports revision", d.Revision)
	defer func() { end(strconv.Itoa(polls) + " polls") }()
	for {
		polls++
		l, err := r.nginxStatus(ctx)
		switch {
		case err != nil:
			last = err.Error()
		case l.Revision == d.Revision:
			return nil
		default:
			last = "serving revision " + l.Revision
		}
		if id != "" && time.Since(lastExitCheck) >= exitPoll {
			lastExitCheck = time.Now()
			if exited, state := r.exited(ctx, d.Stack, id); exited {
				return fmt.Errorf("nginx exited at start (%s): check the config and the image %s", state, d.Stack.Nginx.Image)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not load revision %s within %s (%s)", d.Revision, timeout, last)
		}
		select {
		case <-time.After(loadPoll):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// How often waitLoaded reads nginx's status, and asks the engine whether a
// starting nginx exited.
const (
	loadPoll = 10 * time.Millisecond
	exitPoll = 200 * time.Millisecond
)

func (r *Reconciler) exited(ctx context.Context, s stack.Stack, id string) (bool, string) {
	cs, err := r.Engine.ListContainers(ctx, s.Project, s.Network.Name)
	if err != nil {
		return false, ""
	}
	for _, c := range cs {
		if c.ID == id {
			return c.State == "exited" || c.State == "dead", c.State
		}
	}
	return true, "gone"
}

func (r *Reconciler) nginxStatus(ctx context.Context) (*Loaded, error) {
	if r.NginxStatus != nil {
		return r.NginxStatus(ctx)
	}
	return ReadNginxStatus(ctx, filepath.Join(r.RunDir, stack.NginxStatusSocket))
}

// Loaded reads back what the running nginx has loaded.
func (r *Reconciler) Loaded(ctx context.Context) (*Loaded, error) {
	return r.nginxStatus(ctx)
}

// LiveConfig is the nginx configuration last installed (what nginx loaded
// at its last successful start or reload; restored after a failed one).
func (r *Reconciler) LiveConfig() []byte {
	b, err := os.ReadFile(filepath.Join(r.ConfigDir, confName))
	if err != nil {
		return nil
	}
	return b
}
