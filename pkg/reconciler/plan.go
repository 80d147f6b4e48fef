// Package reconciler converges the Docker Engine towards the stack a
// manifest describes, in three steps: observe what runs, plan (a pure
// function of desired × observed) and apply the plan.
package reconciler

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Observed is the actual state of one project.
type Observed struct {
	Network    *engine.Network
	Containers []engine.Container
	// NginxConf is the configuration nginx currently serves (nil if none).
	NginxConf []byte
}

// OpKind names an operation.
type OpKind string

// Operations, in the order a plan runs them.
const (
	OpCreateNetwork OpKind = "create-network"
	OpRemoveDead    OpKind = "remove-dead"  // exited/dead owned container
	OpStartApp      OpKind = "start-app"    // create and start an app container
	OpWaitHealthy   OpKind = "wait-healthy" // HTTP health check of app containers
	OpStartNginx    OpKind = "start-nginx"  // (re)create nginx with the new config
	OpReloadNginx   OpKind = "reload-nginx" // nginx -t, then graceful reload
	OpRemoveNginx   OpKind = "remove-nginx" // replaced or duplicate nginx
	OpRemoveApp     OpKind = "remove-app"   // drain then stop an obsolete app container
)

// Op is one step of a plan, with its cause.
type Op struct {
	Kind   OpKind
	Target string // container or network name
	Cause  string
	// App is the container to start (OpStartApp).
	App *stack.App
	// ID of the container to remove.
	ID string
	// Targets lists the containers to health-check (OpWaitHealthy).
	Targets []string
	// Heal marks an operation that restores an already-deployed spec (a
	// crashed or removed container) rather than changing what runs.
	Heal bool
}

func (o Op) String() string {
	return fmt.Sprintf("%-14s %-40s %s", o.Kind, o.Target, o.Cause)
}

// Plan is an ordered list of operations. An empty plan means converged.
type Plan struct {
	Ops []Op
	// Blocked, when set, explains why the plan cannot proceed at all.
	Blocked string
}

