// Package kubetarget converges a manifest on a Kubernetes namespace: the
// desired objects come from pkg/render/kubernetes, what exists is read
// from the API (only objects carrying the project's swiftdeploy labels),
// and the plan is a list of server-side applies and deletes, each shown
// before it runs. Whether an object differs is read from the informers'
// cache, never asked of the server per call: the hash of what was last
// applied (an annotation) says whether the manifest changed it, and the
// fields the desired object sets, compared with the live ones, say
// whether someone changed them (compare.go). Fields the server defaults
// are never compared, so they never look like drift; a hand edit of a
// field swiftdeploy sets always does.
//
// Order matters as it does on Docker: a Deployment rolls out before the
// HTTPRoute sends traffic to it, and a canary's Service and Deployment are
// deleted only once the route no longer names them.
package kubetarget

import (
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// DefaultProgressDeadline is a Deployment's progressDeadlineSeconds when
// the daemon sets none: a rollout that makes no progress for this long is
// reported as failed (the old pods keep serving: maxUnavailable is 0).
const DefaultProgressDeadline = 120 * time.Second

// Op is one change of the plan.
type Op struct {
	Kind string
	Ref  kube.Ref
	Body []byte // the object to apply
	// Why says what changes ("create", "image a → b", "spec drifted").
	Why string
	// Force: a drift revert (see Compute).
	Force bool
	// Create: the object was not observed as the project's (read by
	// name before it is applied: CheckCreates).
	Create bool
	// Gated: the op starts pods (a Deployment created or changed), so the
	// infrastructure policy must allow the plan first. Routing traffic
	// back and deleting never need its permission.
	Gated bool
}

func (o Op) String() string {
	s := o.Kind + " " + o.Ref.Resource.Kind + " " + o.Ref.Name
	if o.Why != "" {
		s += " (" + o.Why + ")"
	}
	return s
}

// Plan is what a converge does now, and what it waits for.
type Plan struct {
	Ops []Op
	// Waiting lists what is held back until the cluster catches up (a
	// route waiting for its Deployment to roll out).
	Waiting []string
}

// Empty: nothing to apply or delete now (it may still be waiting).
func (p Plan) Empty() bool { return len(p.Ops) == 0 }

// Gated reports whether the infrastructure policy must allow the plan.
func (p Plan) Gated() bool {
	for _, o := range p.Ops {
		if o.Gated {
			return true
		}
	}
	return false
}

// Lines is the plan as text: the ops, then what waits.
func (p Plan) Lines() []string {
	var out []string
	for _, o := range p.Ops {
		out = append(out, o.String())
	}
	for _, w := range p.Waiting {
		out = append(out, "wait: "+w)
	}
	return out
}

// Compute plans the converge of obs to desired, from what is observed
// alone (no call to the API server: status and diff plan on every call).
// An object is applied when the hash of what swiftdeploy would apply
// differs from the one it last applied (AnnotationApplied), or when a
// field swiftdeploy sets no longer holds the value it set (drift: reverted
// by a forced apply this op names). Fields the server defaults or others
// add are not compared: only what the desired object sets is.
func Compute(desired Desired, obs Observed) (Plan, error) {
	var plan Plan
	desired = ForObserved(desired, obs)
	plan.Ops = secretOps(desired, obs)
	want := map[string]bool{}
	for k := range desired.Keep {
		want[k] = true // not deleted either
	}
	pendingDeploy := map[string]bool{} // Deployments this plan changes (or holds back)
	over := overweighted(desired, obs) // canaries held until their route lowers their share
	applyingSets := map[string]bool{}  // StatefulSets this plan applies
	var routeOps []Op
	for _, obj := range desired.Objects {
		ref := RefOf(obj)
		want[ref.Resource.Kind+"/"+ref.Name] = true
		body, err := k8srender.JSON(obj)
		if err != nil {
			return plan, fmt.Errorf("encode %s: %w", ref, err)
		}
		why, force, changed := "create", false, true
		live, exists := liveObject(obs, ref)
		if exists {
			if !appliedBySwiftdeploy(live) {
				return plan, fmt.Errorf("%s exists and was not applied by swiftdeploy (field managers: %s), so it is not taken over", ref, strings.Join(managers(live, false), ", "))
			}
			// A manifest change applies the new values (a field someone
			// else took meanwhile conflicts: ForceAfterConflict). Without
			// one, a field swiftdeploy set that no longer holds its value
			// is drift.
			changed = liveAnnotation(live, AnnotationApplied) != obj.GetAnnotations()[AnnotationApplied]
			path, drifted := "", false
			if !changed {
				var err error
				if path, drifted, err = drift(obj, live); err != nil {
					return plan, fmt.Errorf("compare %s: %w", ref, err)
				}
			}
			if !changed && !drifted {
				continue
			}
			why = describeChange(obs, obj)
			if drifted {
				// Someone changed a field swiftdeploy sets (an edit is an
				// update: it takes the field's ownership, so a plain apply
				// would conflict): reverted by a forced apply.
				force = true
				by := managers(live, true)
				if len(by) == 0 {
					by = []string{"unknown field manager"}
				}
				why += "; revert drift: " + path + " changed by " + strings.Join(by, ", ")
			}
		}
		op := Op{Kind: OpApply, Ref: ref, Body: body, Why: why, Force: force, Create: !exists}
		switch v := obj.(type) {
		case *appsv1.Deployment:
			if r := over[v.Name]; r != "" && changed {
				// Not pending: what runs now (rolled out) may take the
				// route's lowered share meanwhile.
				plan.Waiting = append(plan.Waiting, op.String()+" once HTTPRoute "+r+" no longer sends it more than its weight")
				continue
			}
			pendingDeploy[v.Name] = true
			// New pods of a service that depends_on an accessory start
			// once the accessory is ready (depends.go); a drift revert
			// restores what ran and does not wait. The StatefulSets come
			// first in desired.Objects (start order), so applyingSets
			// is complete here.
			if changed {
				if w := holdFor(desired, obs, v, applyingSets); w != "" {
					plan.Waiting = append(plan.Waiting, op.String()+" "+w)
					continue
				}
			}
			op.Gated = true
			plan.Ops = append(plan.Ops, op)
		case *appsv1.StatefulSet:
			// It starts pods as a Deployment does (stop-first: its pod
			// is replaced, not joined). Its claims are its controller's.
			op.Gated = true
			applyingSets[v.Name] = true
			plan.Ops = append(plan.Ops, op)
		case *corev1.PersistentVolumeClaim:
			// A new claim takes storage: gated, as a Docker volume is.
			// Claims are never deleted by a plan (only down --volumes).
			op.Gated = !exists
			plan.Ops = append(plan.Ops, op)
		case *gatewayv1.HTTPRoute:
			if w := routeBlockers(v, desired, obs, pendingDeploy); len(w) > 0 {
				plan.Waiting = append(plan.Waiting, w...)
				continue
			}
			routeOps = append(routeOps, op)
		default:
			plan.Ops = append(plan.Ops, op)
		}
	}
	plan.Ops = append(plan.Ops, routeOps...)
	routeApplied := len(routeOps) > 0
	// Deletes: what the project owns and the manifest no longer names,
	// once no route in force still sends it traffic.
	var dels []Op
	for name := range obs.Routes {
		if !want["HTTPRoute/"+name] {
			dels = append(dels, Op{Kind: OpDelete, Ref: kube.Ref{Resource: kube.HTTPRoutes, Namespace: desired.Namespace, Name: name}, Why: "not in the manifest"})
		}
	}
	for name := range obs.Services {
		if want["Service/"+name] {
			continue
		}
		if r := routedBy(obs, name); r != "" && !routeApplied {
			plan.Waiting = append(plan.Waiting, fmt.Sprintf("delete Service %s once HTTPRoute %s no longer sends it traffic", name, r))
			continue
		}
		dels = append(dels, Op{Kind: OpDelete, Ref: kube.Ref{Resource: kube.Services, Namespace: desired.Namespace, Name: name}, Why: "not desired (gone from the manifest, or a canary promoted or dropped)"})
	}
	for name, dep := range obs.Deployments {
		if want["Deployment/"+name] {
			continue
		}
		if r := routedVia(obs, dep, want); r != "" && !routeApplied {
			plan.Waiting = append(plan.Waiting, fmt.Sprintf("delete Deployment %s once HTTPRoute %s no longer sends it traffic", name, r))
			continue
		}
		dels = append(dels, Op{Kind: OpDelete, Ref: kube.Ref{Resource: kube.Deployments, Namespace: desired.Namespace, Name: name}, Why: "not desired (gone from the manifest, or a canary promoted or dropped)"})
	}
	for name := range obs.StatefulSets {
		// An accessory taken out of the manifest: its claims stay (only
		// down --volumes deletes them), as a Docker volume does.
		if !want["StatefulSet/"+name] {
			dels = append(dels, Op{Kind: OpDelete, Ref: kube.Ref{Resource: kube.StatefulSets, Namespace: desired.Namespace, Name: name}, Why: "not in the manifest"})
		}
	}
	if s := obs.PullSecret; s != nil && !want["Secret/"+s.Name] {
		dels = append(dels, Op{Kind: OpDelete, Ref: kube.Ref{Resource: kube.Secrets, Namespace: desired.Namespace, Name: s.Name}, Why: "no registry credentials in use"})
	}
	sort.Slice(dels, func(i, j int) bool { return dels[i].String() < dels[j].String() })
	plan.Ops = append(plan.Ops, dels...)
	plan.Ops = append(plan.Ops, secretDeletes(desired, obs)...)
	return plan, nil
}

// routeBlockers are the reasons the desired route must wait: a track it
// sends traffic to whose Deployment has not rolled out the desired
// template (changed by this plan, or still rolling).
func routeBlockers(r *gatewayv1.HTTPRoute, desired Desired, obs Observed, pending map[string]bool) []string {
	var out []string
	for _, rule := range r.Spec.Rules {
		for _, b := range rule.BackendRefs {
			if b.Weight != nil && *b.Weight == 0 {
				continue
			}
			name := workloadOf(desired, string(b.Name))
			if pending[name] {
				out = append(out, fmt.Sprintf("HTTPRoute %s waits for Deployment %s to roll out", r.Name, name))
				continue
			}
			d, ok := obs.Deployments[name]
			if !ok {
				out = append(out, fmt.Sprintf("HTTPRoute %s waits for Deployment %s to exist", r.Name, name))
				continue
			}
			if done, why := RolledOut(d); !done {
				out = append(out, fmt.Sprintf("HTTPRoute %s waits for Deployment %s: %s", r.Name, name, why))
			}
		}
	}
	return out
}

// routedBy names a live route that sends service a share of traffic.
func routedBy(obs Observed, service string) string {
	for _, r := range obs.Routes {
		for _, rule := range r.Spec.Rules {
			for _, b := range rule.BackendRefs {
				if string(b.Name) == service && (b.Weight == nil || *b.Weight > 0) {
					return r.Name
				}
			}
		}
	}
	return ""
}

// RolledOut reports whether a Deployment's controller has seen its
// latest spec and every replica runs it and is available, with no old
// replica left; otherwise why not.
func RolledOut(d appsv1.Deployment) (bool, string) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	if c := ProgressFailed(d); c != "" {
		return false, c
	}
	switch {
	case st.ObservedGeneration < d.Generation:
		return false, fmt.Sprintf("generation %d not yet observed (at %d)", d.Generation, st.ObservedGeneration)
	case st.UpdatedReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want)
	case st.Replicas > st.UpdatedReplicas:
		return false, fmt.Sprintf("%d old replicas still running", st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas available", st.AvailableReplicas, want)
	}
	return true, ""
}

