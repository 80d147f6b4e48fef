// Package docker is the Docker target (swiftdeployd's default): the
// controller's Target on one Docker host, app containers behind one nginx
// whose loaded configuration is the route. pkg/reconciler observes, plans
// and applies; target.go runs it for the controller; status.go reports
// what runs and serves; judge.go decides the infrastructure policy and
// canary safety on the app's and nginx's figures; validate.go, logs.go
// and watch.go are validate, logs and the engine's event watch.
package docker

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/failpoint"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/observe"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/registryauth"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// Engine is what the Docker target needs of the Docker Engine: the
// reconciler's calls, the volumes down removes, a ping and the event
// stream.
type Engine interface {
	reconciler.Engine
	// ListVolumes and RemoveVolume serve `down --volumes`.
	ListVolumes(ctx context.Context, project string) ([]engine.Volume, error)
	RemoveVolume(ctx context.Context, name string) error
	Ping(ctx context.Context) error
	Watch(ctx context.Context, project string) (<-chan engine.Event, <-chan error)
}

// Deps is what the Docker target works with, given at construction: the
// engine and reconciler it drives, the figures and policies it judges
// on, and what it calls back into the controller for.
type Deps struct {
	targets.Controller
	Engine Engine
	Rec    *reconciler.Reconciler
	// Observer and Proxy are the app's and nginx's figures per revision,
	// which the controller's scrape and access-log loops feed.
	Observer *observe.Observer
	Proxy    *observe.Proxy
	// Decisions are the recorded decisions in force now.
	Decisions func() targets.Decisions
	// Registries is where m's images' pull credentials are.
	Registries func(m *manifest.Manifest) registryauth.Source
	// HostFacts, when set, replaces the host readings of the
	// infrastructure policy (tests).
	HostFacts func(diskPath string) policy.InfraInput
	// TLS is nginx.tls's certificate for status, given the one nginx
	// serves (the controller's certificate manager).
	TLS func(served string) *api.TLSStatus
	// CertDir is the certificate store's directory, which nginx reads
	// (validate's nginx -t mounts it).
	CertDir string
	// NginxStarted: an nginx container started (follow its access log
	// from its first line).
	NginxStarted func()
	// Dir is the manifest's directory (the generated files go there),
	// StateDir its .swiftdeploy (validate's scratch files).
	Dir, StateDir string
	// HealthTimeout bounds how long new containers may take to get
	// healthy: a deploy awaits its rollout that long.
	HealthTimeout time.Duration
}

// Target is the Docker host: app containers behind one nginx, whose
// loaded configuration is the route (its revision is what serves).
type Target struct {
	Deps
}

// New is the Docker target working with d.
func New(d Deps) *Target { return &Target{Deps: d} }

// change is a plan of the reconciler.
type change struct {
	m       *manifest.Manifest
	desired reconciler.Desired
	obs     reconciler.Observed
	plan    reconciler.Plan
}

func (c *change) Revision() string { return c.desired.Revision }
func (c *change) Blocked() string  { return c.plan.Blocked }
func (c *change) Gated() bool      { return c.plan.Gated() }
func (c *change) Empty() bool      { return c.plan.Empty() }
func (c *change) Lines() []string {
	out := make([]string, 0, len(c.plan.Ops))
	for _, op := range c.plan.Ops {
		out = append(out, op.String())
	}
	return out
}

func (c *change) Serving() targets.Serving { return serving(c.obs, c.desired) }

func (t *Target) Name() string { return "docker" }

// Heal restores the applied record's containers and nginx config.
func (t *Target) Heal(ctx context.Context, ch targets.Change, progress reconciler.Progress) {
	c := ch.(*change)
	t.healWhileDenied(ctx, c.desired, c.obs, progress)
}

// Rolled: the reconciler's apply waits for health and for nginx to load
// the revision, so what it applied has rolled out when it returns.
func (t *Target) Rolled(context.Context, *manifest.Manifest, targets.Decisions) (targets.RolloutStatus, error) {
	return targets.RolloutStatus{Done: true}, nil
}

func (t *Target) Await() (poll, deadline time.Duration) {
	return time.Second, t.HealthTimeout
}

