// Package kubernetes is the Kubernetes target (swiftdeployd --target
// kubernetes): the controller's Target on a namespace, converged by
// server-side apply instead of containers and nginx, under the same
// control loop, journal, policies, state and control socket as on Docker.
// pkg/kubetarget plans; target.go runs the plans; status.go reports what
// the API says; leader.go elects the one daemon of a namespace that
// applies; the controller makes promotion and rollback transactions.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// Config selects the Kubernetes target.
type Config struct {
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
	// within this and kube.TakeoverSlack of the retry period (default
	// 15s).
	LeaseDuration time.Duration
	// Elect, when set, replaces the client's leader election (tests).
	Elect func(ctx context.Context, e kube.Election, lead func(context.Context), lost func()) error
}

// Deps is what the Kubernetes target calls back into the controller for,
// given at construction.
type Deps struct {
	targets.Controller
	// PullSecret is the image pull Secret's payload for m under s (nil
	// when no registry m's images are on has credentials).
	PullSecret func(m *manifest.Manifest, s targets.Decisions) ([]byte, error)
	// Debounce: a burst of the informers' events settles this long
	// before one reconcile is asked for.
	Debounce time.Duration
	// Dir is the manifest's directory: env and secret files are relative
	// to it, and it names this daemon in the Lease.
	Dir string
}

// EventDriftReverted journals an apply that took back fields someone else
// changed on an object swiftdeploy applied.
const EventDriftReverted = "drift_reverted"

// Target is the Kubernetes target: Deployments per track behind an
// HTTPRoute whose weights are the route.
type Target struct {
	d      Deps
	cfg    Config
	api    API
	server string // the API server's address, for the journal
	// elect runs the leader election (nil: this daemon always acts).
	elect func(ctx context.Context, e kube.Election, lead func(context.Context), lost func()) error
	lead  leadership
	// pulls remembers the registries' refusals of the kubelet's pulls
	// (pulldeny.go).
	pulls pullDenials
}