// ProgressFailed is the message of a Deployment whose rollout exceeded
// its progress deadline ("" when it has not). The condition counts only
// once the controller has seen the current spec: right after an apply,
// the condition of the previous, failed rollout is still there.
func ProgressFailed(d appsv1.Deployment) string {
	if d.Status.ObservedGeneration < d.Generation {
		return ""
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return "progress deadline exceeded: " + c.Message
		}
	}
	return ""
}

// describeChange says, for people, what an apply of obj changes.
func describeChange(obs Observed, obj k8srender.Object) string {
	switch v := obj.(type) {
	case *appsv1.Deployment:
		live := obs.Deployments[v.Name]
		var parts []string
		if li, di := ImageOf(live), ImageOf(*v); li != di {
			parts = append(parts, "image "+li+" → "+di)
		}
		if lr, dr := replicas(live), replicas(*v); v.Spec.Replicas != nil && lr != dr {
			parts = append(parts, fmt.Sprintf("replicas %d → %d", lr, dr))
		}
		if len(parts) == 0 {
			return "spec differs from the manifest"
		}
		return strings.Join(parts, ", ")
	case *appsv1.StatefulSet:
		if li, di := StatefulSetImage(obs.StatefulSets[v.Name]), StatefulSetImage(*v); li != di {
			return "image " + li + " → " + di
		}
	case *gatewayv1.HTTPRoute:
		live := obs.Routes[v.Name]
		lw, dw := WeightsText(Weights(live)), WeightsText(Weights(*v))
		if lw != dw {
			return "weights " + lw + " → " + dw
		}
	case *corev1.Secret:
		// Never what the credentials are: the plan is shown by diff and
		// status and journaled.
		return "registry credentials changed"
	}
	return "spec differs from the manifest"
}

func replicas(d appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// ImageOf is the app container's image of a Deployment.
func ImageOf(d appsv1.Deployment) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "app" {
			return c.Image
		}
	}
	if len(d.Spec.Template.Spec.Containers) > 0 {
		return d.Spec.Template.Spec.Containers[0].Image
	}
	return ""
}

// Weights are a route's backend weights by Service name (the rule that
// has backends).
func Weights(r gatewayv1.HTTPRoute) map[string]int {
	w := map[string]int{}
	for _, rule := range r.Spec.Rules {
		if rule.Name != nil && k8srender.IsMatchRule(string(*rule.Name)) {
			continue // matching requests only, not a share of the split
		}
		for _, b := range rule.BackendRefs {
			n := 1 // the Gateway API's default weight
			if b.Weight != nil {
				n = int(*b.Weight)
			}
			w[string(b.Name)] += n
		}
	}
	return w
}

// WeightsText writes weights as "a=90 b=10", sorted by name.
func WeightsText(w map[string]int) string {
	names := make([]string, 0, len(w))
	for n := range w {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%d", n, w[n]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
