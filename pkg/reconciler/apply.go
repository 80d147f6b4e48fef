package reconciler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Decision is the outcome of a policy gate.
type Decision struct {
	Allowed bool
	Reasons []string
}

// Gate decides whether a transition may proceed.
type Gate func(ctx context.Context) Decision

// Recorder journals what the reconciler did.
type Recorder func(event, message string, details map[string]any)

// Progress receives human-readable progress lines of one run.
type Progress func(line string)

// DeniedError is returned when the infrastructure gate denies a transition.
type DeniedError struct{ Reasons []string }

func (e *DeniedError) Error() string {
	return "denied by infrastructure policy: " + strings.Join(e.Reasons, "; ")
}

// Reconciler converges one project.
type Reconciler struct {
	Engine Engine
	// ConfigDir is the host directory mounted into nginx at stack.ConfigDir.
	ConfigDir string
	Log       *zap.Logger
	Gate      Gate
	Record    Recorder
	// HealthTimeout bounds the wait for new containers to become healthy.
	HealthTimeout time.Duration
	// Drain is how long obsolete containers keep serving in-flight
	// requests after nginx stopped routing to them.
	Drain time.Duration
	HTTP  *http.Client
}

const (
	confName   = "nginx.conf"
	stopGrace  = 10 * time.Second
	nginxCheck = "nginx.conf.next"
)

func (r *Reconciler) record(event, msg string, details map[string]any) {
	if r.Record != nil {
		r.Record(event, msg, details)
	}
}