// New connects to the API server of cfg's kubeconfig.
func New(cfg Config, d Deps) (*Target, error) {
	if cfg.Namespace == "" {
		return nil, errors.New("--namespace is required with --target kubernetes")
	}
	c, err := kube.FromKubeconfig(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	if cfg.Elect == nil {
		cfg.Elect = c.Elect
	}
	t := NewOn(cfg, kubetarget.NewLive(c, cfg.Namespace), d)
	t.server = c.Server
	return t, nil
}

// NewOn is the target on api (tests: a fake API server). It elects with
// cfg.Elect, when set and not NoLeaderElection.
func NewOn(cfg Config, api API, d Deps) *Target {
	if cfg.ProgressDeadline <= 0 {
		cfg.ProgressDeadline = kubetarget.DefaultProgressDeadline
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	t := &Target{d: d, cfg: cfg, api: api}
	if !cfg.NoLeaderElection && cfg.Elect != nil {
		// Not acting until elected, from the first reconcile on.
		t.elect, t.lead.elected = cfg.Elect, true
	}
	return t
}

// String names the namespace and the API server, for the journal.
func (t *Target) String() string {
	return fmt.Sprintf("kubernetes namespace %s at %s", t.cfg.Namespace, t.server)
}

// API is what the target needs of the API server: writes, the
// cluster policy's lists, and the project's objects from the informers'
// cache (kubetarget.Live; tests use a fake).
type API interface {
	kubetarget.API
	// Get reads an object by name: one a plan creates, which may be
	// another project's (kubetarget.CheckCreates).
	kubetarget.Getter
	Observe(ctx context.Context, project string, x kubetarget.Extras) (kubetarget.Observed, error)
	OnChange(func())
	Close()
}

// change is a plan of pkg/kubetarget.
type change struct {
	m       *manifest.Manifest
	desired kubetarget.Desired
	obs     kubetarget.Observed
	plan    kubetarget.Plan
	rev     string
	// blocked: an object the plan creates exists and is not the
	// project's (kubetarget.CheckCreates); nothing is applied.
	blocked string
}

func (c *change) Revision() string         { return c.rev }
func (c *change) Blocked() string          { return c.blocked }
func (c *change) Gated() bool              { return c.plan.Gated() }
func (c *change) Empty() bool              { return c.plan.Empty() && c.blocked == "" }
func (c *change) Lines() []string          { return c.plan.Lines() }
func (c *change) Serving() targets.Serving { return serving(c.m, c.obs) }

func (t *Target) Name() string { return "kubernetes" }

func (t *Target) desired(m *manifest.Manifest, s targets.Decisions) (kubetarget.Desired, error) {
	pull, err := t.d.PullSecret(m, s)
	if err != nil {
		return kubetarget.Desired{}, err
	}
	// The files' keyed digest goes into the pods' config hash (a changed
	// secret rolls them); their content into the Secrets only.
	m, err = t.d.WithFiles(m)
	if err != nil {
		return kubetarget.Desired{}, err
	}
	d, err := kubetarget.DesiredFor(m, s.Options(m), t.cfg.Namespace, t.cfg.Gateway, t.cfg.ProgressDeadline, pull)
	if err != nil || !hasSecrets(m) {
		return d, err
	}
	if m.IsNamed() {
		d.Secrets, err = t.namedSecrets(m, t.cfg.Namespace)
		return d, err
	}
	files, env, err := t.readSecrets(m)
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

// extras: the Secrets, claims and StatefulSets to observe. Secrets only
// when the manifest has some (the Role grants them only then). In the
// named form, StatefulSets and claims always (its Role grants them): an
// accessory or a volume taken out of the manifest leaves its StatefulSet
// and claims behind, which the plan deletes (the StatefulSet) and `down`
// (`--volumes`: the claims) must see, on a daemon started after the
// change too. The single service's claims when it has named volumes.
func extras(m *manifest.Manifest) kubetarget.Extras {
	named := m.IsNamed()
	return kubetarget.Extras{Secrets: hasSecrets(m), Claims: named || hasClaims(m), StatefulSets: named}
}

// observe reads what the project owns from the informers' cache. A kind
// the manifest needs that the daemon may not list is an error; one it
// observes only to find leftovers is Unseen (status says so).
func (t *Target) observe(ctx context.Context, m *manifest.Manifest) (kubetarget.Observed, error) {
	obs, err := t.api.Observe(ctx, m.Project, extras(m))
	t.d.Reached(err)
	if err != nil {
		return obs, err
	}
	if why, ok := obs.Unseen[kubetarget.UnseenStatefulSets]; ok && hasAccessories(m) {
		return obs, errors.New(why)
	}
	if why, ok := obs.Unseen[kubetarget.UnseenClaims]; ok && hasClaims(m) {
		return obs, errors.New(why)
	}
	return obs, nil
}

func (t *Target) Change(ctx context.Context, m *manifest.Manifest, s targets.Decisions) (targets.Change, error) {
	desired, err := t.desired(m, s)
	if err != nil {
		return nil, err
	}
	c := &change{m: m, desired: desired, rev: kubetarget.Revision(desired)}
	return c, t.replan(ctx, c)
}

// replan observes and plans c again.
func (t *Target) replan(ctx context.Context, c *change) error {
	obs, err := t.observe(ctx, c.m)
	if err != nil {
		return err
	}
	plan, err := t.plan(ctx, c.desired, c.rev, obs)
	if err != nil {
		return &targets.PlanError{Err: err}
	}
	// The plan sees the project's objects only: what it creates is read
	// by name first, so that another project's object of that name is
	// refused, not taken over by the apply.
	blocked, err := kubetarget.CheckCreates(ctx, t.api, c.desired.Project, plan)
	if err != nil {
		return err
	}
	c.obs, c.plan, c.blocked = obs, plan, blocked
	return nil
}

// plan computes the plan from obs to desired: from the informers' cache
// alone, no call to the API server, so status and diff may plan on every
// call.
func (t *Target) plan(_ context.Context, desired kubetarget.Desired, _ string, obs kubetarget.Observed) (kubetarget.Plan, error) {
	plan, err := kubetarget.Compute(desired, obs)
	if err != nil {
		return plan, err
	}
	return kubetarget.Regate(plan, desired, obs), nil
}

// Apply applies c's plan; with h.Wait it converges until c has rolled out,
// calling h.Served the moment the route serves c (the commit point).
func (t *Target) Apply(ctx context.Context, ch targets.Change, h targets.Hooks) ([]string, error) {
	c := ch.(*change)
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
		if f, pd := t.rolloutFailed(c.desired, c.rev, c.obs); pd != nil {
			return applied, pd
		} else if f != "" {
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
func (t *Target) step(ctx context.Context, c *change, h targets.Hooks) ([]string, error) {
	if c.blocked != "" {
		return nil, errors.New(c.blocked)
	}
	if c.plan.Empty() {
		return nil, nil
	}
	if err := t.Acting(); err != nil {
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
			t.d.Event(EventDriftReverted, op.String(), map[string]any{"object": op.Ref.String()})
		}
	}
	return ran, nil
}

func (t *Target) Serves(ctx context.Context, ch targets.Change) (targets.Verdict, targets.Serving, error) {
	c := ch.(*change)
	obs, err := t.observe(ctx, c.m)
	if err != nil {
		return targets.ServesUnknown, targets.Serving{}, err
	}
	sv := serving(c.m, obs)
	if kubetarget.Serves(c.desired, obs) {
		return targets.ServesYes, sv, nil
	}
	return targets.ServesNo, sv, nil
}

func (t *Target) Serving(ctx context.Context, m *manifest.Manifest) (targets.Serving, error) {
	obs, err := t.observe(ctx, m)
	if err != nil {
		return targets.Serving{}, err
	}
	return serving(m, obs), nil
}

// Accept refuses what this target cannot run as written
// (kubetarget.Accept): a worker with metrics of its own, which it does not
// judge yet, and routes holding more rules than the Gateway API allows.
// Every web service's canary runs beside the others', each with its own
// Deployment, Service and weighted rule in its route.
func (t *Target) Accept(m *manifest.Manifest) error { return kubetarget.Accept(m) }

// ServingOf is serving of named web service service's own rule and
// Deployments ("" or the primary: Serving), its CanaryRevision naming the
// service's canary Deployment (for the record: Judge is told the
// service); of a worker or an accessory, which no route sends traffic to,
// what its Deployment or StatefulSet runs (servingUnrouted). A rollback of
// such a service commits on WorkloadRuns, which reads the workload by its
// name whatever the manifest says of the service now.
func (t *Target) ServingOf(ctx context.Context, m *manifest.Manifest, service string) (targets.Serving, error) {
	if p, _ := m.Primary(); service == "" || service == p {
		return t.Serving(ctx, m)
	}
	svc := m.Named[service]
	if svc == nil {
		// Not in the manifest (any more): no route or canary of it.
		return targets.Serving{}, nil
	}
	obs, err := t.observe(ctx, m)
	if err != nil {
		return targets.Serving{}, err
	}
	if svc.EffectiveKind() != manifest.KindWeb {
		return servingUnrouted(m, svc, service, obs), nil
	}
	n := kubetarget.NamesOf(m, service)
	sv := servingNames(obs, n)
	if sv.CanaryRunning {
		sv.CanaryRevision = n.CanaryDeployment
	}
	return sv, nil
}

// serving reads the mode from the live route's weights and the images
// from the live Deployments: the primary service's, the one a canary is
// about (in the named form, its rule's split in the route).
func serving(m *manifest.Manifest, obs kubetarget.Observed) targets.Serving {
	return servingNames(obs, kubetarget.PrimaryNames(m))
}

// servingNames is serving of the service whose objects n names.
func servingNames(obs kubetarget.Observed, n kubetarget.Names) targets.Serving {
	_, w, ok := kubetarget.PrimaryWeights(obs, n)
	if !ok {
		return targets.Serving{}
	}
	s := targets.Serving{Mode: stack.TrackStable}
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

// Decide is the cluster policy on the cluster's facts.
func (t *Target) Decide(ctx context.Context, ch targets.Change) policy.Decision {
	return t.d.Policies.ClusterDecision(ctx, kubetarget.ClusterFacts(ctx, t.api, ch.(*change).desired))
}

// Judge is canary safety from Prometheus's figures of the current pods
// of service's canary (their pod-template hash is the revision judged;
// revision, from ServingOf, is not needed: the service names the
// Deployment, whoever the primary is now).
func (t *Target) Judge(ctx context.Context, m *manifest.Manifest, service, _ string) (policy.Decision, targets.Figures) {
	obs, err := t.observe(ctx, m)
	if err != nil {
		return policy.Decision{Reasons: []string{err.Error()}}, targets.Figures{Outcome: metrics.MissingData, NoProxy: true}
	}
	dec, ts := t.canaryDecision(ctx, m, judgedService(m, service), obs)
	v := targets.Figures{Outcome: metrics.Outcome(ts.api.Outcome), NoProxy: true, Requests: ts.api.Requests,
		ErrorRate: ts.api.ErrorRate, P99Ms: ts.api.P99Ms, ReqPerSec: ts.api.ReqPerSec}
	return dec, v
}

func (t *Target) Forget() error { return nil }

// Heal: the cluster's own controllers restore crashed pods; a denied
// change leaves the live objects as they are.
func (t *Target) Heal(context.Context, targets.Change, reconciler.Progress) {}

// judgedService is the service canaryDecision reads: "" for the primary
// (named as such or by its name), else service itself.
func judgedService(m *manifest.Manifest, service string) string {
	if p, _ := m.Primary(); !m.IsNamed() || service == p {
		return ""
	}
	return service
}
