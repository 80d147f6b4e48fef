package reconciler

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/failpoint"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// Decision is the outcome of a policy gate.
type Decision struct {
	Allowed bool
	Reasons []string
	// Transient marks a denial whose every reason may clear by itself
	// (a busy host), so a caller may wait and retry.
	Transient bool
	// Codes are the reasons' stable codes (Codes[i] for Reasons[i]).
	Codes []string
}

// Gate decides whether a plan that changes what runs may proceed. It runs
// once per apply, before the plan's first operation.
type Gate func(ctx context.Context, plan Plan) Decision

// Recorder journals what the reconciler did.
type Recorder func(event, message string, details map[string]any)

// Progress receives human-readable progress lines of one run.
type Progress func(line string)

// Hook is called before and after each operation ("before", "after"); an
// error stops the apply there. Tests use it to inject faults and crashes
// between any two operations.
type Hook func(point string, op Op) error

// DeniedError is returned when the infrastructure gate denies a plan.
type DeniedError struct {
	Reasons   []string
	Transient bool
	Codes     []string
}

// OpError is the failure of one operation of a plan.
type OpError struct {
	Op  Op
	Err error
}

func (e *OpError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op.Kind, e.Op.Target, e.Err) }
func (e *OpError) Unwrap() error { return e.Err }

// Code names the failing operation stably ("reload-nginx demo-nginx"):
// retries failing at the same operation are the same failure, whatever the
// details of the message (nginx's timestamps and pids, say).
func (e *OpError) Code() string { return string(e.Op.Kind) + " " + e.Op.Target }

func (e *DeniedError) Error() string {
	return "denied by infrastructure policy: " + strings.Join(e.Reasons, "; ")
}

// Reconciler converges one project.
type Reconciler struct {
	Engine Engine
	// ConfigDir is the host directory mounted read-only into nginx at
	// stack.ConfigDir; RunDir is mounted read-write at stack.NginxRunDir
	// and holds nginx's status socket.
	ConfigDir string
	RunDir    string
	// AppliedPath is where the last fully applied state is recorded.
	AppliedPath string
	Log         *zap.Logger
	Gate        Gate
	Record      Recorder
	Hook        Hook
	// HealthTimeout bounds the wait for new containers to become healthy.
	HealthTimeout time.Duration
	// Drain bounds how long obsolete containers wait, after nginx
	// stopped routing to them, for the nginx workers that served before the
	// reload to finish their requests and exit.
	Drain time.Duration
	// Probe checks one health URL (default: HTTP GET, 2xx is healthy).
	Probe func(ctx context.Context, url string) error
	// NginxStatus reads back what the running nginx has loaded (default:
	// its status socket in RunDir).
	NginxStatus func(ctx context.Context) (*Loaded, error)
	// LoadTimeout bounds the wait for nginx to report a new revision.
	LoadTimeout time.Duration
	// StartParallel bounds how many app containers start at once; default
	// defaultParallel. Removals run removeParallel at a time.
	StartParallel int

	// applied is the state this process last recorded at AppliedPath.
	appliedMu sync.Mutex
	applied   *Applied
}

const (
	confName   = "nginx.conf"
	stagedName = "nginx.conf.next"
	stopGrace  = 10 * time.Second
)

func (r *Reconciler) record(ctx context.Context, event, msg string, details map[string]any) {
	if r.Record != nil {
		end := trace.Begin(ctx, "journal", event)
		r.Record(event, msg, details)
		end()
	}
}

func (r *Reconciler) log() *zap.Logger {
	if r.Log == nil {
		return zap.NewNop()
	}
	return r.Log
}

