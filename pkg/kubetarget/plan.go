// Package kubetarget converges a manifest on a Kubernetes namespace: the
// desired objects come from pkg/render/kubernetes, what exists is read
// from the API (only objects carrying the project's swiftdeploy labels),
// and the plan is a list of server-side applies and deletes, each shown
// before it runs. Whether an object differs is the API server's own
// answer: a dry-run apply of the desired object is compared with the live
// one, so defaulted fields never look like drift and a hand edit of a
// field swiftdeploy sets always does.
//
// Order matters as it does on Docker: a Deployment rolls out before the
// HTTPRoute sends traffic to it, and a canary's Service and Deployment are
// deleted only once the route no longer names them.
package kubetarget

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// DefaultProgressDeadline is a Deployment's progressDeadlineSeconds when
// the daemon sets none: a rollout that makes no progress for this long is
// reported as failed (the old pods keep serving: maxUnavailable is 0).
const DefaultProgressDeadline = 120 * time.Second

// Selector selects every object the daemon owns for project: both the
// project label and the managed-by label must be there, so an object
// someone else labelled with the project alone is never touched.
func Selector(project string) string {
	return k8srender.LabelProject + "=" + project + "," + k8srender.LabelManagedBy + "=" + k8srender.ManagedBy
}

// Desired is what the namespace should hold for a manifest.
type Desired struct {
	Project   string
	Namespace string
	Stack     stack.Stack
	// Objects are the Deployments, Services and the HTTPRoute, in apply
	// order. The RBAC the renderer also writes is not applied by the
	// daemon: it cannot grant itself permissions.
	Objects []k8srender.Object
	// Secrets are the project's Secrets with their content (secrets.go),
	// applied before the objects and kept out of Revision: their content
	// reaches the pods' template only as the keyed digest in the config
	// hash.
	Secrets []*corev1.Secret
}

// DesiredFor renders m refined by o (a promotion, a rollback) for ns;
// pullSecret, when set, is the .dockerconfigjson of the image pull Secret
// (k8srender.Options.PullSecret).
func DesiredFor(m *manifest.Manifest, o stack.Options, ns, gateway string, deadline time.Duration, pullSecret []byte) (Desired, error) {
	objs, err := k8srender.Kubernetes(m, k8srender.Options{Namespace: ns, Gateway: gateway, Stack: o, PullSecret: pullSecret})
	if err != nil {
		return Desired{}, err
	}
	if deadline <= 0 {
		deadline = DefaultProgressDeadline
	}
	d := Desired{Project: m.Project, Namespace: ns, Stack: stack.FromManifest(m, o)}
	// Claims first: the pods a Deployment starts mount them.
	for _, obj := range objs {
		if v, ok := obj.(*corev1.PersistentVolumeClaim); ok {
			d.Objects = append(d.Objects, v)
		}
	}
	for _, obj := range objs {
		switch v := obj.(type) {
		case *appsv1.Deployment:
			secs := int32(deadline / time.Second)
			v.Spec.ProgressDeadlineSeconds = &secs
			d.Objects = append(d.Objects, v)
		case *corev1.Service, *gatewayv1.HTTPRoute, *corev1.Secret:
			d.Objects = append(d.Objects, v)
		}
	}
	return d, nil
}

// RefOf names a rendered object for the API.
func RefOf(o k8srender.Object) kube.Ref {
	var r kube.Resource
	switch o.(type) {
	case *appsv1.Deployment:
		r = kube.Deployments
	case *corev1.Service:
		r = kube.Services
	case *gatewayv1.HTTPRoute:
		r = kube.HTTPRoutes
	case *corev1.Secret:
		r = kube.Secrets
	case *corev1.PersistentVolumeClaim:
		r = kube.Claims
	}
	return kube.Ref{Resource: r, Namespace: o.GetNamespace(), Name: o.GetName()}
}

// Observed is what the namespace holds of the project, by name.
type Observed struct {
	Deployments map[string]appsv1.Deployment
	Services    map[string]corev1.Service
	Routes      map[string]gatewayv1.HTTPRoute
	Pods        []corev1.Pod
	// PullSecret is the project's image pull Secret (read by name: without
	// services.secrets the daemon may not list the namespace's Secrets);
	// nil when absent.
	PullSecret *corev1.Secret
	// Secrets are listed only when the project has some (Observe's
	// withSecrets): the daemon's Role grants secrets only then. The pull
	// Secret is among them then, and is not theirs to delete.
	Secrets map[string]corev1.Secret
	// Claims are the named volumes' claims, listed only when the project
	// has named volumes (ObserveAll): the Role grants them only then.
	Claims map[string]corev1.PersistentVolumeClaim
}

