// Package reconciler converges the Docker Engine towards the stack a
// manifest describes, in three steps: observe what runs, plan (a pure
// function of desired × observed) and apply the plan.
package reconciler

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/registryauth"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Desired is what a reconcile converges to: the stack and the nginx
// configuration rendered for it.
type Desired struct {
	Stack stack.Stack
	Conf  []byte
	// Revision identifies Conf; nginx reports the revision it has loaded.
	Revision string
	// Registries says where each registry's pull credentials are.
	Registries registryauth.Source
	// Spec is the manifest's hash: a registry's denial of a pull lasts
	// until it (or the credentials) change.
	Spec string
}

// Loaded is what the running nginx reports it has loaded, read back from
// nginx itself (not from the file the daemon wrote): the revision of its
// configuration, the canary weight and the upstream containers per track.
type Loaded struct {
	Revision string
	Weight   int
	Stable   []string
	Canary   []string
	// Cert is the id of the certificate nginx serves on its HTTPS port
	// ("" without one).
	Cert string
	// Traffic is the hold on traffic nginx applies (swiftctl traffic).
	Traffic stack.Traffic
}

// Applied records the last desired state whose plan was applied in full.
// It tells a heal (restoring what was deployed) from a change.
type Applied struct {
	// Project is the project applied: a daemon restarted on a manifest
	// that renames it must refuse, not deploy a second stack beside it.
	Project  string   `json:"project,omitempty"`
	Apps     []string `json:"apps"`     // container names (they encode spec hash and replica)
	Nginx    string   `json:"nginx"`    // nginx spec hash
	Revision string   `json:"revision"` // nginx config revision
	Weight   int      `json:"weight"`
	Stable   []string `json:"stable,omitempty"`
	Canary   []string `json:"canary,omitempty"`
	// Stack is the stack applied, so that a heal while a change is denied
	// restores the applied containers (their image, env, limits), not the
	// denied change's. Absent in records written before it existed.
	Stack *stack.Stack `json:"stack,omitempty"`
}

// AppliedFor is the record Apply writes once desired has been applied.
func AppliedFor(d Desired) *Applied {
	st := d.Stack
	a := &Applied{Project: d.Stack.Project, Nginx: d.Stack.Nginx.Hash, Revision: d.Revision, Weight: d.Stack.CanaryWeight, Stack: &st}
	for _, app := range d.Stack.Stable {
		a.Apps = append(a.Apps, app.Name)
		a.Stable = append(a.Stable, app.Name)
	}
	for _, app := range d.Stack.Canary {
		a.Apps = append(a.Apps, app.Name)
		a.Canary = append(a.Canary, app.Name)
	}
	return a
}

// Observed is the actual state of one project.
type Observed struct {
	Network    *engine.Network
	Containers []engine.Container
	// Volumes are the desired named volumes that exist.
	Volumes []engine.Volume
	// Missing lists the desired images not present locally.
	Missing []string
	// Loaded is what the running nginx has loaded; nil when no nginx
	// answers (none runs, or its status socket cannot be read).
	Loaded *Loaded
	// LoadedErr says why Loaded is nil while an nginx container runs.
	LoadedErr string
	// Applied is the last state applied in full; nil before the first.
	Applied *Applied
	// Mounts identifies the host directories nginx must have mounted now
	// (see stack.LabelMounts); "" when unknown.
	Mounts string
}

// Nginx returns the running nginx container, if any.
func (o Observed) Nginx() *engine.Container {
	for i, c := range o.Containers {
		if c.Role == stack.RoleNginx && c.Running() {
			return &o.Containers[i]
		}
	}
	return nil
}

// OpKind names an operation.
type OpKind string

// Operations, in the order a plan runs them.
const (
	OpPullImage     OpKind = "pull-image"     // fetch a missing image
	OpCreateNetwork OpKind = "create-network" //
	OpCreateVolume  OpKind = "create-volume"  // a named volume of the project (kept until down --volumes)
	OpRemoveDead    OpKind = "remove-dead"    // exited/dead owned container
	OpStartApp      OpKind = "start-app"      // create and start an app container
	OpWaitHealthy   OpKind = "wait-healthy"   // HTTP health check of app containers
	OpCheckNginx    OpKind = "check-nginx"    // nginx -t of the config with a new nginx image
	OpRemoveNginx   OpKind = "remove-nginx"   // replaced or duplicate nginx
	OpStartNginx    OpKind = "start-nginx"    // (re)create nginx with the new config
	OpReloadNginx   OpKind = "reload-nginx"   // nginx -t, then graceful reload, then read back
	OpRemoveApp     OpKind = "remove-app"     // drain then stop an obsolete app container
)

