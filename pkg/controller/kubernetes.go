package controller

// The Kubernetes target (swiftdeployd --target kubernetes): the same
// control loop, journal, policies, state and control socket as on Docker,
// converging a namespace by server-side apply instead of containers and
// nginx. pkg/kubetarget plans; this file runs the plans; kube_status.go
// reports what the API says; kube_rollout.go makes promotion and
// rollback transactions.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// KubeConfig selects the Kubernetes target.
type KubeConfig struct {
	// Kubeconfig is the file with the API server, its CA and the
	// daemon's credentials.
	Kubeconfig string
	// Namespace the project lives in (it must exist).
	Namespace string
	// Gateway, when set, is the Gateway the HTTPRoute attaches to.
	Gateway string
	// ProgressDeadline is each Deployment's progressDeadlineSeconds
	// (default kubetarget.DefaultProgressDeadline): a rollout without
	// progress for that long is reported failed, and a promotion that
	// does not roll out within it is aborted.
	ProgressDeadline time.Duration
	// Poll is how often a transaction or a deploy looks at a rollout in
	// progress (default 250ms).
	Poll time.Duration
	// NoLeaderElection: act without holding the namespace's Lease (one
	// daemon known to be alone). By default daemons of one project in
	// one namespace elect a leader, which alone applies (leader.go).
	NoLeaderElection bool
	// Identity names this daemon in the Lease (default: the host name
	// and the manifest's directory, stable across restarts, so a
	// restarted leader takes its lease back at once).
	Identity string
	// LeaseDuration: a leader that stops renewing (killed) is replaced
	// within this (default 15s).
	LeaseDuration time.Duration
}

// eventDriftReverted journals an apply that took back fields someone else
// changed on an object swiftdeploy applied.
const eventDriftReverted = "drift_reverted"

// kubeTarget is the Kubernetes target: Deployments per track behind an
// HTTPRoute whose weights are the route.
type kubeTarget struct {
	d      *Daemon
	cfg    KubeConfig
	api    kubeAPI
	server string // the API server's address, for the journal
	// elect runs the leader election (nil: this daemon always acts).
	elect func(ctx context.Context, e kube.Election, lead func(context.Context), lost func()) error
	lead  leadership
}