// Observe reads the project's actual state: containers and network from
// the engine, the configuration nginx has loaded from nginx itself. The
// reads are independent and run at once: observing costs the slowest of
// them, not their sum. nginx's status is read alongside; it counts only if
// an nginx container runs.
func (r *Reconciler) Observe(ctx context.Context, d Desired) (Observed, error) {
	desired := d.Stack
	var obs Observed
	var netErr, listErr, imgErr, loadErr error
	var loaded *Loaded
	var wg sync.WaitGroup
	wg.Go(func() {
		end := trace.Begin(ctx, "observe: network", desired.Network.Name)
		obs.Network, netErr = r.Engine.FindNetwork(ctx, desired.Network.Name, desired.Project)
		end()
	})
	wg.Go(func() {
		end := trace.Begin(ctx, "observe: containers", desired.Project)
		obs.Containers, listErr = r.Engine.ListContainers(ctx, desired.Project, desired.Network.Name)
		end()
	})
	wg.Go(func() {
		end := trace.Begin(ctx, "observe: images", "")
		obs.Missing, imgErr = r.Engine.MissingImages(ctx, desired.Images())
		end()
	})
	wg.Go(func() {
		end := trace.Begin(ctx, "observe: nginx status", "")
		loaded, loadErr = r.nginxStatus(ctx)
		end()
	})
	var err error
	obs.Applied, err = r.readApplied()
	wg.Wait()
	if err := cmp.Or(netErr, listErr, imgErr); err != nil {
		return Observed{}, err
	}
	if err != nil {
		return Observed{}, err
	}
	if obs.Nginx() != nil {
		if loadErr != nil {
			obs.LoadedErr = loadErr.Error()
		} else {
			obs.Loaded = loaded
		}
	}
	obs.Mounts = r.mounts()
	return obs, nil
}

// mounts identifies the host directories nginx bind-mounts by the random
// id each holds in its idFile (stack.LabelMounts), "-" for one without.
// An id, not the inode: a directory removed and recreated may get its old
// inode number back, and device numbers can change across a reboot.
func (r *Reconciler) mounts() string {
	if r.ConfigDir == "" && r.RunDir == "" {
		return ""
	}
	var ids []string
	for _, dir := range []string{r.ConfigDir, r.RunDir} {
		id := "-"
		if b, err := os.ReadFile(filepath.Join(dir, idFile)); err == nil && len(bytes.TrimSpace(b)) > 0 {
			id = string(bytes.TrimSpace(b))
		}
		ids = append(ids, id)
	}
	return strings.Join(ids, ",")
}

// idFile holds a directory's random id (see mounts).
const idFile = ".swiftdeploy-id"

// EnsureDirs creates the directories nginx mounts, each with its id, if
// they are missing. The daemon calls it only while the manifest's
// directory exists: it never brings back a directory someone removed.
func (r *Reconciler) EnsureDirs() error {
	for _, d := range []struct {
		dir  string
		mode os.FileMode
	}{{r.ConfigDir, 0o755}, {r.RunDir, 0o750}} { // RunDir keeps nginx's world-writable socket to us
		if d.dir == "" {
			continue
		}
		if err := os.MkdirAll(d.dir, d.mode); err != nil {
			return fmt.Errorf("create nginx directory %s: %w", d.dir, err)
		}
		name := filepath.Join(d.dir, idFile)
		if _, err := os.Stat(name); err == nil {
			continue
		}
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		if err := atomicfile.Write(name, []byte(hex.EncodeToString(b)+"\n"), 0o644); err != nil {
			return fmt.Errorf("write directory id %s: %w", name, err)
		}
	}
	return nil
}

func (r *Reconciler) readApplied() (*Applied, error) {
	if r.AppliedPath == "" {
		return nil, nil
	}
	b, err := os.ReadFile(r.AppliedPath)
	if errors.Is(err, os.ErrNotExist) {
		r.appliedMu.Lock()
		a := r.applied
		r.appliedMu.Unlock()
		if a == nil {
			return nil, nil
		}
		// The record was removed under a running daemon (its directory
		// deleted and recreated): what this process applied is still
		// known, so restoring it stays a heal rather than a gated change.
		r.log().Warn("applied state file missing; using the state this daemon applied", zap.String("path", r.AppliedPath))
		if werr := r.writeApplied(context.Background(), a); werr != nil {
			r.log().Warn("applied state not rewritten", zap.String("path", r.AppliedPath), zap.Error(werr))
		}
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read applied state: %w", err)
	}
	var a Applied
	if err := json.Unmarshal(b, &a); err != nil {
		// A damaged record only costs a gate decision: treat as unknown.
		r.log().Warn("applied state unreadable; treating every start as a change", zap.String("path", r.AppliedPath), zap.Error(err))
		return nil, nil
	}
	r.appliedMu.Lock()
	r.applied = &a
	r.appliedMu.Unlock()
	return &a, nil
}