// API is what the target needs of the API server.
type API interface {
	Apply(ctx context.Context, ref kube.Ref, body []byte, o kube.ApplyOptions) ([]byte, error)
	Delete(ctx context.Context, ref kube.Ref) error
	List(ctx context.Context, r kube.Resource, ns, selector string, v any) error
}

// Observe lists the project's objects in ns.
func Observe(ctx context.Context, c API, ns, project string) (Observed, error) {
	return ObserveWith(ctx, c, ns, project, false)
}

// ObserveWith is Observe that also lists the project's Secrets when
// withSecrets.
func ObserveWith(ctx context.Context, c API, ns, project string, withSecrets bool) (Observed, error) {
	return ObserveAll(ctx, c, ns, project, withSecrets, false)
}

// ObserveAll is Observe that also lists the project's Secrets and its
// volume claims when asked.
func ObserveAll(ctx context.Context, c API, ns, project string, withSecrets, withClaims bool) (Observed, error) {
	sel := Selector(project)
	o := Observed{Deployments: map[string]appsv1.Deployment{}, Services: map[string]corev1.Service{}, Routes: map[string]gatewayv1.HTTPRoute{}, Secrets: map[string]corev1.Secret{}, Claims: map[string]corev1.PersistentVolumeClaim{}}
	if withClaims {
		var cl corev1.PersistentVolumeClaimList
		if err := c.List(ctx, kube.Claims, ns, sel, &cl); err != nil {
			return o, err
		}
		for _, pvc := range cl.Items {
			o.Claims[pvc.Name] = pvc
		}
	}
	if withSecrets {
		var sl corev1.SecretList
		if err := c.List(ctx, kube.Secrets, ns, sel, &sl); err != nil {
			return o, err
		}
		for _, s := range sl.Items {
			o.Secrets[s.Name] = s
		}
	}
	var dl appsv1.DeploymentList
	if err := c.List(ctx, kube.Deployments, ns, sel, &dl); err != nil {
		return o, err
	}
	for _, d := range dl.Items {
		o.Deployments[d.Name] = d
	}
	var sl corev1.ServiceList
	if err := c.List(ctx, kube.Services, ns, sel, &sl); err != nil {
		return o, err
	}
	for _, s := range sl.Items {
		o.Services[s.Name] = s
	}
	var rl gatewayv1.HTTPRouteList
	if err := c.List(ctx, kube.HTTPRoutes, ns, sel, &rl); err != nil {
		return o, err
	}
	for _, r := range rl.Items {
		o.Routes[r.Name] = r
	}
	// Pods carry only the selector labels (no managed-by): they are the
	// Deployments' doing, selected by project and role.
	var pl corev1.PodList
	if err := c.List(ctx, kube.Pods, ns, k8srender.LabelProject+"="+project+","+k8srender.LabelRole+"="+stack.RoleApp, &pl); err != nil {
		return o, err
	}
	o.Pods = pl.Items
	sort.Slice(o.Pods, func(i, j int) bool { return o.Pods[i].Name < o.Pods[j].Name })
	if g, ok := c.(getter); ok {
		var sec corev1.Secret
		err := g.Get(ctx, kube.Ref{Resource: kube.Secrets, Namespace: ns, Name: k8srender.PullSecretName(project)}, &sec)
		switch {
		case kube.IsNotFound(err):
		case err != nil:
			return o, err
		case sec.Labels[k8srender.LabelManagedBy] == k8srender.ManagedBy && sec.Labels[k8srender.LabelProject] == project:
			o.PullSecret = &sec // someone else's Secret of that name is never touched
		}
	}
	return o, nil
}

// getter reads one object by name (kube.Client); an API without it
// observes no pull Secret.
type getter interface {
	Get(ctx context.Context, ref kube.Ref, v any) error
}

// Op kinds.
const (
	OpApply  = "apply"
	OpDelete = "delete"
)

