package reconciler

import (
	"fmt"
	"strings"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

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
	OpJudgeWorker   OpKind = "judge-worker"   // a worker's new revision judged on its own metrics (undone if it fails)
	OpCheckNginx    OpKind = "check-nginx"    // nginx -t of the config with a new nginx image
	OpRemoveNginx   OpKind = "remove-nginx"   // replaced or duplicate nginx
	OpStartNginx    OpKind = "start-nginx"    // (re)create nginx with the new config
	OpReloadNginx   OpKind = "reload-nginx"   // nginx -t, then graceful reload, then read back
	OpRemoveApp     OpKind = "remove-app"     // drain then stop an obsolete app container
)

// OpChaos delivers a chaos request (or its recovery) to one app container:
// the operation of `swiftctl chaos`'s own plan, never of a reconcile's.
// Injecting chaos is gated (the chaos policy); recovering is not.
const OpChaos OpKind = "chaos"

// Op is one step of a plan, with its cause.
type Op struct {
	Kind   OpKind
	Target string // container, network or image name
	Cause  string
	// App is the container to start (OpStartApp).
	App *stack.App
	// ID of the container to remove.
	ID string
	// Targets lists the containers to health-check (OpWaitHealthy), or
	// to judge (OpJudgeWorker, whose Target is the service).
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