// AppliedProject is the project of the applied record ("" when there is
// none, or it predates the field).
func (r *Reconciler) AppliedProject() string {
	if r == nil {
		return ""
	}
	a, err := r.readApplied()
	if err != nil || a == nil {
		return ""
	}
	return a.Project
}

func (r *Reconciler) writeApplied(ctx context.Context, a *Applied) error {
	if r.AppliedPath == "" {
		return nil
	}
	defer trace.Begin(ctx, "write applied", "")()
	r.appliedMu.Lock()
	r.applied = a
	r.appliedMu.Unlock()
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	_, err = atomicfile.WriteIfChanged(r.AppliedPath, b, 0o640)
	return err
}

// ForgetApplied drops the applied record (after `down`: a new deploy is a
// change, not a heal).
func (r *Reconciler) ForgetApplied() error {
	if r.AppliedPath == "" {
		return nil
	}
	r.appliedMu.Lock()
	r.applied = nil
	r.appliedMu.Unlock()
	if err := os.Remove(r.AppliedPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forget applied state: %w", err)
	}
	return nil
}

// Apply executes plan. The gate runs first, before any operation (pulls
// included), if the plan changes what runs. Apply stops at the first
// failure: what already runs keeps serving, and the next reconcile
// continues from the new state.
func (r *Reconciler) Apply(ctx context.Context, d Desired, plan Plan, progress Progress) error {
	return r.ApplyGated(ctx, d, plan, r.Gate, progress)
}

// ApplyGated is Apply with gate in place of r.Gate: a transaction passes
// a gate that records its intent once the decision allows it.
func (r *Reconciler) ApplyGated(ctx context.Context, d Desired, plan Plan, gate Gate, progress Progress) error {
	return r.ApplyServed(ctx, d, plan, gate, nil, progress)
}

// ApplyServed is ApplyGated that also calls served, once, the moment
// nginx reports d.Revision loaded by an operation of the plan (a reload or
// a start), before the operations after it (the drain, removing what the
// new configuration no longer routes to): a transaction takes effect, and
// is committed, then. It is not called if no operation loads nginx.
func (r *Reconciler) ApplyServed(ctx context.Context, d Desired, plan Plan, gate Gate, served func(), progress Progress) error {
	say := func(format string, a ...any) {
		line := fmt.Sprintf(format, a...)
		if plan.Empty() {
			r.log().Debug(line) // a converged resync is not news
		} else {
			r.log().Info(line)
		}
		if progress != nil {
			progress(line)
		}
	}
	if plan.Blocked != "" {
		return errors.New(plan.Blocked)
	}
	if plan.Gated() {
		if gate == nil {
			return &DeniedError{Reasons: []string{"no infrastructure gate configured"}}
		}
		end := trace.Begin(ctx, "gate", "")
		dec := gate(ctx, plan)
		end()
		if !dec.Allowed {
			return &DeniedError{Reasons: dec.Reasons, Transient: dec.Transient, Codes: dec.Codes}
		}
	}
	if !hasKind(plan, OpPullImage) {
		say("Docker image found")
	}
	if plan.Empty() {
		say("Nginx config valid")
		say("Already converged: nothing to change")
		if plan.Partial {
			return nil
		}
		return r.writeApplied(ctx, AppliedFor(d))
	}
	for i := 0; i < len(plan.Ops); {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Consecutive container starts, and removals, run in parallel:
		// they are independent and each takes the engine a second or two.
		j := i
		for j < len(plan.Ops) && plan.Ops[j].Kind == plan.Ops[i].Kind && (plan.Ops[i].Kind == OpStartApp || plan.Ops[i].Kind == OpRemoveApp) {
			j++
		}
		if j-i > 1 {
			if err := r.parallel(ctx, d, plan, i, j, say); err != nil {
				return err
			}
			i = j
			continue
		}
		op := plan.Ops[i]
		if err := r.step(ctx, d, plan, i, say, served); err != nil {
			return &OpError{Op: op, Err: err}
		}
		i++
	}
	if plan.Partial {
		return nil
	}
	return r.writeApplied(ctx, AppliedFor(d))
}

