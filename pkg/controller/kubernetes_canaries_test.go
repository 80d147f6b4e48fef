package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// kubeCanaries: two web services by host, api's with a canary at 20%
// and, with webCanary, web's at 10%.
func kubeCanaries(webCanary bool) string {
	web := ""
	if webCanary {
		web = "\n    canary: {image: app:3, weight: 10}"
	}
	return `project: demo
services:
  api:
    image: app:1
    port: 3000
    route: {host: api.example.com}
    canary: {image: app:2, weight: 20}
  web:
    image: app:1
    port: 3000
    route: {host: web.example.com}` + web + `
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
metrics: {scrape_interval: 1s, window: 10s}
policy: {min_requests: 10}
`
}

// On Kubernetes, a namespace runs one canary at a time: an edit adding a
// second service's canary is refused when the daemon reads it, naming
// both services' canary fields, like any invalid manifest; the last good
// manifest stays in force, nothing is torn down, and the running canary
// can still be rolled back (a two-canary manifest in force would make
// every change fail to plan, the abort included).
func TestKubeSecondCanaryRefusedWhenRead(t *testing.T) {
	drops := map[string]func(h *harness) error{
		"rollback": func(h *harness) error {
			return h.d.Rollback(context.Background(), "alice", api.RollbackRequest{}, func(string) {})
		},
		"abort": func(h *harness) error {
			return h.d.Abort(context.Background(), "alice", api.AbortRequest{Service: "api", Reason: "slow"}, func(string) {})
		},
	}
	for name, drop := range drops {
		t.Run(name, func(t *testing.T) {
			h, fk := kubeHarness(t, kubeCanaries(false))
			if err := h.deploy(); err != nil {
				t.Fatal(err)
			}
			const route = "demo-api.example.com"
			if w := fk.weights(route); w["demo-api-canary"] != 20 {
				t.Fatalf("route %v, want api's canary at 20", w)
			}
			h.write(kubeCanaries(true))
			if err := h.deploy(); err == nil || !strings.Contains(err.Error(), "last good manifest stays in force") {
				t.Fatalf("deploy of the two-canary edit: %v, want it rejected", err)
			}
			var problems []string
			for _, r := range h.records(journal.TypeEvent) {
				if r.Event == journal.EventManifestRejected {
					problems = append(problems, r.Message)
				}
			}
			if len(problems) != 1 || !strings.Contains(problems[0], "services.api.canary") || !strings.Contains(problems[0], "services.web.canary") ||
				!strings.Contains(problems[0], "kubernetes") {
				t.Fatalf("manifest_rejected %q, want one naming services.api.canary and services.web.canary", problems)
			}
			if errs := h.d.manifestErrors(); len(errs) != 2 {
				t.Errorf("manifest errors %q, want one per canary field", errs)
			}
			if v := h.d.Validate(context.Background()); len(v.Checks) == 0 || v.Checks[0].OK || !strings.Contains(v.Checks[0].Detail, "services.web.canary") {
				t.Errorf("validate %+v, want the manifest refused naming services.web.canary", v.Checks)
			}
			if !fk.has("Deployment/demo-api-canary") || fk.has("Deployment/demo-web-canary") || fk.weights(route)["demo-api-canary"] != 20 {
				t.Fatalf("after the refused edit: api's canary kept %v, web's started %v, route %v",
					fk.has("Deployment/demo-api-canary"), fk.has("Deployment/demo-web-canary"), fk.weights(route))
			}
			if err := drop(h); err != nil {
				t.Fatalf("%s of api's canary with the refused edit on disk: %v", name, err)
			}
			if w := fk.weights(route); w["api"] != 100 || w["demo-api-canary"] != 0 {
				t.Fatalf("route %v after the %s, want every request on api's stable", w, name)
			}
		})
	}
}