func (t *Target) Change(ctx context.Context, m *manifest.Manifest, s targets.Decisions) (targets.Change, error) {
	desired, err := t.desiredWith(m, s)
	if err != nil {
		return nil, err
	}
	end := trace.Begin(ctx, "observe", "")
	obs, err := t.Rec.Observe(ctx, desired)
	end()
	if err != nil {
		t.Reached(err)
		return nil, err
	}
	// A worker revision judged failing stays as it runs: the rest of
	// the stack still converges (a canary's rollback among it).
	if desired, err = unrejected(t.Rec, desired, obs); err != nil {
		return nil, err
	}
	end = trace.Begin(ctx, "plan", "")
	plan := reconciler.Compute(desired, obs)
	end(fmt.Sprintf("%d ops", len(plan.Ops)))
	return &change{m: m, desired: desired, obs: obs, plan: plan}, nil
}

// Apply runs the reconciler's plan; it always waits for health (h.Wait is
// what it does anyway) and calls h.Served when nginx loads the revision.
func (t *Target) Apply(ctx context.Context, ch targets.Change, h targets.Hooks) ([]string, error) {
	c := ch.(*change)
	gate := func(ctx context.Context, _ reconciler.Plan) reconciler.Decision { return h.Gate(ctx) }
	err := t.Rec.ApplyServed(ctx, c.desired, c.plan, gate, h.Served, h.Progress)
	if err == nil {
		if werr := t.writeArtifacts(c.desired); werr != nil {
			t.Log.Error("write generated files", zap.Error(werr))
		}
	}
	return c.Lines(), err
}

// Serves: nginx has loaded the change's configuration revision.
func (t *Target) Serves(ctx context.Context, ch targets.Change) (targets.Verdict, targets.Serving, error) {
	c := ch.(*change)
	after, err := t.Rec.Observe(ctx, c.desired)
	if err != nil {
		t.Reached(err)
		return targets.ServesUnknown, targets.Serving{}, err
	}
	sv := serving(after, c.desired)
	switch {
	case after.Loaded != nil && after.Loaded.Revision == c.desired.Revision:
		return targets.ServesYes, sv, nil
	case after.Loaded == nil && after.LoadedErr != "":
		return targets.ServesUnknown, sv, nil
	}
	return targets.ServesNo, sv, nil
}

// Accept: the Docker host runs every manifest that validates and renders.
func (t *Target) Accept(*manifest.Manifest) error { return nil }

func (t *Target) Serving(ctx context.Context, m *manifest.Manifest) (targets.Serving, error) {
	cur, err := t.desired(m)
	if err != nil {
		return targets.Serving{}, err
	}
	obs, err := t.Rec.Observe(ctx, cur)
	if err != nil {
		t.Reached(err)
		return targets.Serving{}, err
	}
	return serving(obs, cur), nil
}

func (t *Target) ServingOf(ctx context.Context, m *manifest.Manifest, service string) (targets.Serving, error) {
	cur, err := t.desired(m)
	if err != nil {
		return targets.Serving{}, err
	}
	obs, err := t.Rec.Observe(ctx, cur)
	if err != nil {
		t.Reached(err)
		return targets.Serving{}, err
	}
	if service == "" || service == cur.Stack.Primary {
		return serving(obs, cur), nil
	}
	return servingService(obs, cur, service), nil
}

// servingService is serving of named service svc other than the primary:
// its containers only, its canary's weight from its own line of nginx's
// status (Loaded.Weights).
func servingService(obs reconciler.Observed, cur reconciler.Desired, svc string) targets.Serving {
	obs = primaryObserved(obs, svc)
	apps, _ := cur.Stack.CanaryOf(svc)
	s := targets.Serving{CanaryRunning: len(apps) > 0}
	if obs.Loaded == nil {
		return s
	}
	weight := loadedWeight(obs.Loaded, cur.Stack, svc)
	narrowed := *obs.Loaded
	narrowed.Weight = weight // servingMode and servingCanary read the primary's field
	obs.Loaded = &narrowed
	s.Mode = servingMode(obs)
	if s.Mode == stack.TrackCanary {
		s.CanaryImage, s.CanaryWeight = imageOf(obs, obs.Loaded.Canary), weight
	}
	if c, ok := servingCanary(obs); ok {
		s.CanaryImage, s.CanaryRevision, s.CanaryLive = c.Image, c.Hash, true
	}
	s.StableImage = imageOf(obs, obs.Loaded.Stable)
	s.Traffic = obs.Loaded.Traffic
	s.Revision = obs.Loaded.Revision
	return s
}

