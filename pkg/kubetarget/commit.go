package kubetarget

import (
	"crypto/sha256"
	"encoding/hex"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// Serves is the commit predicate on one observation: every live route
// has the desired weights, and every Deployment a route sends traffic to
// has rolled out the desired image (in the named form, the routes of
// each host and the Deployments of each web service).
func Serves(desired Desired, obs Observed) bool {
	if servesBridge(desired, obs) {
		return true // a promotion's traffic is all on the promoted image
	}
	return servesExactly(ForObserved(desired, obs), obs)
}

// servesExactly: every route of desired is live with its weights, and
// every Deployment a route sends traffic to has rolled out its image.
// Each web service's canary is a weighted backend of its own rule, so
// this is each service's "the route serves its revision" at once.
func servesExactly(desired Desired, obs Observed) bool {
	deps := map[string]*appsv1.Deployment{}
	var routes []*gatewayv1.HTTPRoute
	for _, o := range desired.Objects {
		switch v := o.(type) {
		case *appsv1.Deployment:
			deps[v.Name] = v
		case *gatewayv1.HTTPRoute:
			routes = append(routes, v)
		}
	}
	if len(routes) == 0 {
		return false
	}
	for _, route := range routes {
		live, ok := obs.Routes[route.Name]
		if !ok {
			return false
		}
		want := Weights(*route)
		if WeightsText(want) != WeightsText(Weights(live)) {
			return false
		}
		for svc, w := range want {
			if w == 0 {
				continue
			}
			name := workloadOf(desired, svc)
			dep, ok := obs.Deployments[name]
			if !ok || deps[name] == nil || ImageOf(dep) != ImageOf(*deps[name]) {
				return false
			}
			if done, _ := RolledOut(dep); !done {
				return false
			}
		}
	}
	return true
}

// Revision identifies the desired objects (what serves once in force).
func Revision(desired Desired) string {
	h := sha256.New()
	for _, o := range desired.Objects {
		if _, ok := o.(*corev1.Secret); ok {
			// The pull credentials do not change what serves, and the
			// revision is journaled: not even a hash of them goes there.
			continue
		}
		b, _ := k8srender.JSON(o)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
