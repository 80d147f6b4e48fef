package fake

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
)

// loadLocked makes the nginx master c serve conf with a new generation of
// workers; the previous generation exits, unless HoldOldWorkers keeps it
// draining.
func (e *Engine) loadLocked(c *container, conf []byte) {
	if e.matchesLocked(e.holdWorkers, c) {
		c.draining = append(c.draining, c.workers...)
	}
	if c.pids == 0 {
		c.pids = 1 // the master
	}
	c.workers = nil
	for range 2 {
		c.pids++
		c.workers = append(c.workers, c.pids)
	}
	c.loaded = conf
}

// Exec runs cmd in a running container: exit code and combined output.
// Only nginx's own commands are modelled, in a running nginx container;
// any other command exits 127.
func (e *Engine) Exec(ctx context.Context, id string, cmd []string) (code int, out string, err error) {
	line := strings.Join(cmd, " ")
	c := e.begin(OpExec, id, line)
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return -1, "", fmt.Errorf("exec %q in %s: %w", line, id, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ct := e.resolve(id)
	switch {
	case ct == nil:
		return -1, "", fmt.Errorf("exec %q in %s: %w", line, id, daemonErr(errdefs.ErrNotFound, "No such container: %s", id))
	case ct.state != StateRunning:
		return -1, "", fmt.Errorf("exec %q in %s: %w", line, id, daemonErr(errdefs.ErrConflict, "container %s is not running", ct.id))
	case len(cmd) == 0:
		return -1, "", fmt.Errorf("exec %q in %s: %w", line, id, daemonErr(errdefs.ErrInvalidArgument, "No exec command specified"))
	}
	e.emitLocked(ct, "exec_create: "+line)
	e.emitLocked(ct, "exec_start: "+line)
	code, out, after := e.nginxExecLocked(ct, cmd)
	e.emitLocked(ct, "exec_die")
	if after != nil {
		after()
	}
	return code, out, nil
}

// Signal sends a signal to a running container's main process, as Docker's
// kill endpoint does, emitting a kill event. Only SIGHUP is modelled: an
// nginx master re-reads the file it was started with and loads it if it
// validates (else it keeps serving the old one and logs why); any other
// process ignores it. A container marked with IgnoreHUP ignores it too
// (an image whose main process is not nginx).
func (e *Engine) Signal(ctx context.Context, id, signal string) (err error) {
	c := e.begin(OpSignal, id, signal)
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return fmt.Errorf("signal %s to container %s: %w", signal, id, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ct := e.resolve(id)
	switch {
	case ct == nil:
		return fmt.Errorf("signal %s to container %s: %w", signal, id, daemonErr(errdefs.ErrNotFound, "No such container: %s", id))
	case ct.state != StateRunning:
		return fmt.Errorf("signal %s to container %s: %w", signal, id, daemonErr(errdefs.ErrConflict, "Container %s is not running", ct.id))
	case signal != "HUP" && signal != "SIGHUP" && signal != "1":
		return fmt.Errorf("signal %s to container %s: fake engine: only SIGHUP is modelled", signal, id)
	}
	e.emitSignalLocked(ct, "kill", "1")
	if ct.confPath == "" || e.matchesLocked(e.ignoreHUP, ct) {
		return nil
	}
	if e.failReload != nil {
		ct.logs.WriteString(emerg(e.failReload))
		return nil
	}
	conf, cerr := e.checkLocked(ct, ct.confPath)
	if cerr != nil {
		ct.logs.WriteString(emerg(cerr))
		return nil
	}
	e.loadLocked(ct, conf)
	return nil
}

// Top lists a running container's processes as `docker top` does: an nginx
// master as PID 1 with its workers (those of earlier configurations titled
// "nginx: worker process is shutting down"), any other container as one
// process.
func (e *Engine) Top(ctx context.Context, id string) (ps []engine.Process, err error) {
	c := e.begin(OpTop, id, "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return nil, fmt.Errorf("list processes of container %s: %w", id, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ct := e.resolve(id)
	switch {
	case ct == nil:
		return nil, fmt.Errorf("list processes of container %s: %w", id, daemonErr(errdefs.ErrNotFound, "No such container: %s", id))
	case ct.state != StateRunning:
		return nil, fmt.Errorf("list processes of container %s: %w", id, daemonErr(errdefs.ErrConflict, "Container %s is not running", ct.id))
	case ct.confPath == "":
		return []engine.Process{{PID: 1, Cmd: strings.Join(append([]string{ct.spec.Image}, ct.spec.Cmd...), " ")}}, nil
	}
	ps = append(ps, engine.Process{PID: 1, Cmd: "nginx: master process " + strings.Join(ct.spec.Cmd, " ")})
	for _, p := range ct.draining {
		ps = append(ps, engine.Process{PID: p, Cmd: "nginx: worker process is shutting down"})
	}
	for _, p := range ct.workers {
		ps = append(ps, engine.Process{PID: p, Cmd: "nginx: worker process"})
	}
	return ps, nil
}

// HoldOldWorkers makes nginx workers of containers with this name or image
// keep draining after a reload, as workers that still finish long
// requests do, until ReleaseOldWorkers or Clear.
func (e *Engine) HoldOldWorkers(nameOrImage string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.holdWorkers.set(nameOrImage, true)
}

// ReleaseOldWorkers lets every draining nginx worker exit.
func (e *Engine) ReleaseOldWorkers() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.releaseWorkersLocked()
}

func (e *Engine) releaseWorkersLocked() {
	e.holdWorkers = newMarks()
	for _, c := range e.containers {
		c.draining = nil
	}
}

// IgnoreHUP makes containers with this name or image ignore SIGHUP (their
// main process is not nginx), until Clear.
func (e *Engine) IgnoreHUP(nameOrImage string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ignoreHUP.set(nameOrImage, true)
}

// Kill simulates a crash of a running container: it exits with code 137
// and a die event is emitted. The container stays (restart policies are not
// modelled), as an exited one the reconciler must heal.
func (e *Engine) Kill(nameOrID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.resolve(nameOrID)
	switch {
	case c == nil:
		return daemonErr(errdefs.ErrNotFound, "No such container: %s", nameOrID)
	case c.state != StateRunning:
		return daemonErr(errdefs.ErrConflict, "container %s is not running", c.id)
	}
	e.exitLocked(c, exitKilled)
	return nil
}
