package reconciler

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/secretfiles"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

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
	// A worker revision judged failing stays refused, before the gate
	// and any operation, until the manifest changes.
	if err := r.stillRejected(d, plan); err != nil {
		return err
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
		return r.appliedDone(ctx, d)
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
	return r.appliedDone(ctx, d)
}

// appliedDone records d as applied, and lifts the worker rejections of other
// manifests (forgetRejected).
func (r *Reconciler) appliedDone(ctx context.Context, d Desired) error {
	if err := r.writeApplied(ctx, AppliedFor(d)); err != nil {
		return err
	}
	r.forgetRejected(d.Spec)
	return nil
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
	spec, err := r.appSpec(d.Stack, *op.App)
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
		if err := r.pull(ctx, d, op.Target); err != nil {
			return err
		}
		r.record(ctx, "image_pulled", "pulled "+op.Target, map[string]any{"image": op.Target})
		say("Docker image found")
	case OpCreateNetwork:
		if err := r.Engine.CreateNetwork(ctx, desired.Network.Name, desired.Network.DriverType, stack.NetworkLabels(desired.Project)); err != nil {
			return err
		}
		say("Network %s created", desired.Network.Name)
	case OpCreateVolume:
		if err := r.Engine.CreateVolume(ctx, op.Target, stack.NetworkLabels(desired.Project)); err != nil {
			return err
		}
		r.record(ctx, "volume_created", "created volume "+op.Target, map[string]any{"volume": op.Target})
		say("Volume %s created", op.Target)
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
	case OpJudgeWorker:
		return r.judgeWorker(ctx, d, op, say)
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
		// Served means only the new configuration takes new connections.
		r.oldStopAccepting(ctx, d.Stack.Nginx.Name, old)
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
			if err := r.drain(ctx, d.Stack.Nginx.Name, old, max(r.Drain, d.Stack.FrontDoor.DrainTimeout)); err != nil {
				return err
			}
		}
	case OpRemoveApp:
		if err := r.Engine.Remove(ctx, op.ID, stopGraceOf(desired, op.Target)); err != nil {
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
func (r *Reconciler) appSpec(desired stack.Stack, a stack.App) (engine.Spec, error) {
	env, files, err := r.appFiles(a)
	if err != nil {
		return engine.Spec{}, err
	}
	s := engine.Spec{
		Name:          a.Name,
		Image:         a.Image,
		Env:           stack.SortedEnv(env),
		Labels:        a.Labels(desired.Project),
		Network:       desired.Network.Name,
		NanoCPUs:      int64(a.CPUs * 1e9),
		Restart:       true,
		NoHealthcheck: true,
		Cmd:           a.Command,
		Entrypoint:    a.Entrypoint,
		User:          a.User,
		WorkingDir:    a.WorkingDir,
		StopTimeout:   a.Grace(),
		Files:         files,
	}
	for _, v := range a.Volumes {
		switch v.Type {
		case manifest.VolumeNamed:
			s.Volumes = append(s.Volumes, engine.VolumeMount{Name: stack.VolumeName(desired.Project, v.Source), Target: v.Target, ReadOnly: v.ReadOnly})
		case manifest.VolumeBind:
			s.Binds = append(s.Binds, engine.Bind{Source: secretfiles.Path(r.Dir, v.Source), Target: v.Target, ReadOnly: v.ReadOnly})
		}
	}
	if a.Service != "" {
		// The other services reach this one by its name.
		s.Aliases = []string{a.Service}
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
