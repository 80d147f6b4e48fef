package kubetarget

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// Bridge is how a promotion keeps its promise that no pod of an
// unpromoted image ever takes stable traffic. A Deployment's rolling
// update puts each new pod in the stable Service as soon as it is Ready,
// long before the promotion is known to have taken effect. So, as Argo
// Rollouts scales the canary to full size before it moves the stable
// Service, a promotion first scales the canary Deployment (already
// running the promoted image) to the stable's replicas and moves every
// request to it (the commit point: the route serves the new revision);
// only then, with the stable Service out of the route, does the stable
// Deployment roll to the promoted image; the route then returns to it and
// the canary is deleted. A promotion that never gets that far leaves the
// stable Deployment as it was.
type Bridge struct {
	Canary  *appsv1.Deployment
	Service *corev1.Service
	// Routes are every route of the pre-promotion stack at canary weight
	// 100: one in the single-service form; in the named form a route per
	// host, those holding the promoted service's rule changed.
	Routes []*gatewayv1.HTTPRoute
	names  Names
}

// bridgeOf picks the bridge's objects from b (the pre-promotion stack
// with the promoted service's canary at weight 100) for the promotion d
// of the service named by n: its canary at the size of d's stable.
func bridgeOf(b, d Desired, n Names) *Bridge {
	out := &Bridge{names: n}
	var replicas *int32
	for _, o := range d.Objects {
		if dep, ok := o.(*appsv1.Deployment); ok && dep.Name == n.StableDeployment {
			replicas = dep.Spec.Replicas
		}
	}
	for _, o := range b.Objects {
		switch v := o.(type) {
		case *appsv1.Deployment:
			if v.Name == n.CanaryDeployment {
				c := v.DeepCopy()
				if replicas != nil {
					r := *replicas
					c.Spec.Replicas = &r
				}
				seal(c)
				out.Canary = c
			}
		case *corev1.Service:
			if v.Name == n.CanaryService {
				out.Service = v
			}
		case *gatewayv1.HTTPRoute:
			out.Routes = append(out.Routes, v)
		}
	}
	if out.Canary == nil || out.Service == nil || len(out.Routes) == 0 {
		return nil
	}
	return out
}

// bridging is the bridge of d's promotions in force: one whose stable
// Deployment has not the promoted image yet while a live route still
// sends its stable Service traffic; nil when none is. Promotions are
// transactions run one at a time, each converged through its bridge
// before the next: should two be found (a crash between two), the first
// is bridged now and the other once it is done.
func bridging(d Desired, obs Observed) *Bridge {
	for _, b := range d.Bridges {
		if b.inForce(d, obs) {
			return b
		}
	}
	return nil
}

// inForce: b's stable Deployment has not the promoted image yet while a
// live route still sends its stable Service traffic.
func (b *Bridge) inForce(d Desired, obs Observed) bool {
	n := b.names
	var want *appsv1.Deployment
	for _, o := range d.Objects {
		if dep, ok := o.(*appsv1.Deployment); ok && dep.Name == n.StableDeployment {
			want = dep
		}
	}
	live, ok := obs.Deployments[n.StableDeployment]
	if want == nil || !ok || ImageOf(live) == ImageOf(*want) {
		return false
	}
	for _, r := range b.Routes {
		if route, ok := obs.Routes[r.Name]; ok && Weights(route)[n.StableService] > 0 {
			return true
		}
	}
	return false
}

// ForObserved is what desired means given what is observed:
//   - during a promotion's bridge stage (bridging), the canary at full
//     size and the route on it, the stable Deployment kept as it is;
//   - a Deployment a HorizontalPodAutoscaler targets is applied without
//     spec.replicas (leaveReplicas), so the HPA's count stands (setting it
//     would take the field back at every resync and journal
//     drift_reverted each time).
func ForObserved(d Desired, obs Observed) Desired {
	out := d
	if b := bridging(d, obs); b != nil {
		d = bridged(d, b, obs)
		out = d
	}
	out.Objects = make([]k8srender.Object, 0, len(d.Objects))
	for _, o := range d.Objects {
		if dep, ok := o.(*appsv1.Deployment); ok && obs.Scaled[dep.Name] != "" && dep.Spec.Replicas != nil {
			o = leaveReplicas(dep, obs)
		}
		out.Objects = append(out.Objects, o)
	}
	return out
}

// bridged is d with bridge b's stage in force: everything the promotion
// leaves as it is (Services, claims, the pull Secret; the named form's
// other services) stays desired; the promoted service's stable
// Deployment is kept as it runs, the routes are the bridge's.
func bridged(d Desired, b *Bridge, obs Observed) Desired {
	out, n := d, b.names
	out.Objects = nil
	out.Keep = map[string]bool{"Deployment/" + n.StableDeployment: true}
	for _, o := range d.Objects {
		if _, ok := o.(*gatewayv1.HTTPRoute); ok || o.GetName() == n.StableDeployment && RefOf(o).Resource.Kind == "Deployment" {
			continue
		}
		out.Objects = append(out.Objects, o)
	}
	canary := b.Canary
	if live, ok := obs.Deployments[n.StableDeployment]; ok && obs.Scaled[live.Name] != "" {
		// The HPA's count, not the manifest's, is what carries the
		// stable's traffic now.
		canary = canary.DeepCopy()
		r := replicas(live)
		canary.Spec.Replicas = &r
		seal(canary)
	}
	out.Objects = append(out.Objects, canary, b.Service)
	for _, r := range b.Routes {
		out.Objects = append(out.Objects, r)
	}
	out.Bridges = nil
	return out
}

// leaveReplicas is dep with its replicas left to the HPA that targets it.
// Once the HPA has scaled it (its manager owns spec.replicas), the field
// is not applied at all. Until then it is applied at the live count:
// dropping a field swiftdeploy alone owns would reset it to 1 before the
// HPA acts.
func leaveReplicas(dep *appsv1.Deployment, obs Observed) *appsv1.Deployment {
	c := dep.DeepCopy()
	live, ok := obs.Deployments[dep.Name]
	switch {
	case !ok:
		// Created at the manifest's count; the HPA takes it from there.
		return dep
	case replicasOwnedByOthers(live):
		c.Spec.Replicas = nil
	default:
		r := replicas(live)
		c.Spec.Replicas = &r
	}
	seal(c)
	return c
}

// replicasOwnedByOthers: a field manager other than swiftdeploy (an HPA
// through the scale subresource, or anyone's update) owns spec.replicas.
func replicasOwnedByOthers(d appsv1.Deployment) bool {
	for _, f := range d.ManagedFields {
		if f.Manager == kube.FieldManager || f.Subresource == "status" || f.FieldsV1 == nil {
			continue
		}
		raw := string(f.FieldsV1.Raw)
		if strings.Contains(raw, `"f:replicas"`) && (f.Subresource == "scale" || strings.Contains(raw, `"f:spec"`)) {
			return true
		}
	}
	return false
}

// servesBridge: for one of d's promotions, every live route has its
// bridge's weights (every request of the promoted service on its
// canary, every other service's split as desired) and every Deployment
// those routes send traffic to has rolled out its desired image, the
// promoted canary's included.
func servesBridge(d Desired, obs Observed) bool {
	for _, b := range d.Bridges {
		if servesExactly(bridged(d, b, obs), obs) {
			return true
		}
	}
	return false
}
