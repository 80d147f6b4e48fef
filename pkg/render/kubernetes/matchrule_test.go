package kubernetes

import (
	"encoding/json"
	"strings"
	"testing"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// matchManifest: web (by host) with a canary matching a header; api, on
// its own host, with a canary (sorting first, api is then the primary)
// or without.
func matchManifest(apiCanary bool) string {
	api := ""
	if apiCanary {
		api = "\n    canary: {image: app:2, weight: 30}"
	}
	return `project: shop
services:
  api:
    image: app:1
    port: 3000
    route: {host: api.test}` + api + `
  web:
    image: app:1
    port: 3000
    route: {host: web.test}
    canary: {image: app:3, weight: 10, match: {header: X-Canary, value: web}}
nginx: {image: nginx:latest, port: 8080}
network: {name: shop-net}
`
}

// webRoute renders m's route for web.test, as JSON, and the names of its
// rules.
func webRoute(t *testing.T, text string) (string, []string) {
	t.Helper()
	objs, err := Kubernetes(parse(t, text), Options{NamedForm: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if r, ok := o.(*gatewayv1.HTTPRoute); ok && r.Name == "shop-web.test" {
			var names []string
			for _, rule := range r.Spec.Rules {
				names = append(names, string(*rule.Name))
			}
			b, _ := json.Marshal(r)
			return string(b), names
		}
	}
	t.Fatal("no route for web.test")
	return "", nil
}

// The primary's match rule is canary-match (the single canary's name, as
// it always was), another's canary-match-SERVICE. A change of the primary
// (api given a canary: api sorts first) renames web's match rule and
// changes nothing else of web's route: the same matches, filters and
// backends, so routing is unchanged; the rename is one apply of the route.
func TestPrimaryChangeRenamesOnlyTheMatchRule(t *testing.T) {
	before, names := webRoute(t, matchManifest(false))
	if strings.Join(names, ",") != "refused,refused-any-case,canary-match,app-web" {
		t.Fatalf("web primary: rules %v", names)
	}
	after, names := webRoute(t, matchManifest(true))
	if strings.Join(names, ",") != "refused,refused-any-case,canary-match-web,app-web" {
		t.Fatalf("api primary: rules %v", names)
	}
	if renamed := strings.Replace(before, `"name":"canary-match"`, `"name":"canary-match-web"`, 1); renamed != after {
		t.Fatalf("web's route changed beyond its match rule's name:\nbefore %s\nafter  %s", before, after)
	}
}
