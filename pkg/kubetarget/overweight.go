package kubetarget

import (
	appsv1 "k8s.io/api/apps/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// overweighted names, by the route, the canary Deployments to which a
// live route sends a larger share than the desired route will: a
// promotion's bridge committed (every request of the service on its
// canary) but not finished when the operator changes the canary's image,
// or a canary's weight lowered in the same edit as its image. Compute
// holds such a Deployment's change until that route has lowered its
// share: rolled now, its new, unjudged image would take the live share
// (all of the service's traffic, mid-promotion). The route itself goes
// as it always does (once the Deployments it sends traffic to have
// rolled out: the stable to the promoted image first, mid-promotion, so
// that no request returns to the image the promotion replaced).
func overweighted(desired Desired, obs Observed) map[string]string {
	canaries := map[string]bool{}
	for _, o := range desired.Objects {
		if d, ok := o.(*appsv1.Deployment); ok && d.Labels[k8srender.LabelTrack] == stack.TrackCanary {
			canaries[d.Name] = true
		}
	}
	out := map[string]string{}
	for _, o := range desired.Objects {
		r, ok := o.(*gatewayv1.HTTPRoute)
		if !ok {
			continue
		}
		live, ok := obs.Routes[r.Name]
		if !ok {
			continue
		}
		want := Weights(*r)
		for svc, w := range Weights(live) {
			if dep := workloadOf(desired, svc); canaries[dep] && w > want[svc] {
				out[dep] = r.Name
			}
		}
	}
	return out
}