// Observe reads the project's actual state.
func (r *Reconciler) Observe(ctx context.Context, desired stack.Stack) (Observed, error) {
	var obs Observed
	n, err := r.Engine.FindNetwork(ctx, desired.Network.Name, desired.Project)
	if err != nil {
		return obs, err
	}
	obs.Network = n
	obs.Containers, err = r.Engine.ListContainers(ctx, desired.Project, desired.Network.Name)
	if err != nil {
		return obs, err
	}
	b, err := os.ReadFile(filepath.Join(r.ConfigDir, confName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return obs, fmt.Errorf("read live nginx config: %w", err)
	}
	obs.NginxConf = b
	return obs, nil
}

// Apply executes plan. It stops at the first failure: what already runs
// keeps serving, and the next reconcile continues from the new state.
func (r *Reconciler) Apply(ctx context.Context, desired stack.Stack, conf []byte, plan Plan, progress Progress) error {
	say := func(format string, a ...any) {
		line := fmt.Sprintf(format, a...)
		if plan.Empty() {
			r.Log.Debug(line) // a converged resync is not news
		} else {
			r.Log.Info(line)
		}
		if progress != nil {
			progress(line)
		}
	}
	if plan.Blocked != "" {
		return errors.New(plan.Blocked)
	}
	if err := r.ensureImages(ctx, desired, say); err != nil {
		return err
	}
	if plan.Empty() {
		say("Nginx config valid")
		say("Already converged: nothing to change")
		return nil
	}
	if plan.Changes() && r.Gate != nil {
		d := r.Gate(ctx)
		if !d.Allowed {
			return &DeniedError{Reasons: d.Reasons}
		}
	}
	for _, op := range plan.Ops {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.apply(ctx, desired, conf, op, say); err != nil {
			return fmt.Errorf("%s %s: %w", op.Kind, op.Target, err)
		}
	}
	return nil
}

// ensureImages makes sure every image the stack runs is present, pulling
// what is missing.
func (r *Reconciler) ensureImages(ctx context.Context, desired stack.Stack, say func(string, ...any)) error {
	missing, err := r.Engine.MissingImages(ctx, desired.Images())
	if err != nil {
		return err
	}
	for _, ref := range missing {
		say("Pulling image %s", ref)
		if err := r.Engine.PullImage(ctx, ref); err != nil {
			return fmt.Errorf("docker image %s not found locally and could not be pulled: %w", ref, err)
		}
	}
	say("Docker image found")
	return nil
}

func (r *Reconciler) apply(ctx context.Context, desired stack.Stack, conf []byte, op Op, say func(string, ...any)) error {
	switch op.Kind {
	case OpCreateNetwork:
		if err := r.Engine.CreateNetwork(ctx, desired.Network.Name, desired.Network.DriverType, stack.NetworkLabels(desired.Project)); err != nil {
			return err
		}
		say("Network %s created", desired.Network.Name)
	case OpRemoveDead, OpRemoveNginx:
		if err := r.Engine.Remove(ctx, op.ID, 0); err != nil {
			return err
		}
		r.record("container_removed", fmt.Sprintf("removed %s: %s", op.Target, op.Cause), map[string]any{"container": op.Target})
	case OpStartApp:
		spec, err := appSpec(desired, *op.App)
		if err != nil {
			return err
		}
		if _, err := r.Engine.Run(ctx, spec); err != nil {
			return err
		}
		event := "container_created"
		if op.Heal {
			event = "container_restarted"
		}
		r.record(event, fmt.Sprintf("started %s (%s): %s", op.Target, op.App.Image, op.Cause), map[string]any{"container": op.Target, "image": op.App.Image, "track": op.App.Track})
		say("Services starting... %s (%s)", op.Target, op.App.Image)
	case OpWaitHealthy:
		if err := r.waitHealthy(ctx, desired, op.Targets); err != nil {
			return err
		}
		say("Health check passed (%d containers)", len(op.Targets))
	case OpStartNginx:
		if err := r.startNginx(ctx, desired, conf); err != nil {
			return err
		}
		say("Nginx config valid")
		say("Nginx %s serving on port %d", desired.Nginx.Name, desired.Nginx.Port)
	case OpReloadNginx:
		if err := r.reloadNginx(ctx, desired, conf); err != nil {
			r.record("nginx_config_rejected", err.Error(), nil)
			return err
		}
		say("Nginx config valid")
		say("Nginx reloaded: %s", op.Cause)
		r.record("nginx_reloaded", op.Cause, nil)
		// New workers route only to the new upstreams; give old workers
		// and obsolete containers time to finish in-flight requests.
		if r.Drain > 0 {
			select {
			case <-time.After(r.Drain):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	case OpRemoveApp:
		if err := r.Engine.Remove(ctx, op.ID, stopGrace); err != nil {
			return err
		}
		r.record("container_removed", fmt.Sprintf("removed %s: %s", op.Target, op.Cause), map[string]any{"container": op.Target})
		say("Removed %s (%s)", op.Target, op.Cause)
	default:
		return fmt.Errorf("unknown operation %q", op.Kind)
	}
	return nil
}

func appSpec(desired stack.Stack, a stack.App) (engine.Spec, error) {
	s := engine.Spec{
		Name:     a.Name,
		Image:    a.Image,
		Env:      stack.SortedEnv(a.Env),
		Labels:   a.Labels(desired.Project),
		Network:  desired.Network.Name,
		NanoCPUs: int64(a.CPUs * 1e9),
		Restart:  true,
	}
	if a.Memory != "" {
		m, err := manifest.ParseMemory(a.Memory)
		if err != nil {
			return s, fmt.Errorf("memory limit %q: %w", a.Memory, err)
		}
		s.Memory = m
	}
	return s, nil
}

func (r *Reconciler) nginxSpec(desired stack.Stack) engine.Spec {
	return engine.Spec{
		Name:     desired.Nginx.Name,
		Image:    desired.Nginx.Image,
		Cmd:      []string{"nginx", "-c", stack.ConfigDir + "/" + confName, "-g", "daemon off;"},
		Labels:   desired.Nginx.Labels(desired.Project),
		Network:  desired.Network.Name,
		HostPort: desired.Nginx.Port,
		Binds:    []engine.Bind{{Source: r.ConfigDir, Target: stack.ConfigDir, ReadOnly: true}},
		Restart:  true,
	}
}

// waitHealthy polls each container's health path from the host over the
// project network until all answer 2xx.
func (r *Reconciler) waitHealthy(ctx context.Context, desired stack.Stack, names []string) error {
	want := map[string]stack.App{}
	for _, a := range desired.Apps() {
		want[a.Name] = a
	}
	deadline := time.Now().Add(r.HealthTimeout)
	pending := append([]string(nil), names...)
	var lastErr error
	for {
		cs, err := r.Engine.ListContainers(ctx, desired.Project, desired.Network.Name)
		if err != nil {
			return err
		}
		byName := map[string]engine.Container{}
		for _, c := range cs {
			byName[c.Name] = c
		}
		var still []string
		for _, n := range pending {
			c, ok := byName[n]
			switch {
			case !ok:
				return fmt.Errorf("container %s disappeared while starting", n)
			case c.State == "exited" || c.State == "dead":
				return fmt.Errorf("container %s exited while starting", n)
			case c.IP == "":
				still = append(still, n)
				lastErr = fmt.Errorf("container %s has no address yet", n)
				continue
			}
			a := want[n]
			if err := r.probe(ctx, "http://"+net.JoinHostPort(c.IP, strconv.Itoa(a.Port))+a.HealthPath); err != nil {
				still = append(still, n)
				lastErr = fmt.Errorf("container %s: %w", n, err)
			}
		}
		if len(still) == 0 {
			return nil
		}
		pending = still
		if time.Now().After(deadline) {
			return fmt.Errorf("health check failed after %s: %w", r.HealthTimeout, lastErr)
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Reconciler) probe(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := r.HTTP.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// startNginx validates conf in a throwaway container on the project network
// (where upstream names resolve), installs it and starts nginx.
func (r *Reconciler) startNginx(ctx context.Context, desired stack.Stack, conf []byte) error {
	check := r.nginxSpec(desired)
	check.Name = desired.Nginx.Name + "-check"
	check.HostPort = 0
	check.Restart = false
	check.Labels = map[string]string{stack.LabelProject: desired.Project, stack.LabelRole: "check"}
	err := r.install(conf, func(cmd []string) (int, string, error) {
		check.Cmd = cmd
		_ = r.Engine.Remove(ctx, check.Name, 0) // a leftover from a crash
		return r.Engine.RunOnce(ctx, check)
	})
	if err != nil {
		return err
	}
	if _, err := r.Engine.Run(ctx, r.nginxSpec(desired)); err != nil {
		return err
	}
	return r.waitPort(ctx, desired.Nginx.Port)
}

// reloadNginx checks conf with the running nginx (`nginx -t` inside it),
// swaps it in atomically and reloads gracefully. A rejected config leaves
// the old one serving.
func (r *Reconciler) reloadNginx(ctx context.Context, desired stack.Stack, conf []byte) error {
	exec := func(cmd []string) (int, string, error) { return r.Engine.Exec(ctx, desired.Nginx.Name, cmd) }
	if err := r.install(conf, exec); err != nil {
		return fmt.Errorf("%w; keeping the old config", err)
	}
	code, out, err := exec([]string{"nginx", "-s", "reload", "-c", stack.ConfigDir + "/" + confName})
	if err != nil {
		return fmt.Errorf("reload nginx: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("reload nginx: %s", strings.TrimSpace(out))
	}
	return nil
}

// install stages conf beside the live config, has run test it with
// `nginx -t` where its upstream names resolve, and only then renames it
// over the live one. A rejected config is discarded.
func (r *Reconciler) install(conf []byte, run func(cmd []string) (int, string, error)) error {
	if err := os.MkdirAll(r.ConfigDir, 0o755); err != nil {
		return fmt.Errorf("create nginx config dir %s: %w", r.ConfigDir, err)
	}
	staged := filepath.Join(r.ConfigDir, nginxCheck)
	if err := atomicfile.Write(staged, conf, 0o644); err != nil {
		return err
	}
	code, out, err := run([]string{"nginx", "-t", "-q", "-c", stack.ConfigDir + "/" + nginxCheck})
	switch {
	case err != nil:
		os.Remove(staged)
		return fmt.Errorf("check nginx config: %w", err)
	case code != 0:
		os.Remove(staged)
		return fmt.Errorf("nginx config rejected by nginx -t: %s", strings.TrimSpace(out))
	}
	if err := os.Rename(staged, filepath.Join(r.ConfigDir, confName)); err != nil {
		return fmt.Errorf("install nginx config: %w", err)
	}
	return nil
}

func (r *Reconciler) waitPort(ctx context.Context, port int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx does not accept connections on %s: %w", addr, err)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