func hasKind(p Plan, k OpKind) bool {
	for _, op := range p.Ops {
		if op.Kind == k {
			return true
		}
	}
	return false
}

// step runs plan.Ops[i] between its hooks.
func (r *Reconciler) step(ctx context.Context, d Desired, plan Plan, i int, say func(string, ...any), served func()) error {
	op := plan.Ops[i]
	if r.Hook != nil {
		if err := r.Hook("before", op); err != nil {
			return err
		}
	}
	end := trace.Begin(ctx, string(op.Kind), op.Target)
	err := r.apply(ctx, d, plan, i, say, served)
	end()
	if err != nil {
		return err
	}
	if r.Hook != nil {
		return r.Hook("after", op)
	}
	return nil
}

// defaultParallel: the engine does most of a container start (namespaces,
// mounts, the network endpoint) in its own processes and overlaps them
// well. Measured on the 2-core host under load, 16 at a time rolled out 10
// and 30 replicas about a sixth faster than 4, and 8 about a tenth.
const defaultParallel = 16

// removeParallel: removals are off the way to the new version (nginx
// already routes to it), and Docker 20.10 under heavy load has left a
// network endpoint behind after many containers went at once: they stay
// at 4 at a time.
const removeParallel = 4

// parallel runs plan.Ops[i:j] (all starts or all removals) at most
// StartParallel (starts) or removeParallel (removals) at a time, each
// between its hooks.
func (r *Reconciler) parallel(ctx context.Context, d Desired, plan Plan, i, j int, say func(string, ...any)) error {
	limit := r.StartParallel
	if limit <= 0 {
		limit = defaultParallel
	}
	if plan.Ops[i].Kind == OpRemoveApp {
		limit = removeParallel
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for k := i; k < j; k++ {
		op := plan.Ops[k]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Starts and removals never load nginx: nothing to serve.
			if err := r.step(ctx, d, plan, k, say, nil); err != nil {
				mu.Lock()
				errs = append(errs, &OpError{Op: op, Err: err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Reconciler) startApp(ctx context.Context, d Desired, op Op, say func(string, ...any)) error {
	spec, err := appSpec(d.Stack, *op.App)
	if err != nil {
		return err
	}
	if _, err := r.Engine.Run(ctx, spec); err != nil {
		return err
	}
	event := "container_created"
	if !op.Gated {
		event = "container_restarted"
	}
	r.record(ctx, event, fmt.Sprintf("started %s (%s): %s", op.Target, op.App.Image, op.Cause), map[string]any{"container": op.Target, "image": op.App.Image, "track": op.App.Track})
	say("Services starting... %s (%s)", op.Target, op.App.Image)
	return nil
}

func (r *Reconciler) apply(ctx context.Context, d Desired, plan Plan, i int, say func(string, ...any), served func()) error {
	desired := d.Stack
	op := plan.Ops[i]
	switch op.Kind {
	case OpPullImage:
		say("Pulling image %s", op.Target)
		if err := r.Engine.PullImage(ctx, op.Target); err != nil {
			return fmt.Errorf("docker image %s not found locally and could not be pulled: %w", op.Target, err)
		}
		r.record(ctx, "image_pulled", "pulled "+op.Target, map[string]any{"image": op.Target})
		say("Docker image found")
	case OpCreateNetwork:
		if err := r.Engine.CreateNetwork(ctx, desired.Network.Name, desired.Network.DriverType, stack.NetworkLabels(desired.Project)); err != nil {
			return err
		}
		say("Network %s created", desired.Network.Name)
	case OpRemoveDead, OpRemoveNginx:
		if err := r.Engine.Remove(ctx, op.ID, 0); err != nil {
			return err
		}
		r.record(ctx, "container_removed", fmt.Sprintf("removed %s: %s", op.Target, op.Cause), map[string]any{"container": op.Target})
	case OpStartApp:
		return r.startApp(ctx, d, op, say)
	case OpWaitHealthy:
		if err := r.waitHealthy(ctx, desired, op.Targets); err != nil {
			return err
		}
		say("Health check passed (%d containers)", len(op.Targets))
	case OpCheckNginx:
		if err := r.checkNginx(ctx, d); err != nil {
			r.record(ctx, "nginx_config_rejected", err.Error(), map[string]any{"image": desired.Nginx.Image})
			return err
		}
		say("Nginx config valid (image %s)", desired.Nginx.Image)
	case OpStartNginx:
		if err := r.startNginx(ctx, d); err != nil {
			return err
		}
		say("Nginx config valid")
		say("Nginx %s serving on port %d", desired.Nginx.Name, desired.Nginx.Port)
		if served != nil {
			served()
		}
	case OpReloadNginx:
		old, err := r.reloadNginx(ctx, d)
		if err != nil {
			r.record(ctx, "nginx_config_rejected", err.Error(), nil)
			return err
		}
		say("Nginx config valid")
		say("Nginx reloaded: %s", op.Cause)
		details := map[string]any{"revision": d.Revision}
		if t := d.Stack.Nginx.TLS; t != nil && t.Cert != "" {
			details["cert"] = t.Cert
		}
		r.record(ctx, "nginx_reloaded", op.Cause, details)
		if served != nil {
			served()
		}
		// New workers route only to the new upstreams; the old ones finish
		// their in-flight requests, then exit. Wait for that before a
		// container is removed.
		if r.Drain > 0 && hasLater(plan, i, OpRemoveApp) {
			if err := r.drain(ctx, d.Stack.Nginx.Name, old); err != nil {
				return err
			}
		}
	case OpRemoveApp:
		if err := r.Engine.Remove(ctx, op.ID, stopGrace); err != nil {
			return err
		}
		r.record(ctx, "container_removed", fmt.Sprintf("removed %s: %s", op.Target, op.Cause), map[string]any{"container": op.Target})
		say("Removed %s (%s)", op.Target, op.Cause)
	default:
		return fmt.Errorf("unknown operation %q", op.Kind)
	}
	return nil
}

func hasLater(p Plan, i int, k OpKind) bool {
	for _, op := range p.Ops[i+1:] {
		if op.Kind == k {
			return true
		}
	}
	return false
}

// appSpec is the container of app a. The image's own HEALTHCHECK is
// turned off: the reconciler probes the health path itself before nginx
// routes to a container, and nothing reads Docker's health status, while
// the engine would run the check as an exec in every replica every few
// seconds (the demo image: every 3 s), a load that grows with the
// replicas and slows every other container start on a small host.
func appSpec(desired stack.Stack, a stack.App) (engine.Spec, error) {
	s := engine.Spec{
		Name:          a.Name,
		Image:         a.Image,
		Env:           stack.SortedEnv(a.Env),
		Labels:        a.Labels(desired.Project),
		Network:       desired.Network.Name,
		NanoCPUs:      int64(a.CPUs * 1e9),
		Restart:       true,
		NoHealthcheck: true,
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
	labels := desired.Nginx.Labels(desired.Project)
	if m := r.mounts(); m != "" {
		labels[stack.LabelMounts] = m
	}
	return engine.Spec{
		Name:     desired.Nginx.Name,
		Image:    desired.Nginx.Image,
		Cmd:      []string{"nginx", "-c", stack.ConfigDir + "/" + confName, "-g", "daemon off;"},
		Labels:   labels,
		Network:  desired.Network.Name,
		HostPort: desired.Nginx.Port,
		HostIP:   desired.Nginx.Bind,
		ExtraPorts: func() []int {
			if t := desired.Nginx.TLS; t != nil {
				return []int{t.Port}
			}
			return nil
		}(),
		Binds: []engine.Bind{
			{Source: r.ConfigDir, Target: stack.ConfigDir, ReadOnly: true},
			{Source: r.RunDir, Target: stack.NginxRunDir},
		},
		Restart: true,
	}
}

// waitHealthy polls each container's health path over the project network
// until all answer 2xx. Probes start healthPollMin apart and back off to
// healthPollMax: a container that just started usually answers within
// milliseconds, and one that is slow is not probed in a tight loop. The
// engine is asked for the containers' addresses and states on the first
// round, then at most every healthListEvery (to notice one that exited),
// or when one has no address yet.
func (r *Reconciler) waitHealthy(ctx context.Context, desired stack.Stack, names []string) error {
	want := map[string]stack.App{}
	for _, a := range desired.Apps() {
		want[a.Name] = a
	}
	timeout := r.HealthTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	deadline := time.Now().Add(timeout)
	pending := append([]string(nil), names...)
	var lastErr error
	rounds, lists := 0, 0
	end := trace.Begin(ctx, "health checks", strconv.Itoa(len(names))+" containers")
	defer func() { end(fmt.Sprintf("%d rounds, %d container lists", rounds, lists)) }()
	byName := map[string]engine.Container{}
	var listed time.Time
	delay := healthPollMin
	for {
		rounds++
		needList := listed.IsZero() || time.Since(listed) >= healthListEvery
		for _, n := range pending {
			if byName[n].IP == "" {
				needList = true
			}
		}
		if needList {
			cs, err := r.Engine.ListContainers(ctx, desired.Project, desired.Network.Name)
			if err != nil {
				return err
			}
			listed = time.Now()
			lists++
			byName = map[string]engine.Container{}
			for _, c := range cs {
				byName[c.Name] = c
			}
			for _, n := range pending {
				c, ok := byName[n]
				switch {
				case !ok:
					return fmt.Errorf("container %s disappeared while starting", n)
				case c.State == "exited" || c.State == "dead":
					return fmt.Errorf("container %s exited while starting", n)
				}
			}
		}
		var still []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, n := range pending {
			c := byName[n]
			if c.IP == "" {
				mu.Lock()
				still = append(still, n)
				lastErr = fmt.Errorf("container %s has no address yet", n)
				mu.Unlock()
				continue
			}
			a := want[n]
			url := "http://" + net.JoinHostPort(c.IP, strconv.Itoa(a.Port)) + a.HealthPath
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.probe(ctx, url); err != nil {
					mu.Lock()
					still = append(still, n)
					lastErr = fmt.Errorf("container %s: %w", n, err)
					mu.Unlock()
					return
				}
				trace.Mark(ctx, "healthy", n)
			}()
		}
		wg.Wait()
		if len(still) == 0 {
			return nil
		}
		pending = still
		if time.Now().After(deadline) {
			return fmt.Errorf("health check failed after %s: %w", timeout, lastErr)
		}
		select {
		case <-time.After(delay):
			delay = min(2*delay, healthPollMax)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Health probing: the first retry after healthPollMin, backing off to
// healthPollMax; the container list is refreshed at most every
// healthListEvery.
const (
	healthPollMin   = 10 * time.Millisecond
	healthPollMax   = 50 * time.Millisecond
	healthListEvery = 250 * time.Millisecond
)

var probeClient = &http.Client{Timeout: 2 * time.Second}

func (r *Reconciler) probe(ctx context.Context, url string) error {
	if r.Probe != nil {
		return r.Probe(ctx, url)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

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
func (r *Reconciler) drain(ctx context.Context, name string, old []int) error {
	end := trace.Begin(ctx, "drain", name)
	deadline := time.Now().Add(r.Drain)
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
			break
		}
		if !anyOf(ps, old) && !shuttingDown(ps) {
			note = fmt.Sprintf("%d old workers exited (%d polls)", len(old), polls)
			return nil
		}
		note = fmt.Sprintf("old workers still serving after %s", r.Drain)
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
