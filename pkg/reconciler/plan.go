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
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

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
	// A worker with metrics of its own that this plan rolls starts and is
	// judged before any other service's new containers (after the
	// accessories, which it may need): a failing judgement undoes its
	// start and leaves nothing else half-rolled (another service's new
	// containers started and never served).
	judged := map[string]Op{}
	for _, svc := range desired.Services {
		if op, ok := judgeOp(svc, apps, wanted); ok {
			judged[svc.Name] = op
		}
	}
	for _, svc := range desired.Services {
		if _, ok := judged[svc.Name]; ok {
			continue
		}
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
		others = append(others, desired.Canaries()...) // web services'
	}
	var judgedApps []string // judged, so checked already
	for _, svc := range desired.Services {
		op, ok := judged[svc.Name]
		if !ok {
			continue
		}
		if s := startOps(svc.Stable); len(s) > 0 {
			add(Op{Kind: OpWaitHealthy, Target: fmt.Sprintf("%d %s container(s)", len(s), svc.Name), Targets: s, Cause: "worker " + svc.Name + "'s new containers run before they are judged"})
			started = append(started, s...)
		}
		add(op)
		for _, a := range svc.Stable {
			judgedApps = append(judgedApps, a.Name)
		}
	}
	var accessoryStarted []string // and judged workers': checked already
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
	for _, n := range append(accessoryStarted, judgedApps...) {
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
	for _, app := range d.Stack.Canaries() {
		if !slices.Contains(a.Canary, app.Name) {
			return true
		}
	}
	// Any service's canary, the primary's included, taking more of that
	// service's traffic than applied. Compared service by service: the
	// primary may have changed with the edit (its canary removed, another
	// service's becoming the primary's), and the new primary's weight
	// against the old primary's would let a raise through ungated.
	for _, svc := range d.Stack.CanaryServices() {
		_, want := d.Stack.CanaryOf(svc)
		if want > appliedWeight(a, svc, d.Stack.CanaryService) {
			return true
		}
	}
	return false
}

// appliedWeight is the weight named service svc's canary took in the
// applied record a; 0 when it ran none. A record without its stack
// (written before it existed) knows only the primary's weight.
func appliedWeight(a *Applied, svc, primary string) int {
	if a.Stack == nil {
		if svc == primary {
			return a.Weight
		}
		return 0
	}
	_, w := a.Stack.CanaryOf(svc)
	return w
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

// staleMounts reports whether nginx mounts host directories that are no
// longer the ones at their paths (removed and recreated). A container
// without the label (made before it existed) is taken as current, and so
// is one whose directories are not all there (unknown: a "-"): replacing
// it would only recreate what someone removed.
func staleMounts(c engine.Container, obs Observed) bool {
	return c.Mounts != "" && obs.Mounts != "" && !strings.Contains(obs.Mounts, "-") && c.Mounts != obs.Mounts
}

// judgeOp is the judgement of worker svc's new containers, when svc has
// metrics of its own (stack.Judge) and containers of another spec still
// run: a roll, which can be undone. The new containers are judged whether
// this plan starts them or a daemon that died mid-roll did (the old ones
// still running say the roll is not over): a crash never lets a revision
// through unjudged. A first start has nothing to go back to, a scale-up
// or a restart of the same spec nothing new to judge.
func judgeOp(svc stack.Service, apps []engine.Container, wanted map[string]bool) (Op, bool) {
	if svc.Judge == nil {
		return Op{}, false
	}
	var targets []string
	for _, a := range svc.Stable {
		targets = append(targets, a.Name)
	}
	rolled := false
	for _, c := range apps {
		if c.Service == svc.Name && c.Running() && !wanted[c.Name] && !sameSpec(c, svc.Stable) {
			rolled = true
		}
	}
	if len(targets) == 0 || !rolled {
		return Op{}, false
	}
	return Op{Kind: OpJudgeWorker, Target: svc.Name, Targets: targets,
		Cause: fmt.Sprintf("worker %s's new revision (%s) judged on its own metrics over %s before its old containers go", svc.Name, svc.Stable[0].Image, svc.Judge.Window)}, true
}
