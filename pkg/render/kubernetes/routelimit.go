package kubernetes

import (
	"fmt"
	"strings"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// MaxRouteRules is the Gateway API's limit on an HTTPRoute's rules
// (spec.rules, maxItems 16): the API server refuses a longer route.
const MaxRouteRules = 16

// RouteRules refuses a named-form manifest one of whose HTTPRoutes would
// hold more rules than the Gateway API allows, as rendered with every
// declared canary running (the most rules a route gets: a canary
// dropped or promoted only removes its match rule). Each service routed
// on a host costs a rule there, a canary with services.NAME.canary.match
// another, and every route carries the two refused rules. Refused when
// the manifest is read, not when the route is applied: a refused apply
// would leave the manifest in force and every change to it failing.
func RouteRules(m *manifest.Manifest) error {
	if !m.IsNamed() {
		return nil // one service: at most four rules
	}
	return checkRouteRules(namedRoutes(stack.FromManifest(m, stack.Options{}), Options{}))
}

// checkRouteRules is RouteRules on rendered routes: a problem per route
// over the limit, naming its host and the services whose rules it holds.
func checkRouteRules(routes []Object) error {
	var problems []manifest.Problem
	for _, obj := range routes {
		r, ok := obj.(*gatewayv1.HTTPRoute)
		if !ok || len(r.Spec.Rules) <= MaxRouteRules {
			continue
		}
		host := "every host"
		if len(r.Spec.Hostnames) == 1 && r.Name != "" && strings.HasSuffix(r.Name, "-"+string(r.Spec.Hostnames[0])) {
			host = "host " + string(r.Spec.Hostnames[0])
		}
		var svcs, matched []string
		for _, rule := range r.Spec.Rules {
			if rule.Name == nil {
				continue
			}
			name := string(*rule.Name)
			switch {
			case IsMatchRule(name):
				matched = append(matched, name)
			case strings.HasPrefix(name, "app-"):
				svcs = append(svcs, strings.TrimPrefix(name, "app-"))
			}
		}
		problems = append(problems, manifest.Problem{Field: "services", Msg: fmt.Sprintf(
			"%s: HTTPRoute %s would hold %d rules (services %s, %d canary match rule(s), 2 refused-path rules); the Gateway API allows at most %d in a route: route fewer services there, or drop a canary's match",
			host, r.Name, len(r.Spec.Rules), strings.Join(svcs, ", "), len(matched), MaxRouteRules)})
	}
	if len(problems) == 0 {
		return nil
	}
	return &manifest.ValidationError{Problems: problems}
}