func newKubeTarget(cfg KubeConfig) (*kubeTarget, error) {
	if cfg.Namespace == "" {
		return nil, errors.New("--namespace is required with --target kubernetes")
	}
	c, err := kube.FromKubeconfig(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	if cfg.ProgressDeadline <= 0 {
		cfg.ProgressDeadline = kubetarget.DefaultProgressDeadline
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	t := &kubeTarget{cfg: cfg, api: kubetarget.NewLive(c, cfg.Namespace), server: c.Server}
	if !cfg.NoLeaderElection {
		// Not acting until elected, from the first reconcile on.
		t.elect, t.lead.elected = c.Elect, true
	}
	return t, nil
}

// Watch runs the informers' events into reconciles (a deleted canary
// Service or an edited image is reverted, a rollout's progress is
// noticed): a burst of events settles for the debounce, then one
// reconcile is enqueued. It also runs the leader election.
func (t *kubeTarget) Watch(ctx context.Context, kick func()) {
	d := t.d
	events := make(chan struct{}, 1)
	t.api.OnChange(func() {
		select {
		case events <- struct{}{}:
		default:
		}
	})
	defer t.api.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.runElection(ctx)
	}()
	defer func() { <-done }()
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-events:
			if debounce == nil {
				debounce = time.After(d.cfg.Debounce)
			}
		case <-debounce:
			debounce = nil
			kick()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// kubeAPI is what the target needs of the API server: writes, the
// cluster policy's lists, and the project's objects from the informers'
// cache (kubetarget.Live; tests use a fake).
type kubeAPI interface {
	kubetarget.API
	Observe(ctx context.Context, project string, x kubetarget.Extras) (kubetarget.Observed, error)
	OnChange(func())
	Close()
}

// kubeChange is a plan of pkg/kubetarget.
type kubeChange struct {
	m       *manifest.Manifest
	desired kubetarget.Desired
	obs     kubetarget.Observed
	plan    kubetarget.Plan
	rev     string
}

func (c *kubeChange) Revision() string { return c.rev }
func (c *kubeChange) Blocked() string  { return "" }
func (c *kubeChange) Gated() bool      { return c.plan.Gated() }
func (c *kubeChange) Empty() bool      { return c.plan.Empty() }
func (c *kubeChange) Lines() []string  { return c.plan.Lines() }
func (c *kubeChange) Serving() Serving { return kubeServing(c.m, c.obs) }

func (t *kubeTarget) Name() string { return "kubernetes" }

func (t *kubeTarget) desired(m *manifest.Manifest, s State) (kubetarget.Desired, error) {
	pull, err := t.d.pullSecret(m, s)
	if err != nil {
		return kubetarget.Desired{}, err
	}
	// The files' keyed digest goes into the pods' config hash (a changed
	// secret rolls them); their content into the Secrets only.
	m, err = t.d.withFiles(m)
	if err != nil {
		return kubetarget.Desired{}, err
	}
	d, err := kubetarget.DesiredFor(m, s.options(m), t.cfg.Namespace, t.cfg.Gateway, t.cfg.ProgressDeadline, pull)
	if err != nil || !hasSecrets(m) {
		return d, err
	}
	if m.IsNamed() {
		d.Secrets, err = t.d.namedSecrets(m, t.cfg.Namespace)
		return d, err
	}
	files, env, err := t.d.readSecrets(m)
	if err != nil {
		return kubetarget.Desired{}, err
	}
	d.Secrets = kubetarget.SecretsFor(m.Project, t.cfg.Namespace, files, env)
	return d, nil
}

// hasSecrets: the manifest's services have env files or secrets.
func hasSecrets(m *manifest.Manifest) bool {
	for _, s := range allServices(m) {
		if len(s.EnvFile) > 0 || len(s.Secrets) > 0 {
			return true
		}
	}
	return false
}

// hasClaims: the manifest's services have named volumes (an accessory's
// are its StatefulSet's claims).
func hasClaims(m *manifest.Manifest) bool {
	for _, s := range allServices(m) {
		for _, v := range s.Volumes {
			if v.Type == manifest.VolumeNamed {
				return true
			}
		}
	}
	return false
}

// extras: the Secrets, claims and StatefulSets the manifest needs (the
// Role grants them only then).
func extras(m *manifest.Manifest) kubetarget.Extras {
	return kubetarget.Extras{Secrets: hasSecrets(m), Claims: hasClaims(m), StatefulSets: hasAccessories(m)}
}

// observe reads what the project owns from the informers' cache; its Secrets and volume claims only
// when the manifest has some (the daemon's Role grants them only then).
func (t *kubeTarget) observe(ctx context.Context, m *manifest.Manifest) (kubetarget.Observed, error) {
	obs, err := t.api.Observe(ctx, m.Project, extras(m))
	t.d.setEngineErr(err)
	return obs, err
}

func (t *kubeTarget) Change(ctx context.Context, m *manifest.Manifest, s State) (Change, error) {
	desired, err := t.desired(m, s)
	if err != nil {
		return nil, err
	}
	c := &kubeChange{m: m, desired: desired, rev: kubetarget.Revision(desired)}
	return c, t.replan(ctx, c)
}

// replan observes and plans c again.
func (t *kubeTarget) replan(ctx context.Context, c *kubeChange) error {
	obs, err := t.observe(ctx, c.m)
	if err != nil {
		return err
	}
	plan, err := t.plan(ctx, c.desired, c.rev, obs)
	if err != nil {
		return &planError{err}
	}
	c.obs, c.plan = obs, plan
	return nil
}

// plan computes the plan from obs to desired: from the informers' cache
// alone, no call to the API server, so status and diff may plan on every
// call.
func (t *kubeTarget) plan(_ context.Context, desired kubetarget.Desired, _ string, obs kubetarget.Observed) (kubetarget.Plan, error) {
	plan, err := kubetarget.Compute(desired, obs)
	if err != nil {
		return plan, err
	}
	return kubetarget.Regate(plan, desired, obs), nil
}

// Apply applies c's plan; with h.Wait it converges until c has rolled out,
// calling h.Served the moment the route serves c (the commit point).
func (t *kubeTarget) Apply(ctx context.Context, ch Change, h Hooks) ([]string, error) {
	c := ch.(*kubeChange)
	if !h.Wait {
		return t.step(ctx, c, h)
	}
	deadline := time.Now().Add(t.cfg.ProgressDeadline + 10*time.Second)
	var applied []string
	said, served := "", false
	for {
		if !served && h.Served != nil && kubetarget.Serves(c.desired, c.obs) {
			h.Served()
			served = true
		}
		done, why := kubetarget.Converged(c.desired, c.obs, c.plan)
		if done {
			return applied, nil
		}
		if f := progressFailed(c.desired, c.obs); f != "" {
			return applied, errors.New(f)
		}
		if time.Now().After(deadline) {
			return applied, fmt.Errorf("not rolled out within %s: %s", t.cfg.ProgressDeadline, why)
		}
		if !c.plan.Empty() {
			lines, err := t.step(ctx, c, h)
			applied = append(applied, lines...)
			if err != nil {
				return applied, err
			}
		} else {
			if why != said && h.Progress != nil {
				h.Progress("Waiting: " + why)
				said = why
			}
			select {
			case <-ctx.Done():
				return applied, ctx.Err()
			case <-time.After(t.cfg.Poll):
			}
		}
		if err := t.replan(ctx, c); err != nil {
			return applied, err
		}
	}
}

// step gates and applies c's plan once, op by op, and returns the ops that
// ran: a drift revert is journaled only once its op has run.
func (t *kubeTarget) step(ctx context.Context, c *kubeChange, h Hooks) ([]string, error) {
	if c.plan.Empty() {
		return nil, nil
	}
	if err := t.acting(); err != nil {
		return nil, err
	}
	if c.plan.Gated() {
		if dec := h.Gate(ctx); !dec.Allowed {
			return nil, &reconciler.DeniedError{Reasons: dec.Reasons, Transient: dec.Transient, Codes: dec.Codes}
		}
	}
	var ran []string
	for _, op := range c.plan.Ops {
		op, err := kubetarget.RunOp(ctx, t.api, op)
		if err != nil {
			return ran, err
		}
		if h.Progress != nil {
			h.Progress(op.String())
		}
		ran = append(ran, op.String())
		if op.Force {
			t.d.event(eventDriftReverted, op.String(), "", map[string]any{"object": op.Ref.String()})
		}
	}
	return ran, nil
}

func (t *kubeTarget) Serves(ctx context.Context, ch Change) (Verdict, Serving, error) {
	c := ch.(*kubeChange)
	obs, err := t.observe(ctx, c.m)
	if err != nil {
		return ServesUnknown, Serving{}, err
	}
	sv := kubeServing(c.m, obs)
	if kubetarget.Serves(c.desired, obs) {
		return ServesYes, sv, nil
	}
	return ServesNo, sv, nil
}

func (t *kubeTarget) Serving(ctx context.Context, m *manifest.Manifest) (Serving, error) {
	obs, err := t.observe(ctx, m)
	if err != nil {
		return Serving{}, err
	}
	return kubeServing(m, obs), nil
}

// kubeServing reads the mode from the live route's weights and the images
// from the live Deployments: the primary service's, the one a canary is
// about (in the named form, its rule's split in the route).
func kubeServing(m *manifest.Manifest, obs kubetarget.Observed) Serving {
	n := kubetarget.PrimaryNames(m)
	_, w, ok := kubetarget.PrimaryWeights(obs, n)
	if !ok {
		return Serving{}
	}
	s := Serving{Mode: stack.TrackStable}
	if dep, ok := obs.Deployments[n.StableDeployment]; ok {
		s.StableImage = kubetarget.ImageOf(dep)
	}
	dep, ok := obs.Deployments[n.CanaryDeployment]
	s.CanaryRunning = ok
	if ok && w[n.CanaryService] > 0 {
		s.Mode = stack.TrackCanary
		s.CanaryImage = kubetarget.ImageOf(dep)
		s.CanaryWeight = w[n.CanaryService]
		s.CanaryLive, _ = kubetarget.RolledOut(dep)
	}
	return s
}

// Rolled looks at the rollout of m under s without a dry run: every
// desired Deployment and StatefulSet rolled out with its image, the route's weights in
// force, or the reason it is not yet.
func (t *kubeTarget) Rolled(ctx context.Context, m *manifest.Manifest, s State) (RolloutStatus, error) {
	desired, err := t.desired(m, s)
	if err != nil {
		return RolloutStatus{}, err
	}
	obs, err := t.observe(ctx, m)
	if err != nil {
		return RolloutStatus{}, err
	}
	if f := progressFailed(desired, obs); f != "" {
		return RolloutStatus{Failed: f}, nil
	}
	for _, o := range kubetarget.ForObserved(desired, obs).Objects {
		if v, ok := o.(*appsv1.StatefulSet); ok {
			if why := rolledStatefulSet(v, obs); why != "" {
				return RolloutStatus{Waiting: why}, nil
			}
		}
		if v, ok := o.(*appsv1.Deployment); ok {
			live, ok := obs.Deployments[v.Name]
			if !ok {
				return RolloutStatus{Waiting: "Deployment " + v.Name + " missing"}, nil
			}
			if kubetarget.ImageOf(live) != kubetarget.ImageOf(*v) {
				return RolloutStatus{Waiting: "Deployment " + v.Name + " not yet at " + kubetarget.ImageOf(*v)}, nil
			}
			if done, why := kubetarget.RolledOut(live); !done {
				return RolloutStatus{Waiting: "Deployment " + v.Name + ": " + why}, nil
			}
		}
	}
	if !kubetarget.Serves(desired, obs) {
		return RolloutStatus{Waiting: "the route does not serve the desired weights yet"}, nil
	}
	return RolloutStatus{Done: true}, nil
}

func (t *kubeTarget) Await() (poll, deadline time.Duration) {
	return t.cfg.Poll, t.cfg.ProgressDeadline + 10*time.Second
}

// progressFailed names a desired Deployment whose rollout exceeded its
// progress deadline.
func progressFailed(desired kubetarget.Desired, obs kubetarget.Observed) string {
	for _, obj := range kubetarget.ForObserved(desired, obs).Objects {
		if live, ok := obs.Deployments[obj.GetName()]; ok {
			if f := kubetarget.ProgressFailed(live); f != "" {
				return "Deployment " + live.Name + ": " + f + "; the previous pods keep serving"
			}
		}
	}
	return ""
}

// Decide is the cluster policy on the cluster's facts.
func (t *kubeTarget) Decide(ctx context.Context, ch Change) policy.Decision {
	return t.d.policies.ClusterDecision(ctx, kubetarget.ClusterFacts(ctx, t.api, ch.(*kubeChange).desired))
}

// Judge is canary safety from Prometheus's figures of the canary's
// current pods (the revision is the pod-template hash it finds).
func (t *kubeTarget) Judge(ctx context.Context, m *manifest.Manifest, _ string) (policy.Decision, statsView) {
	obs, err := t.observe(ctx, m)
	if err != nil {
		return policy.Decision{Reasons: []string{err.Error()}}, statsView{Outcome: metrics.MissingData, NoProxy: true}
	}
	dec, ts := t.canaryDecision(ctx, m, obs)
	v := statsView{Outcome: metrics.Outcome(ts.api.Outcome), NoProxy: true, Requests: ts.api.Requests,
		ErrorRate: ts.api.ErrorRate, P99Ms: ts.api.P99Ms, ReqPerSec: ts.api.ReqPerSec}
	return dec, v
}

func (t *kubeTarget) Forget() error { return nil }

// Heal: the cluster's own controllers restore crashed pods; a denied
// change leaves the live objects as they are.
func (t *kubeTarget) Heal(context.Context, Change, reconciler.Progress) {}

// Teardown plans the deletion of every object the project owns: the
// routes first, so that nothing is sent to a Service being deleted, then
// the Services and workloads (Deployments, the accessories' StatefulSets).
// The project's Secrets go last; its volume claims, with the data, only
// with volumes (`down --volumes`), after everything else.
func (t *kubeTarget) Teardown(ctx context.Context, m *manifest.Manifest, volumes bool) ([]Removal, error) {
	obs, err := t.observe(ctx, m)
	if err != nil {
		return nil, err
	}
	var refs []kube.Ref
	ns := t.cfg.Namespace
	add := func(r kube.Resource, names []string) {
		sort.Strings(names)
		for _, n := range names {
			refs = append(refs, kube.Ref{Resource: r, Namespace: ns, Name: n})
		}
	}
	add(kube.HTTPRoutes, slices.Collect(maps.Keys(obs.Routes)))
	add(kube.Services, slices.Collect(maps.Keys(obs.Services)))
	add(kube.Deployments, slices.Collect(maps.Keys(obs.Deployments)))
	add(kube.StatefulSets, slices.Collect(maps.Keys(obs.StatefulSets)))
	add(kube.Secrets, slices.Collect(maps.Keys(obs.Secrets)))
	if volumes { // the data goes only when asked for
		add(kube.Claims, slices.Collect(maps.Keys(obs.Claims)))
	}
	plan := make([]Removal, 0, len(refs))
	for _, ref := range refs {
		ref := ref
		plan = append(plan, Removal{Op: "delete", Target: ref.String(), Event: journal.EventObjectDeleted,
			run: func(ctx context.Context) error {
				if err := t.acting(); err != nil {
					return err
				}
				return t.api.Delete(ctx, ref)
			}})
	}
	return plan, nil
}
