package reconciler

import (
	"fmt"
	"slices"
	"strings"
)

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
