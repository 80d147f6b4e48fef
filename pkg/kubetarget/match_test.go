package kubetarget

import (
	"testing"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// The services.canary.match rule sends its requests to the canary, but is
// no share of the split: the weights status reports leave it out.
func TestWeightsLeaveOutTheMatchRule(t *testing.T) {
	w := func(n int32) *int32 { return &n }
	name := func(s string) *gatewayv1.SectionName { n := gatewayv1.SectionName(s); return &n }
	ref := func(svc string, weight int32) gatewayv1.HTTPBackendRef {
		return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(svc)}, Weight: w(weight)}}
	}
	var r gatewayv1.HTTPRoute
	r.Spec.Rules = []gatewayv1.HTTPRouteRule{
		{Name: name("refused")},
		{Name: name(k8srender.MatchRule), BackendRefs: []gatewayv1.HTTPBackendRef{ref("shop-canary", 1)}},
		{Name: name("app"), BackendRefs: []gatewayv1.HTTPBackendRef{ref("shop-stable", 100), ref("shop-canary", 0)}},
	}
	got := Weights(r)
	if got["shop-stable"] != 100 || got["shop-canary"] != 0 {
		t.Errorf("Weights = %v, want stable 100, canary 0", got)
	}
}
