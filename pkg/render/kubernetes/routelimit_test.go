package kubernetes

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// manyCanaries is a named manifest of n web services on one host, each
// with a canary matching a header: 2 refused rules and 2 rules each.
func manyCanaries(n int) string {
	var b strings.Builder
	b.WriteString("project: shop\nservices:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `  s%d:
    image: app:1
    port: 3000
    route: {host: big.test, path_prefix: /s%d}
    canary: {image: app:2, weight: 10, match: {header: X-Canary, value: s%d}}
`, i, i, i)
	}
	b.WriteString("nginx: {image: nginx:latest, port: 8080}\nnetwork: {name: shop-net}\n")
	return b.String()
}

// Eight canaried services with a match on one host make 18 rules in its
// HTTPRoute, more than the Gateway API's 16: refused as a manifest
// problem naming the host and its services, by the renderer and by
// RouteRules (the Kubernetes target's Accept); seven (16 rules) pass.
func TestRouteRulesOverTheGatewayLimitRefused(t *testing.T) {
	m := parse(t, manyCanaries(8))
	for name, err := range map[string]error{
		"RouteRules": RouteRules(m),
		"Kubernetes": func() error { _, err := Kubernetes(m, Options{NamedForm: true}); return err }(),
	} {
		var ve *manifest.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("%s: %v, want a *manifest.ValidationError", name, err)
		}
		msg := ve.Error()
		for _, want := range []string{"host big.test", "18 rules", "s1", "s8", "at most 16"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: %q does not say %q", name, msg, want)
			}
		}
	}
	m = parse(t, manyCanaries(7))
	if err := RouteRules(m); err != nil {
		t.Fatalf("seven services (16 rules): %v", err)
	}
	if _, err := Kubernetes(m, Options{NamedForm: true}); err != nil {
		t.Fatalf("seven services (16 rules) render: %v", err)
	}
}
