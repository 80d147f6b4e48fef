package controller

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/failpoint"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/secretfiles"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/target"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// dockerTarget is the Docker host: app containers behind one nginx, whose
// loaded configuration is the route (its revision is what serves).
type dockerTarget struct{ d *Daemon }

// dockerChange is a plan of the reconciler.
type dockerChange struct {
	m       *manifest.Manifest
	desired reconciler.Desired
	obs     reconciler.Observed
	plan    reconciler.Plan
}

func (c *dockerChange) Revision() string { return c.desired.Revision }
func (c *dockerChange) Blocked() string  { return c.plan.Blocked }
func (c *dockerChange) Gated() bool      { return c.plan.Gated() }
func (c *dockerChange) Empty() bool      { return c.plan.Empty() }
func (c *dockerChange) Lines() []string {
	out := make([]string, 0, len(c.plan.Ops))
	for _, op := range c.plan.Ops {
		out = append(out, op.String())
	}
	return out
}

func (c *dockerChange) Serving() target.Serving { return dockerServing(c.obs, c.desired) }

func (t dockerTarget) Name() string { return "docker" }

// Heal restores the applied record's containers and nginx config.
func (t dockerTarget) Heal(ctx context.Context, ch target.Change, progress reconciler.Progress) {
	c := ch.(*dockerChange)
	t.d.healWhileDenied(ctx, c.desired, c.obs, progress)
}

// Rolled: the reconciler's apply waits for health and for nginx to load
// the revision, so what it applied has rolled out when it returns.
func (t dockerTarget) Rolled(context.Context, *manifest.Manifest, target.Decisions) (target.RolloutStatus, error) {
	return target.RolloutStatus{Done: true}, nil
}

func (t dockerTarget) Await() (poll, deadline time.Duration) {
	return time.Second, t.d.cfg.HealthTimeout
}

func (t dockerTarget) Change(ctx context.Context, m *manifest.Manifest, s target.Decisions) (target.Change, error) {
	desired, err := t.d.desiredWith(m, s)
	if err != nil {
		return nil, err
	}
	end := trace.Begin(ctx, "observe", "")
	obs, err := t.d.rec.Observe(ctx, desired)
	end()
	if err != nil {
		t.d.setEngineErr(err)
		return nil, err
	}
	end = trace.Begin(ctx, "plan", "")
	plan := reconciler.Compute(desired, obs)
	end(fmt.Sprintf("%d ops", len(plan.Ops)))
	return &dockerChange{m: m, desired: desired, obs: obs, plan: plan}, nil
}

// Apply runs the reconciler's plan; it always waits for health (h.Wait is
// what it does anyway) and calls h.Served when nginx loads the revision.
func (t dockerTarget) Apply(ctx context.Context, ch target.Change, h target.Hooks) ([]string, error) {
	c := ch.(*dockerChange)
	gate := func(ctx context.Context, _ reconciler.Plan) reconciler.Decision { return h.Gate(ctx) }
	err := t.d.rec.ApplyServed(ctx, c.desired, c.plan, gate, h.Served, h.Progress)
	if err == nil {
		if werr := t.d.writeArtifacts(c.desired); werr != nil {
			t.d.log.Error("write generated files", zap.Error(werr))
		}
	}
	return c.Lines(), err
}

// Serves: nginx has loaded the change's configuration revision.
func (t dockerTarget) Serves(ctx context.Context, ch target.Change) (target.Verdict, target.Serving, error) {
	c := ch.(*dockerChange)
	after, err := t.d.rec.Observe(ctx, c.desired)
	if err != nil {
		t.d.setEngineErr(err)
		return target.ServesUnknown, target.Serving{}, err
	}
	sv := dockerServing(after, c.desired)
	switch {
	case after.Loaded != nil && after.Loaded.Revision == c.desired.Revision:
		return target.ServesYes, sv, nil
	case after.Loaded == nil && after.LoadedErr != "":
		return target.ServesUnknown, sv, nil
	}
	return target.ServesNo, sv, nil
}

func (t dockerTarget) Serving(ctx context.Context, m *manifest.Manifest) (target.Serving, error) {
	cur, err := t.d.desired(m)
	if err != nil {
		return target.Serving{}, err
	}
	obs, err := t.d.rec.Observe(ctx, cur)
	if err != nil {
		t.d.setEngineErr(err)
		return target.Serving{}, err
	}
	return dockerServing(obs, cur), nil
}

// dockerServing reads the route from the configuration nginx has loaded.
func dockerServing(obs reconciler.Observed, cur reconciler.Desired) target.Serving {
	obs = primaryObserved(obs, cur.Stack.Primary)
	s := target.Serving{Mode: servingMode(obs), CanaryRunning: len(cur.Stack.Canary) > 0}
	if s.Mode == stack.TrackCanary {
		s.CanaryImage, s.CanaryWeight = imageOf(obs, obs.Loaded.Canary), obs.Loaded.Weight
	}
	if c, ok := servingCanary(obs); ok {
		s.CanaryImage, s.CanaryRevision, s.CanaryLive = c.Image, c.Hash, true
	}
	if obs.Loaded != nil {
		s.StableImage = imageOf(obs, obs.Loaded.Stable)
		s.Traffic = obs.Loaded.Traffic
	}
	return s
}