// serving reads the route from the configuration nginx has loaded.
func serving(obs reconciler.Observed, cur reconciler.Desired) targets.Serving {
	obs = primaryObserved(obs, cur.Stack.Primary)
	s := targets.Serving{Mode: servingMode(obs), CanaryRunning: len(cur.Stack.Canary) > 0}
	if s.Mode == stack.TrackCanary {
		s.CanaryImage, s.CanaryWeight = imageOf(obs, obs.Loaded.Canary), obs.Loaded.Weight
	}
	if c, ok := servingCanary(obs); ok {
		s.CanaryImage, s.CanaryRevision, s.CanaryLive = c.Image, c.Hash, true
	}
	if obs.Loaded != nil {
		s.StableImage = imageOf(obs, obs.Loaded.Stable)
		s.Traffic = obs.Loaded.Traffic
		s.Revision = obs.Loaded.Revision
	}
	return s
}

func (t *Target) Decide(ctx context.Context, ch targets.Change) policy.Decision {
	return t.infraDecision(ctx, ch.(*change).m)
}

// Judge: a canary's revision is its config hash, which names one
// service's canary containers whoever the primary is: service is not needed.
func (t *Target) Judge(ctx context.Context, m *manifest.Manifest, _, revision string) (policy.Decision, targets.Figures) {
	return t.judge(ctx, m, revision)
}

func (t *Target) Watch(ctx context.Context, kick func()) { t.watchEngine(ctx, kick) }

// Teardown plans the removal of every container and the owned network of
// m's project: nginx first so that no request reaches an app container
// being removed, then the apps, then anything else labelled with the
// project, then the network.
func (t *Target) Teardown(ctx context.Context, m *manifest.Manifest, volumes bool) ([]targets.Removal, error) {
	eng := t.Engine
	cs, err := eng.ListContainers(ctx, m.Project, m.Network.Name)
	if err != nil {
		return nil, err
	}
	var plan []targets.Removal
	for _, role := range []string{stack.RoleNginx, stack.RoleApp, ""} {
		op := "remove-" + role
		if role == "" {
			op = "remove-other"
		}
		for _, c := range cs {
			known := c.Role == stack.RoleNginx || c.Role == stack.RoleApp
			if (role == "" && known) || (role != "" && c.Role != role) {
				continue // each container is removed in exactly one pass
			}
			id := c.ID
			r := targets.Removal{Op: op, Target: c.Name, Event: journal.EventContainerRemoved,
				Run: func(ctx context.Context) error { return eng.Remove(ctx, id, 10*time.Second) }}
			if role == stack.RoleNginx {
				r.After = failpoint.DownRemoved
			}
			plan = append(plan, r)
		}
	}
	n, err := eng.FindNetwork(ctx, m.Network.Name, m.Project)
	if err != nil {
		return plan, err
	}
	if n != nil && n.Owned {
		id := n.ID
		plan = append(plan, targets.Removal{Op: "remove-network", Target: n.Name, Event: journal.EventNetworkRemoved,
			Run: func(ctx context.Context) error { return eng.RemoveNetwork(ctx, id) }})
	}
	if !volumes {
		return plan, nil
	}
	// Every volume labelled with the project, not only those the manifest
	// names now: one a former version used holds data just the same.
	vs, err := eng.ListVolumes(ctx, m.Project)
	if err != nil {
		return plan, err
	}
	for _, v := range vs {
		name := v.Name
		plan = append(plan, targets.Removal{Op: "remove-volume", Target: name, Event: journal.EventVolumeRemoved,
			Run: func(ctx context.Context) error { return eng.RemoveVolume(ctx, name) }})
	}
	return plan, nil
}

func (t *Target) Forget() error { return t.Rec.ForgetApplied() }

// desired computes what to converge to from m and the recorded state s.
func desiredFor(m *manifest.Manifest, s targets.Decisions) (reconciler.Desired, error) {
	st := stack.FromManifest(m, s.Options(m))
	conf, err := render.Nginx(st)
	if err != nil {
		return reconciler.Desired{}, fmt.Errorf("render nginx config: %w", err)
	}
	rev, err := render.NginxRevision(conf)
	if err != nil {
		return reconciler.Desired{}, err
	}
	return reconciler.Desired{Stack: st, Conf: conf, Revision: rev}, nil
}

// unrejected is rec.Unrejected of d, its nginx configuration rendered
// again when a worker was left as it runs (the configuration's status
// lists every stable container, a worker's included).
func unrejected(rec *reconciler.Reconciler, d reconciler.Desired, obs reconciler.Observed) (reconciler.Desired, error) {
	p, ok := rec.Unrejected(d, obs)
	if !ok {
		return d, nil
	}
	conf, err := render.Nginx(p.Stack)
	if err != nil {
		return d, fmt.Errorf("render nginx config: %w", err)
	}
	if p.Revision, err = render.NginxRevision(conf); err != nil {
		return d, err
	}
	p.Conf = conf
	return p, nil
}

