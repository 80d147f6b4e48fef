package main

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// policyCluster is the Kubernetes target's infrastructure policy.
const policyCluster = "cluster"

// infraPolicy is the policy that gates changes on the daemon's target.
func infraPolicy(s api.Status) string {
	if s.Kubernetes != nil {
		return policyCluster
	}
	return policyInfrastructure
}

// writeKube writes what the API server reports of the Deployments and the
// HTTPRoute (Kubernetes target only).
func writeKube(b *strings.Builder, k *api.KubeStatus) {
	if k == nil {
		return
	}
	b.WriteString("\nDeployments:\n")
	if len(k.Deployments) == 0 {
		b.WriteString("  none\n")
	} else {
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tTRACK\tIMAGE\tGENERATION\tUPDATED\tAVAILABLE\tROLLED OUT")
		for _, d := range k.Deployments {
			out := "yes"
			if !d.RolledOut {
				out = "no: " + d.Problem
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d/%d\t%d/%d\t%d/%d\t%s\n", d.Name, d.Track, d.Image,
				d.ObservedGeneration, d.Generation, d.Updated, d.Replicas, d.Available, d.Replicas, out)
		}
		tw.Flush()
	}
	if k.Route == "" {
		b.WriteString("HTTPRoute: none\n")
		return
	}
	names := make([]string, 0, len(k.RouteWeights))
	for n := range k.RouteWeights {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, k.RouteWeights[n]))
	}
	fmt.Fprintf(b, "HTTPRoute %s: %s\n", k.Route, strings.Join(parts, ", "))
}
