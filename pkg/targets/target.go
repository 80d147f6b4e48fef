// Package target is what the controller (pkg/controller) asks of a
// platform it converges: the Target interface and the types its methods
// speak. The control plane (the loop, the transactions, the analysis
// walk, status, diff, validate) is written once over it; each platform is
// its own package that implements it: the Docker host (pkg/targets/docker)
// and a Kubernetes namespace (pkg/targets/kubernetes). A target imports
// this package, never the controller.
package targets

import (
	"context"
	"fmt"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Decisions are the controller's recorded decisions (a promotion, a
// rollback, a canary's step, a traffic hold) that refine a manifest: what
// a target renders for m is m under Options(m).
type Decisions interface {
	Options(m *manifest.Manifest) stack.Options
}

// Target is one platform the controller converges: the Docker host
// (containers behind nginx, pkg/targets/docker) or a Kubernetes namespace
// (Deployments behind an HTTPRoute, pkg/targets/kubernetes). The control plane
// (the loop, the transactions, the analysis walk) is written once over it;
// a target only observes, plans, applies, says what serves now (the commit
// predicate) and removes everything.
type Target interface {
	// Name is "docker" or "kubernetes", for logs.
	Name() string
	// Accept refuses a manifest the target cannot run, when the daemon
	// reads it (a *manifest.ValidationError naming the fields): such a
	// manifest never becomes the one in force, which would make every
	// change fail to plan, the abort of a failing canary included.
	Accept(m *manifest.Manifest) error
	// Change is what would run for m under the recorded decisions s, and
	// the plan from what runs now to it. It changes nothing.
	Change(ctx context.Context, m *manifest.Manifest, s Decisions) (Change, error)
	// Apply runs ch's plan. h.Gate runs before the first operation that
	// adds capacity or traffic (never before one that restores what was
	// serving); h.Served runs once, the moment the route serves ch's
	// revision. With h.Wait it converges until ch has rolled out (or its
	// progress deadline passed); without, it applies what can be applied
	// now. It returns the operations that ran, even on error.
	Apply(ctx context.Context, ch Change, h Hooks) ([]string, error)
	// Serves is the commit predicate: does the route in force serve ch's
	// revision? Unknown when the route cannot be read. It also returns
	// what serves now.
	Serves(ctx context.Context, ch Change) (Verdict, Serving, error)
	// Serving is what the route in force sends traffic to now.
	Serving(ctx context.Context, m *manifest.Manifest) (Serving, error)
	// ServingOf is Serving of named web service service's own route and
	// canary ("" or the primary's name: Serving), for the canaries of
	// services other than the primary.
	ServingOf(ctx context.Context, m *manifest.Manifest, service string) (Serving, error)
	// Decide is the infrastructure (Docker) or cluster (Kubernetes)
	// policy on the target's facts for ch, evaluated fresh.
	Decide(ctx context.Context, ch Change) policy.Decision
	// Judge is canary safety on the figures of the canary revision of
	// named web service service ("" or the primary's name: the primary's,
	// as ServingOf), from the app's and nginx's windows (Docker) or
	// Prometheus (Kubernetes). The service is explicit because a
	// revision need not tell whose canary it is: a rollout's stored
	// revision outlives a change of the primary.
	Judge(ctx context.Context, m *manifest.Manifest, service, revision string) (policy.Decision, Figures)
	// Teardown is the plan that removes everything the project owns, the
	// route first, in the order it runs. It changes nothing: down runs it
	// operation by operation, journaling each as it runs, and diff shows
	// it (`swiftctl diff --down`, or while a down is unfinished).
	// With volumes it also removes the project's named volumes (`down
	// --volumes`), last: without it they are kept, data and all.
	Teardown(ctx context.Context, m *manifest.Manifest, volumes bool) ([]Removal, error)
	// Forget drops what the target tracks of what it applied (Docker's
	// applied record, a Kubernetes rollout awaited): after down, nothing
	// is restored and no outcome is journaled for what was removed.
	Forget() error
	// Heal restores what was applied while ch is denied (a crashed replica
	// must not stay down because a change waits); never gated.
	Heal(ctx context.Context, ch Change, progress reconciler.Progress)
	// Rolled is the rollout of what m under s asks for: done, failed (its
	// progress deadline passed), or still rolling and why.
	Rolled(ctx context.Context, m *manifest.Manifest, s Decisions) (RolloutStatus, error)
	// Await is how often, and how long at most, a deploy looks at its
	// rollout.
	Await() (poll, deadline time.Duration)
	// Report fills the target's part of status from a fresh look: what
	// runs, what serves, what is pending, the live figures and policies.
	Report(ctx context.Context, m *manifest.Manifest, s Decisions, out *api.Status)
	// Check is the target's part of validate: it changes nothing.
	Check(ctx context.Context, m *manifest.Manifest, s Decisions) []api.Check
	// Watch runs until ctx ends, calling kick (a coalesced hint that
	// carries no state) when something the project owns changed.
	Watch(ctx context.Context, kick func())
}

// Change is a computed plan: the revision it serves and its operations.
type Change interface {
	// Revision identifies what serves once the change is in force (the
	// nginx configuration's revision; the route's and Deployments' spec).
	Revision() string
	// Blocked, when not empty, says why the change cannot be applied.
	Blocked() string
	Gated() bool
	Empty() bool
	Lines() []string
	// Serving is what served when the change was computed.
	Serving() Serving
}

// RolloutStatus is one look at a rollout (three outcomes, as Flagger's
// readiness: done, failed, or waiting for a reason).
type RolloutStatus struct {
	Done    bool
	Failed  string
	Waiting string
	// Denied, with Failed, is a registry's refusal of the rollout's
	// image: a lasting denial, shown in status until it is lifted.
	Denied *reconciler.PullDeniedError
}

// Hooks are the controller's part in an apply.
type Hooks struct {
	Gate     func(ctx context.Context) reconciler.Decision
	Served   func()
	Progress reconciler.Progress
	// Wait: converge until the change has rolled out.
	Wait bool
	// Deploy: a reconcile of the manifest (not a transaction), whose
	// rollout outcome the target reports once it is observed.
	Deploy bool
}

// Verdict is the commit predicate's answer.
type Verdict int

const (
	ServesNo Verdict = iota
	ServesYes
	ServesUnknown
)

// Serving is what the route in force sends traffic to.
type Serving struct {
	// Mode is stable or canary; "" when nothing serves (or it cannot be
	// read).
	Mode           string
	StableImage    string
	CanaryImage    string
	CanaryRevision string // the canary's revision id (its config hash)
	CanaryWeight   int
	// CanaryLive: the route sends traffic to a canary that runs (rolled
	// out): one that can be promoted.
	CanaryLive bool
	// CanaryRunning: a canary workload exists, routed or not.
	CanaryRunning bool
	// Traffic is the operator's hold on traffic the route applies
	// (swiftctl traffic; Docker only).
	Traffic stack.Traffic
	// Revision is the revision the route in force serves (Docker: the
	// nginx configuration loaded), as Change.Revision names it; "" when
	// the target cannot name it (Kubernetes). A transition interrupted
	// by a crash took effect if it is its own revision, whatever the
	// manifest says now.
	Revision string
}

// Removal is one operation of a teardown plan.
type Removal struct {
	Op     string // e.g. remove-nginx, remove-app, remove-network, delete
	Target string // the container, network or object it removes
	// Event is what the journal records once it ran (container_removed,
	// network_removed, object_deleted).
	Event string
	// After is the failpoint hit once it ran, if any (the crash suite's
	// down/removed: nginx gone, apps still there).
	After string
	// Run removes it; the controller runs a plan's removals in order.
	Run func(ctx context.Context) error
}

func (r Removal) String() string { return fmt.Sprintf("%-14s %s", r.Op, r.Target) }

// WorkloadReader is a target whose commit predicate (Serves) does not
// cover every service's workload: Kubernetes, whose route sends no
// traffic to a worker's Deployment or an accessory's StatefulSet, and
// which cannot name the revision that serves (Serving.Revision), so that
// a settled transition's route is checked against the manifest read now.
// A change to one service's workload alone (a rollback of a service
// other than the primary to an earlier release) commits on WorkloadRuns
// instead. Docker is not one: nginx's loaded revision names every stable
// container (their names carry the spec hash), a worker's and an
// accessory's too.
type WorkloadReader interface {
	// WorkloadRuns reports whether service's own workload in m's project
	// has rolled out image (every replica at a template naming it). It is
	// read by the workload's object name, as a Deployment or a
	// StatefulSet, whichever exists: whatever m says of the service now
	// (removed, renamed away, another kind), what runs in the cluster is
	// what the rollback did.
	WorkloadRuns(ctx context.Context, m *manifest.Manifest, service, image string) (bool, error)
}

// LogReader is a target that reads its replicas' logs (swiftctl logs).
// pkg/logs decides which replicas to open, from when, and how to merge
// and follow them: a target only lists a service's replicas and opens
// one's log. Both targets are LogReaders; it
// is its own interface so that a target (or a test's) need not be.
type LogReader interface {
	// LogReplicas lists the replicas of q's service and track whose log
	// can be read, stopped ones too.
	LogReplicas(ctx context.Context, m *manifest.Manifest, q api.LogQuery) ([]Replica, error)
	// OpenLog opens r's log. An error wrapping ErrReplicaGone means r no
	// longer exists (a deploy replaced it): it is left out.
	OpenLog(ctx context.Context, m *manifest.Manifest, r Replica, o engine.LogOptions) (engine.LogStream, error)
}

// Replica is one container (Docker) or pod (Kubernetes) of a service.
type Replica struct {
	// ID tells a replacement under the same name from the replica it
	// replaces: the container's ID, the pod's UID.
	ID      string
	Name    string
	Running bool
}