func (t *Target) desired(m *manifest.Manifest) (reconciler.Desired, error) {
	return t.desiredWith(m, t.Decisions())
}

// desiredWith is desiredFor of m with its files' digest (withFiles), and
// where the pulls' credentials are.
func (t *Target) desiredWith(m *manifest.Manifest, s targets.Decisions) (reconciler.Desired, error) {
	m, err := t.WithFiles(m)
	if err != nil {
		return reconciler.Desired{}, err
	}
	desired, err := desiredFor(m, s)
	if err != nil {
		return desired, err
	}
	desired.Registries, desired.Spec = t.Registries(m), m.Hash()
	return desired, nil
}

// writeArtifacts writes docker-compose.yml and nginx.conf beside the
// manifest, only when their bytes changed. It runs after a successful
// apply, so nginx.conf there is what nginx has loaded.
func (t *Target) writeArtifacts(desired reconciler.Desired) error {
	compose, err := render.Compose(desired.Stack)
	if err != nil {
		return err
	}
	// docker-compose.yml holds every env value: owner only. nginx.conf
	// holds none, but it is derived from the manifest and no one else
	// needs it: owner and the daemon's group.
	if _, err := atomicfile.WriteIfChanged(filepath.Join(t.Dir, "docker-compose.yml"), compose, 0o600); err != nil {
		return err
	}
	_, err = atomicfile.WriteIfChanged(filepath.Join(t.Dir, "nginx.conf"), desired.Conf, 0o640)
	return err
}

// servingMode is the mode nginx actually serves: canary when its loaded
// configuration sends a share of traffic to canary containers.
func servingMode(obs reconciler.Observed) string {
	if obs.Loaded == nil {
		return ""
	}
	if obs.Loaded.Weight > 0 && len(obs.Loaded.Canary) > 0 {
		return stack.TrackCanary
	}
	return stack.TrackStable
}

// primaryObserved is obs narrowed to the primary named service's app
// containers (and nginx), what nginx routes of it included: the one
// service the daemon's serving mode, images, canary and figures are
// about. The seed form ("") is returned as it is.
func primaryObserved(obs reconciler.Observed, service string) reconciler.Observed {
	if service == "" {
		return obs
	}
	keep := map[string]bool{}
	var cs []engine.Container
	for _, c := range obs.Containers {
		if c.Role != stack.RoleApp || c.Service == service {
			cs = append(cs, c)
			keep[c.Name] = true
		}
	}
	obs.Containers = cs
	if l := obs.Loaded; l != nil {
		narrowed := *l
		narrowed.Stable, narrowed.Canary = nil, nil
		for _, n := range l.Stable {
			if keep[n] {
				narrowed.Stable = append(narrowed.Stable, n)
			}
		}
		for _, n := range l.Canary {
			if keep[n] {
				narrowed.Canary = append(narrowed.Canary, n)
			}
		}
		obs.Loaded = &narrowed
	}
	return obs
}

// imageOf is the image label of the first observed container named in names.
func imageOf(obs reconciler.Observed, names []string) string {
	for _, n := range names {
		for _, c := range obs.Containers {
			if c.Name == n {
				return c.Image
			}
		}
	}
	return ""
}

// healWhileDenied restores what was applied while the change the manifest
// asks for is denied: a busy host must not keep a crashed replica or a
// removed front door down just because a change is waiting.
func (t *Target) healWhileDenied(ctx context.Context, desired reconciler.Desired, obs reconciler.Observed, progress reconciler.Progress) {
	restore, heal := reconciler.HealPlan(desired, obs, t.Rec.LiveConfig())
	if heal.Empty() || heal.Blocked != "" {
		return
	}
	t.Log.Info("change denied; restoring what was applied", zap.String("ops", heal.String()))
	if err := t.Rec.ApplyGated(ctx, restore, heal, nil, progress); err != nil {
		t.Log.Warn("restoring what was applied failed", zap.Error(err))
	}
}

// servingCanary is a canary container nginx routes traffic to.
func servingCanary(obs reconciler.Observed) (c struct{ Image, Hash string }, ok bool) {
	if servingMode(obs) != stack.TrackCanary {
		return c, false
	}
	for _, n := range obs.Loaded.Canary {
		for _, oc := range obs.Containers {
			if oc.Name == n && oc.Running() {
				c.Image, c.Hash = oc.Image, oc.Hash
				return c, true
			}
		}
	}
	return c, false
}
