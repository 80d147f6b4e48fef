package policy

import "context"

// Cluster is the policy that gates a change on the Kubernetes target: the
// infrastructure policy's counterpart, judging the cluster's facts rather
// than one host's (Rego package swiftdeploy.cluster, docs/policy.md).
const Cluster = "cluster"

// ClusterNode is one node's facts.
type ClusterNode struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	// Pressure lists the node's true pressure conditions (DiskPressure,
	// MemoryPressure, PIDPressure).
	Pressure []string `json:"pressure"`
	// Unschedulable: cordoned (spec.unschedulable).
	Unschedulable bool `json:"unschedulable"`
	// Allocatable and requested (by pods not of the project being
	// deployed, which its own pods replace) CPU in millicores and memory
	// in bytes.
	AllocatableCPUMillis int64 `json:"allocatable_cpu_millis"`
	AllocatableMemory    int64 `json:"allocatable_memory_bytes"`
	RequestedCPUMillis   int64 `json:"requested_cpu_millis"`
	RequestedMemory      int64 `json:"requested_memory_bytes"`
}

// ClusterInput is what the cluster policy judges. Nodes nil means the
// nodes could not be read, and the policy denies.
type ClusterInput struct {
	Nodes []ClusterNode
	// NeedCPUMillis and NeedMemory are the manifest's requests: every pod
	// of every track plus one surge pod per Deployment (maxSurge 1).
	NeedCPUMillis int64
	NeedMemory    int64
	// Error says why the nodes could not be read.
	Error string
}

// ClusterDecision decides whether the cluster may take a change.
func (e *Engine) ClusterDecision(ctx context.Context, in ClusterInput) Decision {
	input := map[string]any{
		"need_cpu_millis":   float64(in.NeedCPUMillis),
		"need_memory_bytes": float64(in.NeedMemory),
	}
	if in.Error != "" {
		input["error"] = in.Error
	}
	if in.Nodes == nil {
		input["nodes"] = nil
	} else {
		nodes := make([]any, 0, len(in.Nodes))
		for _, n := range in.Nodes {
			pressure := make([]any, 0, len(n.Pressure))
			for _, p := range n.Pressure {
				pressure = append(pressure, p)
			}
			nodes = append(nodes, map[string]any{
				"name":                     n.Name,
				"ready":                    n.Ready,
				"unschedulable":            n.Unschedulable,
				"pressure":                 pressure,
				"allocatable_cpu_millis":   float64(n.AllocatableCPUMillis),
				"allocatable_memory_bytes": float64(n.AllocatableMemory),
				"requested_cpu_millis":     float64(n.RequestedCPUMillis),
				"requested_memory_bytes":   float64(n.RequestedMemory),
			})
		}
		input["nodes"] = nodes
	}
	return e.decide(ctx, Cluster, input)
}