// String prints one line per operation.
func (p Plan) String() string {
	if p.Blocked != "" {
		return "blocked: " + p.Blocked + "\n"
	}
	if len(p.Ops) == 0 {
		return "converged: nothing to do\n"
	}
	var b strings.Builder
	for _, op := range p.Ops {
		b.WriteString(op.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Empty reports whether nothing needs doing.
func (p Plan) Empty() bool { return len(p.Ops) == 0 && p.Blocked == "" }

// Changes reports whether the plan changes what runs (as opposed to only
// healing crashed containers); such plans pass the infrastructure gate.
func (p Plan) Changes() bool {
	for _, op := range p.Ops {
		if (op.Kind == OpStartApp || op.Kind == OpStartNginx) && !op.Heal {
			return true
		}
	}
	return false
}

// Compute plans the operations that take observed to desired. conf is the
// nginx configuration rendered for desired. It is a pure function.
func Compute(desired stack.Stack, obs Observed, conf []byte) Plan {
	var p Plan
	add := func(op Op) { p.Ops = append(p.Ops, op) }

	switch n := obs.Network; {
	case n == nil:
		add(Op{Kind: OpCreateNetwork, Target: desired.Network.Name, Cause: "network missing"})
	case !n.Owned:
		p.Blocked = fmt.Sprintf("network %s exists but is not owned by project %s: remove it or choose another network.name", n.Name, desired.Project)
		return p
	case n.Driver != desired.Network.DriverType:
		p.Blocked = fmt.Sprintf("network %s uses driver %s but the manifest asks for %s: run `swiftctl down` to recreate it", n.Name, n.Driver, desired.Network.DriverType)
		return p
	}

	var apps, nginxes []engine.Container
	for _, c := range obs.Containers {
		switch c.Role {
		case stack.RoleApp:
			apps = append(apps, c)
		case stack.RoleNginx:
			nginxes = append(nginxes, c)
		}
	}

	// App containers: start what is missing, keep what matches.
	byName := map[string]engine.Container{}
	for _, c := range apps {
		byName[c.Name] = c
	}
	wanted := map[string]bool{}
	var started, healthTargets []string
	for _, d := range desired.Apps() {
		d := d
		wanted[d.Name] = true
		healthTargets = append(healthTargets, d.Name)
		c, ok := byName[d.Name]
		switch {
		case ok && c.Running() && c.Hash == d.Hash:
			continue
		case ok:
			add(Op{Kind: OpRemoveDead, Target: c.Name, ID: c.ID, Cause: "container " + c.State + ", recreating", Heal: true})
			add(Op{Kind: OpStartApp, Target: d.Name, App: &d, Cause: "recreate " + c.State + " container", Heal: true})
		default:
			add(Op{Kind: OpStartApp, Target: d.Name, App: &d, Cause: startCause(d, apps), Heal: wasDeployed(d, apps)})
		}
		started = append(started, d.Name)
	}
	var obsolete []engine.Container
	for _, c := range apps {
		if wanted[c.Name] {
			continue
		}
		if !c.Running() {
			add(Op{Kind: OpRemoveDead, Target: c.Name, ID: c.ID, Cause: "container " + c.State + " and no longer wanted"})
			continue
		}
		obsolete = append(obsolete, c)
	}

	// nginx: one container with the desired hash, serving conf.
	var keep *engine.Container
	var nginxOps []Op
	for i, c := range nginxes {
		switch {
		case keep == nil && c.Name == desired.Nginx.Name && c.Running() && c.Hash == desired.Nginx.Hash:
			keep = &nginxes[i]
		default:
			nginxOps = append(nginxOps, Op{Kind: OpRemoveNginx, Target: c.Name, ID: c.ID, Cause: nginxRemoveCause(c, desired.Nginx)})
		}
	}
	appsChanged := len(started) > 0 || len(obsolete) > 0
	needNginx := keep == nil
	needReload := !needNginx && (appsChanged || !bytes.Equal(obs.NginxConf, conf))
	if len(started) > 0 || needNginx || needReload {
		add(Op{Kind: OpWaitHealthy, Target: fmt.Sprintf("%d app container(s)", len(healthTargets)), Targets: healthTargets, Cause: "only healthy containers receive traffic"})
	}
	// An nginx being replaced (e.g. a port change) must free its name and
	// port before the new one starts.
	p.Ops = append(p.Ops, nginxOps...)
	switch {
	case needNginx:
		cause := "nginx missing"
		if len(nginxes) > 0 {
			cause = "replace nginx (" + nginxRemoveCause(nginxes[0], desired.Nginx) + ")"
		}
		add(Op{Kind: OpStartNginx, Target: desired.Nginx.Name, Cause: cause, Heal: len(nginxes) > 0 && nginxes[0].Hash == desired.Nginx.Hash})
	case needReload:
		cause := "configuration changed"
		if appsChanged {
			cause = "upstream containers changed"
		}
		add(Op{Kind: OpReloadNginx, Target: keep.Name, Cause: cause})
	}

	// Obsolete app containers go last, after nginx stopped sending to them.
	sort.Slice(obsolete, func(i, j int) bool { return obsolete[i].Name < obsolete[j].Name })
	for _, c := range obsolete {
		add(Op{Kind: OpRemoveApp, Target: c.Name, ID: c.ID, Cause: removeCause(c, desired)})
	}
	return p
}

func startCause(d stack.App, observed []engine.Container) string {
	var sameTrack []engine.Container
	for _, c := range observed {
		if c.Track == d.Track && c.Running() {
			sameTrack = append(sameTrack, c)
		}
	}
	for _, c := range sameTrack {
		if c.Hash != d.Hash {
			if c.Image != d.Image {
				return fmt.Sprintf("new %s version: image %s -> %s", d.Track, c.Image, d.Image)
			}
			return fmt.Sprintf("%s spec changed (config-hash %s -> %s)", d.Track, short(c.Hash), short(d.Hash))
		}
	}
	if len(sameTrack) > 0 {
		return fmt.Sprintf("scale %s up: replica %d missing", d.Track, d.Replica)
	}
	if d.Track == stack.TrackCanary {
		return "canary " + d.Image + " declared"
	}
	return "replica " + fmt.Sprint(d.Replica) + " missing"
}

// wasDeployed reports whether the same spec already runs in other replicas,
// i.e. starting d heals rather than changes the deployment.
func wasDeployed(d stack.App, observed []engine.Container) bool {
	for _, c := range observed {
		if c.Hash == d.Hash && c.Running() {
			return true
		}
	}
	return false
}

func removeCause(c engine.Container, desired stack.Stack) string {
	var track []stack.App
	if c.Track == stack.TrackCanary {
		track = desired.Canary
	} else {
		track = desired.Stable
	}
	if len(track) == 0 {
		return "canary no longer wanted"
	}
	if track[0].Hash != c.Hash {
		return "superseded by " + short(track[0].Hash)
	}
	return fmt.Sprintf("scale %s down to %d", c.Track, len(track))
}

func nginxRemoveCause(c engine.Container, d stack.Nginx) string {
	switch {
	case c.Name != d.Name:
		return "unexpected nginx container"
	case c.Hash != d.Hash:
		if c.Image != d.Image {
			return fmt.Sprintf("image %s -> %s", c.Image, d.Image)
		}
		return "port or spec changed"
	default:
		return "container " + c.State
	}
}

func short(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}