// Op is one change of the plan.
type Op struct {
	Kind string
	Ref  kube.Ref
	Body []byte // the object to apply
	// Why says what changes ("create", "image a → b", "spec drifted").
	Why string
	// Force: a drift revert (see Compute).
	Force bool
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

// Compute plans the converge of obs to desired. It asks the server (dry
// run) what each desired object would become and plans an apply only
// where that differs from what is live.
func Compute(ctx context.Context, c API, desired Desired, obs Observed) (Plan, error) {
	var plan Plan
	plan.Ops = secretOps(desired, obs)
	want := map[string]bool{}
	pendingDeploy := map[string]bool{} // Deployments this plan changes
	var routeOps []Op
	for _, obj := range desired.Objects {
		ref := RefOf(obj)
		want[ref.Resource.Kind+"/"+ref.Name] = true
		body, err := k8srender.JSON(obj)
		if err != nil {
			return plan, fmt.Errorf("encode %s: %w", ref, err)
		}
		live, exists := liveJSON(obs, ref)
		why, force := "create", false
		if exists {
			dry, err := c.Apply(ctx, ref, body, kube.ApplyOptions{DryRun: true})
			if kube.IsConflict(err) {
				// Someone changed a field swiftdeploy sets (an edit is an
				// update: it takes the field's ownership). On an object
				// swiftdeploy applied, that is drift, reverted by a forced
				// apply that this op names; anything else is refused.
				if !appliedBySwiftdeploy(live) {
					return plan, fmt.Errorf("%w; %s was not applied by swiftdeploy, so it is not taken over", err, ref)
				}
				force = true
				why = "revert drift: " + conflictText(err)
				dry, err = c.Apply(ctx, ref, body, kube.ApplyOptions{DryRun: true, Force: true})
			}
			if err != nil {
				return plan, err
			}
			// The live object went through the typed structs (Observe);
			// so must the server's answer, or their encodings differ
			// where the structs add empty fields.
			if dry, err = roundTrip(ref.Resource.Kind, dry); err != nil {
				return plan, fmt.Errorf("decode dry run of %s: %w", ref, err)
			}
			same, err := sameObject(live, dry)
			if err != nil {
				return plan, fmt.Errorf("compare %s: %w", ref, err)
			}
			if same {
				continue
			}
			if !force {
				why = describeChange(obs, obj)
			} else {
				why = describeChange(obs, obj) + "; " + why
			}
		}
		op := Op{Kind: OpApply, Ref: ref, Body: body, Why: why, Force: force}
		switch v := obj.(type) {
		case *appsv1.Deployment:
			op.Gated = true
			pendingDeploy[v.Name] = true
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
		dels = append(dels, Op{Kind: OpDelete, Ref: kube.Ref{Resource: kube.Services, Namespace: desired.Namespace, Name: name}, Why: "not in the manifest"})
	}
	for name := range obs.Deployments {
		if want["Deployment/"+name] {
			continue
		}
		if svc, ok := obs.Services[name]; ok && !want["Service/"+name] {
			if r := routedBy(obs, svc.Name); r != "" && !routeApplied {
				plan.Waiting = append(plan.Waiting, fmt.Sprintf("delete Deployment %s once HTTPRoute %s no longer sends it traffic", name, r))
				continue
			}
		}
		dels = append(dels, Op{Kind: OpDelete, Ref: kube.Ref{Resource: kube.Deployments, Namespace: desired.Namespace, Name: name}, Why: "not in the manifest"})
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
			name := string(b.Name) // a track's Service and Deployment share a name
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

// liveJSON is the live object named by ref, as JSON.
func liveJSON(obs Observed, ref kube.Ref) ([]byte, bool) {
	var v any
	switch ref.Resource.Kind {
	case "Deployment":
		d, ok := obs.Deployments[ref.Name]
		if !ok {
			return nil, false
		}
		v = d
	case "Service":
		s, ok := obs.Services[ref.Name]
		if !ok {
			return nil, false
		}
		v = s
	case "HTTPRoute":
		r, ok := obs.Routes[ref.Name]
		if !ok {
			return nil, false
		}
		v = r
	case "Secret":
		if obs.PullSecret == nil || obs.PullSecret.Name != ref.Name {
			return nil, false
		}
		v = obs.PullSecret
	case "PersistentVolumeClaim":
		c, ok := obs.Claims[ref.Name]
		if !ok {
			return nil, false
		}
		v = c
	default:
		return nil, false
	}
	b, err := json.Marshal(v)
	return b, err == nil
}

// roundTrip decodes raw into kind's typed struct and encodes it again.
func roundTrip(kind string, raw []byte) ([]byte, error) {
	var v any
	switch kind {
	case "Deployment":
		v = &appsv1.Deployment{}
	case "Service":
		v = &corev1.Service{}
	case "HTTPRoute":
		v = &gatewayv1.HTTPRoute{}
	case "Secret":
		v = &corev1.Secret{}
	case "PersistentVolumeClaim":
		v = &corev1.PersistentVolumeClaim{}
	default:
		return raw, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// sameObject compares what an apply would change: labels, annotations
// and spec (a Secret's type and data) of the live object and of the
// dry-run result.
func sameObject(live, dry []byte) (bool, error) {
	type shape struct {
		Metadata struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec json.RawMessage `json:"spec"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	var a, b shape
	if err := json.Unmarshal(live, &a); err != nil {
		return false, err
	}
	if err := json.Unmarshal(dry, &b); err != nil {
		return false, err
	}
	la, _ := json.Marshal(a.Metadata)
	lb, _ := json.Marshal(b.Metadata)
	if !bytes.Equal(la, lb) || a.Type != b.Type {
		return false, nil
	}
	if same, err := jsonEqual(a.Data, b.Data); err != nil || !same {
		return false, err
	}
	return jsonEqual(a.Spec, b.Spec)
}

func jsonEqual(a, b json.RawMessage) (bool, error) {
	var x, y any
	if len(a) > 0 {
		if err := json.Unmarshal(a, &x); err != nil {
			return false, err
		}
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &y); err != nil {
			return false, err
		}
	}
	xb, _ := json.Marshal(x) // maps marshal with sorted keys
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb), nil
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
		if lr, dr := replicas(live), replicas(*v); lr != dr {
			parts = append(parts, fmt.Sprintf("replicas %d → %d", lr, dr))
		}
		if len(parts) == 0 {
			return "spec differs from the manifest"
		}
		return strings.Join(parts, ", ")
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
		if rule.Name != nil && *rule.Name == k8srender.MatchRule {
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

// Apply runs the plan's ops in order; the first error stops it, naming
// the op.
func Apply(ctx context.Context, c API, plan Plan, progress func(string)) error {
	for _, op := range plan.Ops {
		var err error
		switch op.Kind {
		case OpApply:
			_, err = c.Apply(ctx, op.Ref, op.Body, kube.ApplyOptions{Force: op.Force})
		case OpDelete:
			err = c.Delete(ctx, op.Ref)
		default:
			err = fmt.Errorf("unknown op %q", op.Kind)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if progress != nil {
			progress(op.String())
		}
	}
	return nil
}

// Converged reports whether obs is desired, rolled out: the plan is
// empty, nothing waits, and every desired Deployment has rolled out.
func Converged(desired Desired, obs Observed, plan Plan) (bool, string) {
	if !plan.Empty() {
		return false, plan.Ops[0].String()
	}
	if len(plan.Waiting) > 0 {
		return false, plan.Waiting[0]
	}
	for _, obj := range desired.Objects {
		if d, ok := obj.(*appsv1.Deployment); ok {
			live, ok := obs.Deployments[d.Name]
			if !ok {
				return false, "Deployment " + d.Name + " missing"
			}
			if done, why := RolledOut(live); !done {
				return false, "Deployment " + d.Name + ": " + why
			}
		}
	}
	return true, ""
}

// appliedBySwiftdeploy reports whether swiftdeploy's field manager has
// applied the live object.
func appliedBySwiftdeploy(live []byte) bool {
	var v struct {
		Metadata struct {
			ManagedFields []struct {
				Manager   string `json:"manager"`
				Operation string `json:"operation"`
			} `json:"managedFields"`
		} `json:"metadata"`
	}
	if json.Unmarshal(live, &v) != nil {
		return false
	}
	for _, f := range v.Metadata.ManagedFields {
		if f.Manager == kube.FieldManager && f.Operation == "Apply" {
			return true
		}
	}
	return false
}

// conflictText names the fields of a conflict and their managers.
func conflictText(err error) string {
	var e *kube.Error
	if !errors.As(err, &e) || len(e.Causes) == 0 {
		return err.Error()
	}
	var parts []string
	for _, c := range e.Causes {
		parts = append(parts, c.Field+" "+c.Message)
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