// Op is one step of a plan, with its cause.
type Op struct {
	Kind   OpKind
	Target string // container, network or image name
	Cause  string
	// App is the container to start (OpStartApp).
	App *stack.App
	// ID of the container to remove.
	ID string
	// Targets lists the containers to health-check (OpWaitHealthy).
	Targets []string
	// Accessory marks the health check of an accessory's new containers,
	// which what depends on it waits for (the named form): a heal keeps
	// it in its place.
	Accessory bool
	// Gated marks an operation that changes what runs (or uses disk for a
	// pull): the plan passes the infrastructure gate before any operation
	// runs. Restoring what was already deployed is never gated.
	Gated bool
}

func (o Op) String() string {
	s := fmt.Sprintf("%-14s %-40s %s", o.Kind, o.Target, o.Cause)
	if o.Gated {
		s += " [gated]"
	}
	return s
}

// Plan is an ordered list of operations. An empty plan means converged.
type Plan struct {
	Ops []Op
	// Blocked, when set, explains why the plan cannot proceed at all.
	Blocked string
	// Partial marks a plan that restores only part of what was applied
	// (HealPlan): applying it must not record a new applied state.
	Partial bool
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

// Lines returns one line per operation (or the blocking reason).
func (p Plan) Lines() []string {
	if p.Blocked != "" {
		return []string{"blocked: " + p.Blocked}
	}
	out := make([]string, 0, len(p.Ops))
	for _, op := range p.Ops {
		out = append(out, op.String())
	}
	return out
}

// Empty reports whether nothing needs doing.
func (p Plan) Empty() bool { return len(p.Ops) == 0 && p.Blocked == "" }

// Gated reports whether the plan changes what runs, so that the
// infrastructure gate must allow it before its first operation.
func (p Plan) Gated() bool {
	for _, op := range p.Ops {
		if op.Gated {
			return true
		}
	}
	return false
}

// Compute plans the operations that take observed to desired. It is a
// pure function.
func Compute(d Desired, obs Observed) Plan {
	desired := d.Stack
	var p Plan
	add := func(op Op) { p.Ops = append(p.Ops, op) }

	switch n := obs.Network; {
	case n == nil:
	case !n.Owned:
		p.Blocked = fmt.Sprintf("network %s exists but is not owned by project %s: remove it or choose another network.name", n.Name, desired.Project)
		return p
	case n.Driver != desired.Network.DriverType:
		p.Blocked = fmt.Sprintf("network %s uses driver %s but the manifest asks for %s: run `swiftctl down` to recreate it", n.Name, n.Driver, desired.Network.DriverType)
		return p
	}

	// Pulls come first and are gated: they fill the disk the gate protects.
	for _, ref := range obs.Missing {
		add(Op{Kind: OpPullImage, Target: ref, Cause: "image not present locally", Gated: true})
	}
	if obs.Network == nil {
		add(Op{Kind: OpCreateNetwork, Target: desired.Network.Name, Cause: "network missing", Gated: obs.Applied == nil})
	}
	// Named volumes: created once, then only used. One of the same name
	// that the project does not own is someone else's data: never mounted.
	have := map[string]bool{}
	for _, v := range obs.Volumes {
		if !v.Owned {
			p.Ops = nil
			p.Blocked = fmt.Sprintf("volume %s exists but is not owned by project %s: rename the volume in the manifest or remove it", v.Name, desired.Project)
			return p
		}
		have[v.Name] = true
	}
	for _, name := range desired.Volumes() {
		if !have[name] {
			add(Op{Kind: OpCreateVolume, Target: name, Cause: "volume missing", Gated: true})
		}
	}

	applied := map[string]bool{}
	if obs.Applied != nil {
		for _, n := range obs.Applied.Apps {
			applied[n] = true
		}
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
	for _, a := range desired.Apps() {
		wanted[a.Name] = true
	}
	var started []string
	// startOps adds the operations that start what is missing of as.
	startOps := func(as []stack.App) (out []string) {
		for _, a := range as {
			a := a
			c, ok := byName[a.Name]
			switch {
			case ok && c.Running() && c.Hash == a.Hash:
				continue
			case ok:
				// Crashed or stopped, or left half-made by a daemon that died:
				// a heal only if it was part of the applied state.
				add(Op{Kind: OpRemoveDead, Target: c.Name, ID: c.ID, Cause: "container " + c.State + ", recreating"})
				add(Op{Kind: OpStartApp, Target: a.Name, App: &a, Cause: "recreate " + c.State + " container", Gated: !applied[a.Name]})
			case applied[a.Name]:
				add(Op{Kind: OpStartApp, Target: a.Name, App: &a, Cause: "restore removed container"})
			default:
				add(Op{Kind: OpStartApp, Target: a.Name, App: &a, Cause: startCause(a, apps), Gated: true})
			}
			out = append(out, a.Name)
		}
		return out
	}
	// Accessories (the named form) go first, one service after the other
	// in start order, each stop-first: the old containers of a replaced
	// accessory stop before the new ones start (two databases must not
	// share a data directory), and the new ones run, and listen, before
	// anything that depends on them starts.
	removed := map[string]bool{}
	var others []stack.App
	for _, svc := range desired.Services {
		if svc.Kind != manifest.KindAccessory {
			others = append(others, svc.Stable...)
			continue
		}
		var replaced []engine.Container
		for _, c := range apps {
			if c.Service == svc.Name && !wanted[c.Name] && c.Running() && !sameSpec(c, svc.Stable) {
				replaced = append(replaced, c)
			}
		}
		if missing(svc.Stable, byName) {
			for _, c := range replaced {
				add(Op{Kind: OpRemoveApp, Target: c.Name, ID: c.ID, Cause: "accessory " + svc.Name + " replaced stop-first: " + removeCause(c, desired)})
				removed[c.Name] = true
			}
		}
		if s := startOps(svc.Stable); len(s) > 0 {
			add(Op{Kind: OpWaitHealthy, Target: fmt.Sprintf("%d %s container(s)", len(s), svc.Name), Targets: s, Cause: "accessory " + svc.Name + " runs before what depends on it starts", Accessory: true})
			started = append(started, s...)
		}
	}
	if desired.Services == nil {
		others = desired.Apps()
	} else {
		others = append(others, desired.Canary...) // a web service's
	}
	var accessoryStarted []string
	accessoryStarted, started = started, append(started, startOps(others)...)
	var obsolete []engine.Container
	for _, c := range apps {
		if wanted[c.Name] || removed[c.Name] {
			continue
		}
		if !c.Running() {
			add(Op{Kind: OpRemoveDead, Target: c.Name, ID: c.ID, Cause: "container " + c.State + " and no longer wanted"})
			continue
		}
		obsolete = append(obsolete, c)
	}

	// nginx: one running container with the desired spec hash, whose loaded
	// configuration is the desired revision.
	var keep *engine.Container
	var replaced []engine.Container
	for i, c := range nginxes {
		if keep == nil && c.Name == desired.Nginx.Name && c.Running() && c.Hash == desired.Nginx.Hash && !staleMounts(c, obs) {
			keep = &nginxes[i]
			continue
		}
		replaced = append(replaced, c)
	}
	appsChanged := len(started) > 0 || len(obsolete) > 0
	needNginx := keep == nil
	loadedRev := ""
	if obs.Loaded != nil {
		loadedRev = obs.Loaded.Revision
	}
	needReload := !needNginx && (appsChanged || loadedRev != d.Revision)
	// Health-check what is about to receive traffic it does not receive
	// now: what this plan starts and what nginx does not route to yet (a
	// container a crashed run left behind). What already serves is left
	// alone: a flaky one must not block an unrelated change.
	routed := map[string]bool{}
	if obs.Loaded != nil {
		for _, n := range append(append([]string(nil), obs.Loaded.Stable...), obs.Loaded.Canary...) {
			routed[n] = true
		}
	}
	var check []string
	isStarted := map[string]bool{}
	for _, n := range started {
		isStarted[n] = true
	}
	checked := map[string]bool{} // accessories, checked as they started
	for _, n := range accessoryStarted {
		checked[n] = true
	}
	if len(started) > 0 || needNginx || needReload {
		for _, a := range desired.Apps() {
			if !checked[a.Name] && (isStarted[a.Name] || !routed[a.Name]) {
				check = append(check, a.Name)
			}
		}
	}
	if len(check) > 0 {
		add(Op{Kind: OpWaitHealthy, Target: fmt.Sprintf("%d app container(s)", len(check)), Targets: check, Cause: "only healthy containers receive traffic"})
	}
	restoring := obs.Applied != nil && obs.Applied.Nginx == desired.Nginx.Hash && obs.Applied.Revision == d.Revision
	var live *engine.Container // an nginx that serves and is being replaced
	for i, c := range replaced {
		if c.Running() && c.Name == desired.Nginx.Name {
			live = &replaced[i]
		}
	}
	if needNginx && live != nil {
		// Keep the old nginx serving until the new image has checked the
		// configuration.
		add(Op{Kind: OpCheckNginx, Target: desired.Nginx.Image, Cause: "new nginx spec (" + nginxRemoveCause(*live, desired.Nginx, obs) + "): nginx -t before the old one stops", Gated: !restoring})
	}
	// An nginx being replaced must free its name and port before the new
	// one starts.
	for _, c := range replaced {
		add(Op{Kind: OpRemoveNginx, Target: c.Name, ID: c.ID, Cause: nginxRemoveCause(c, desired.Nginx, obs)})
	}
	switch {
	case needNginx:
		cause := "nginx missing"
		if len(replaced) > 0 {
			cause = "replace nginx (" + nginxRemoveCause(replaced[0], desired.Nginx, obs) + ")"
		}
		add(Op{Kind: OpStartNginx, Target: desired.Nginx.Name, Cause: cause, Gated: !restoring})
	case needReload:
		cause := "configuration changed"
		switch {
		case loadedRev == "" && obs.LoadedErr != "":
			cause = "loaded configuration unknown (" + obs.LoadedErr + ")"
		case loadedRev == d.Revision:
			cause = "upstream containers changed"
		case certChanged(d, obs):
			cause = "serve certificate " + d.Stack.Nginx.TLS.Cert
		case loadedRev != "" && obs.Applied != nil && loadedRev != obs.Applied.Revision:
			cause = "nginx serves revision " + loadedRev + ", not " + d.Revision
		}
		add(Op{Kind: OpReloadNginx, Target: keep.Name, Cause: cause, Gated: reloadGated(d, obs)})
	}

	// Obsolete app containers go last, after nginx stopped sending to them.
	sort.Slice(obsolete, func(i, j int) bool { return obsolete[i].Name < obsolete[j].Name })
	for _, c := range obsolete {
		add(Op{Kind: OpRemoveApp, Target: c.Name, ID: c.ID, Cause: removeCause(c, desired)})
	}
	return p
}

// certChanged: the desired configuration serves another certificate than
// the one nginx serves (or, nginx's view unknown, the one applied).
func certChanged(d Desired, obs Observed) bool {
	want := ""
	if t := d.Stack.Nginx.TLS; t != nil {
		want = t.Cert
	}
	if obs.Loaded != nil {
		return obs.Loaded.Cert != want
	}
	if a := obs.Applied; a != nil && a.Stack != nil {
		have := ""
		if t := a.Stack.Nginx.TLS; t != nil {
			have = t.Cert
		}
		return have != want
	}
	return want != ""
}

// reloadGated: a reload that restores the applied configuration, or only
// withdraws traffic (fewer upstreams, a lower canary weight: a rollback or
// a scale-down), is never gated; one that sends traffic somewhere new is.
func reloadGated(d Desired, obs Observed) bool {
	a := obs.Applied
	if a == nil {
		return true
	}
	if a.Revision == d.Revision {
		return false
	}
	// A new certificate is a change of what clients get, like any other.
	if certChanged(d, obs) {
		return true
	}
	for _, app := range d.Stack.Stable {
		if !slices.Contains(a.Stable, app.Name) {
			return true
		}
	}
	for _, app := range d.Stack.Canary {
		if !slices.Contains(a.Canary, app.Name) {
			return true
		}
	}
	return d.Stack.CanaryWeight > a.Weight
}

// sameSpec: a container with c's spec hash is wanted (c is only a replica
// too many, left for the scale-down at the end).
func sameSpec(c engine.Container, want []stack.App) bool {
	for _, a := range want {
		if a.Hash == c.Hash {
			return true
		}
	}
	return false
}

// missing reports whether a container of as does not run with its spec.
func missing(as []stack.App, byName map[string]engine.Container) bool {
	for _, a := range as {
		if c, ok := byName[a.Name]; !ok || !c.Running() || c.Hash != a.Hash {
			return true
		}
	}
	return false
}

func startCause(d stack.App, observed []engine.Container) string {
	var sameTrack []engine.Container
	for _, c := range observed {
		if c.Track == d.Track && c.Service == d.Service && c.Running() {
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

func removeCause(c engine.Container, desired stack.Stack) string {
	var track []stack.App
	switch {
	case c.Service != "" && c.Track == stack.TrackCanary:
		if c.Service == desired.CanaryService {
			track = desired.Canary
		}
	case c.Service != "":
		svc := desired.Service(c.Service)
		if svc == nil {
			return "service " + c.Service + " no longer in the manifest"
		}
		track = svc.Stable
	case c.Track == stack.TrackCanary:
		track = desired.Canary
	default:
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

// staleMounts reports whether nginx mounts host directories that are no
// longer the ones at their paths (removed and recreated). A container
// without the label (made before it existed) is taken as current, and so
// is one whose directories are not all there (unknown: a "-"): replacing
// it would only recreate what someone removed.
func staleMounts(c engine.Container, obs Observed) bool {
	return c.Mounts != "" && obs.Mounts != "" && !strings.Contains(obs.Mounts, "-") && c.Mounts != obs.Mounts
}

func nginxRemoveCause(c engine.Container, d stack.Nginx, obs Observed) string {
	switch {
	case c.Name != d.Name:
		return "unexpected nginx container"
	case c.Hash == d.Hash && c.Running() && staleMounts(c, obs):
		return "its config and status directories were removed or replaced on the host"
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

// HealPlan is what may run while the gate denies the change desired asks
// for: restoring what was applied, and nothing else. It plans against the
// configuration nginx last loaded (live, whose revision is the applied
// one) and keeps only the operations that are not gated: crashed or
// removed containers of the applied state, a removed nginx with its last
// config, the reload that lets nginx see restarted containers. It is empty
// when there is nothing applied to restore. It returns the plan with the
// state it restores: the applied stack where the record has it.
func HealPlan(d Desired, obs Observed, live []byte) (Desired, Plan) {
	a := obs.Applied
	st := d.Stack
	if a != nil && a.Stack != nil {
		st = *a.Stack
	}
	if a == nil || live == nil || st.Nginx.Hash != a.Nginx {
		return Desired{}, Plan{Partial: true}
	}
	// The pull credentials are the current manifest's: the applied
	// images are on the same registries.
	restore := Desired{Stack: st, Conf: live, Revision: a.Revision, Registries: d.Registries, Spec: d.Spec}
	full := Compute(restore, obs)
	p := Plan{Partial: true, Blocked: full.Blocked}
	var started []string
	var reload *Op
	lost := obs.Loaded == nil || obs.Loaded.Revision != a.Revision
	for _, op := range full.Ops {
		if op.Gated {
			continue
		}
		switch op.Kind {
		case OpRemoveDead, OpCheckNginx, OpRemoveNginx, OpStartNginx:
			// A crashed nginx (or one whose mounts went) is removed before
			// its replacement starts under the same name and port.
			p.Ops = append(p.Ops, op)
		case OpReloadNginx:
			op := op
			reload = &op
		case OpStartApp:
			p.Ops = append(p.Ops, op)
			started = append(started, op.Target)
		case OpWaitHealthy:
			// An accessory restored runs before what depends on it is
			// restored, as in a full plan; the rest are checked together
			// below.
			if !op.Accessory {
				continue
			}
			var restored []string
			for _, n := range op.Targets {
				if slices.Contains(started, n) {
					restored = append(restored, n)
				}
			}
			if len(restored) > 0 {
				op.Targets, op.Target = restored, fmt.Sprintf("%d %s", len(restored), strings.SplitN(op.Target, " ", 2)[1])
				p.Ops = append(p.Ops, op)
				started = slices.DeleteFunc(started, func(n string) bool { return slices.Contains(restored, n) })
			}
		}
	}
	// Reload only for a restored container (nginx resolves names at
	// reload) or a config nginx lost, never for the denied change.
	if reload != nil && (len(started) > 0 || lost) {
		p.Ops = append(p.Ops, *reload)
	}
	if len(p.Ops) == 0 {
		return restore, p
	}
	// Health-check only what is restored, before nginx sees it.
	var out []Op
	for _, op := range p.Ops {
		if len(started) > 0 && (op.Kind == OpStartNginx || op.Kind == OpReloadNginx) {
			out = append(out, Op{Kind: OpWaitHealthy, Target: fmt.Sprintf("%d app container(s)", len(started)), Targets: started, Cause: "restored containers must answer before nginx routes to them"})
			started = nil
		}
		out = append(out, op)
	}
	if len(started) > 0 {
		out = append(out, Op{Kind: OpWaitHealthy, Target: fmt.Sprintf("%d app container(s)", len(started)), Targets: started, Cause: "restored containers must answer"})
	}
	p.Ops = out
	return restore, p
}