func (t dockerTarget) Decide(ctx context.Context, ch target.Change) policy.Decision {
	return t.d.infraDecision(ctx, ch.(*dockerChange).m)
}

func (t dockerTarget) Judge(ctx context.Context, m *manifest.Manifest, revision string) (policy.Decision, target.Figures) {
	return t.d.judge(ctx, m, revision)
}

func (t dockerTarget) Watch(ctx context.Context, _ func()) { t.d.watchEngine(ctx) }

// Teardown plans the removal of every container and the owned network of
// m's project: nginx first so that no request reaches an app container
// being removed, then the apps, then anything else labelled with the
// project, then the network.
func (t dockerTarget) Teardown(ctx context.Context, m *manifest.Manifest, volumes bool) ([]target.Removal, error) {
	eng := t.d.eng
	cs, err := eng.ListContainers(ctx, m.Project, m.Network.Name)
	if err != nil {
		return nil, err
	}
	var plan []target.Removal
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
			r := target.Removal{Op: op, Target: c.Name, Event: journal.EventContainerRemoved,
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
		plan = append(plan, target.Removal{Op: "remove-network", Target: n.Name, Event: journal.EventNetworkRemoved,
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
		plan = append(plan, target.Removal{Op: "remove-volume", Target: name, Event: journal.EventVolumeRemoved,
			Run: func(ctx context.Context) error { return eng.RemoveVolume(ctx, name) }})
	}
	return plan, nil
}

func (t dockerTarget) Forget() error { return t.d.rec.ForgetApplied() }

// desired computes what to converge to from m and the recorded state s.
func desiredFor(m *manifest.Manifest, s target.Decisions) (reconciler.Desired, error) {
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

func (d *Daemon) desired(m *manifest.Manifest) (reconciler.Desired, error) {
	d.mu.Lock()
	s := d.state
	d.mu.Unlock()
	return d.desiredWith(m, s)
}

// desiredWith is desiredFor of m with its files' digest (withFiles), and
// where the pulls' credentials are.
func (d *Daemon) desiredWith(m *manifest.Manifest, s target.Decisions) (reconciler.Desired, error) {
	m, err := d.withFiles(m)
	if err != nil {
		return reconciler.Desired{}, err
	}
	desired, err := desiredFor(m, s)
	if err != nil {
		return desired, err
	}
	desired.Registries, desired.Spec = d.registrySource(m), m.Hash()
	return desired, nil
}

// withFiles returns m with each service's FilesDigest set from what its
// env files and secrets hold now (m itself is shared, and left alone): a
// changed secret file is a changed service. The digest's key lives in the
// state directory, 0600.
func (d *Daemon) withFiles(m *manifest.Manifest) (*manifest.Manifest, error) {
	uses := func(s *manifest.Services) bool { return len(s.EnvFile) > 0 || len(s.Secrets) > 0 }
	any := uses(&m.Services)
	for _, s := range m.Named {
		any = any || uses(s)
	}
	if !any {
		return m, nil
	}
	key, err := secretfiles.Key(d.stateDir)
	if err != nil {
		return nil, err
	}
	c := *m
	if uses(&m.Services) {
		if c.Services.FilesDigest, err = secretfiles.Digest("services", d.dir, key, &m.Services); err != nil {
			return nil, err
		}
	}
	if m.IsNamed() {
		// Each service's own files, on copies: m is shared.
		c.Named = make(map[string]*manifest.Services, len(m.Named))
		for name, s := range m.Named {
			cp := *s
			if uses(s) {
				if cp.FilesDigest, err = secretfiles.Digest("services."+name, d.dir, key, s); err != nil {
					return nil, err
				}
			}
			c.Named[name] = &cp
		}
	}
	return &c, nil
}

// writeArtifacts writes docker-compose.yml and nginx.conf beside the
// manifest, only when their bytes changed. It runs after a successful
// apply, so nginx.conf there is what nginx has loaded.
func (d *Daemon) writeArtifacts(desired reconciler.Desired) error {
	compose, err := render.Compose(desired.Stack)
	if err != nil {
		return err
	}
	// docker-compose.yml holds every env value: owner only. nginx.conf
	// holds none, but it is derived from the manifest and no one else
	// needs it: owner and the daemon's group.
	if _, err := atomicfile.WriteIfChanged(filepath.Join(d.dir, "docker-compose.yml"), compose, 0o600); err != nil {
		return err
	}
	_, err = atomicfile.WriteIfChanged(filepath.Join(d.dir, "nginx.conf"), desired.Conf, 0o640)
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
func (d *Daemon) healWhileDenied(ctx context.Context, desired reconciler.Desired, obs reconciler.Observed, progress reconciler.Progress) {
	restore, heal := reconciler.HealPlan(desired, obs, d.rec.LiveConfig())
	if heal.Empty() || heal.Blocked != "" {
		return
	}
	d.log.Info("change denied; restoring what was applied", zap.String("ops", heal.String()))
	if err := d.rec.ApplyGated(ctx, restore, heal, nil, progress); err != nil {
		d.log.Warn("restoring what was applied failed", zap.Error(err))
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
