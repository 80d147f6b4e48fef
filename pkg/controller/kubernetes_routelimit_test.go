package controller

import (
	"fmt"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// kubeManyCanaries is n web services on one host, each with a canary
// matching a header: 2 refused rules and 2 rules a service in the host's
// HTTPRoute.
func kubeManyCanaries(n int) string {
	var b strings.Builder
	b.WriteString("project: demo\nservices:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `  s%d:
    image: app:1
    port: 3000
    route: {host: big.test, path_prefix: /s%d}
    canary: {image: app:2, weight: 10, match: {header: X-Canary, value: s%d}}
`, i, i, i)
	}
	b.WriteString("nginx: {image: nginx:latest, port: 8080}\nnetwork: {name: demo-net}\n")
	return b.String()
}

// An edit whose host's HTTPRoute would hold more rules than the Gateway
// API's 16 (eight canaried services with a match: 18) is refused when
// the daemon reads it, naming the host, like any invalid manifest: the
// last good manifest stays in force and nothing of the edit is applied.
func TestKubeRouteOverTheRuleLimitRefusedWhenRead(t *testing.T) {
	h, fk := kubeHarness(t, kubeManyCanaries(2))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	const route = "HTTPRoute/demo-big.test"
	applied := fk.applies(route)
	if applied == 0 || !fk.has("Deployment/demo-s2-canary") {
		t.Fatalf("the two-service manifest should deploy: route applied %d times", applied)
	}
	h.write(kubeManyCanaries(8))
	if err := h.deploy(); err == nil || !strings.Contains(err.Error(), "last good manifest stays in force") {
		t.Fatalf("deploy of the 18-rule edit: %v, want it rejected", err)
	}
	var problems []string
	for _, r := range h.records(journal.TypeEvent) {
		if r.Event == journal.EventManifestRejected {
			problems = append(problems, r.Message)
		}
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "host big.test") || !strings.Contains(problems[0], "18 rules") {
		t.Fatalf("manifest_rejected %q, want one naming host big.test and its 18 rules", problems)
	}
	if fk.has("Deployment/demo-s3") || fk.has("Deployment/demo-s8-canary") || fk.applies(route) != applied {
		t.Fatalf("the refused edit was applied: s3 %v, s8's canary %v, route applies %d (was %d)",
			fk.has("Deployment/demo-s3"), fk.has("Deployment/demo-s8-canary"), fk.applies(route), applied)
	}
	if m := h.d.readManifest(); m == nil || len(m.Named) != 2 {
		t.Fatal("the last good manifest (two services) should stay in force")
	}
}
