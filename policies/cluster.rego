# Cluster policy: may this Kubernetes cluster take a change right now?
# The Kubernetes target's counterpart of the infrastructure policy.
#
# Input (built by swiftdeployd --target kubernetes from the API, see
# docs/policy.md):
#   nodes[]: name, ready, unschedulable, pressure (the node's true
#            DiskPressure/MemoryPressure/PIDPressure conditions),
#            allocatable_cpu_millis, allocatable_memory_bytes,
#            requested_cpu_millis, requested_memory_bytes (requests of
#            the pods on the node that are not the project's own)
#   need_cpu_millis, need_memory_bytes: the manifest's requests, every
#            pod plus one surge pod per Deployment
#   error:   why the nodes could not be read (nodes is then null)
# A node that is not ready, is cordoned or reports pressure gives no
# capacity; a pressure condition also denies by itself (it may settle:
# transient). No readable nodes denies: a change is never allowed on facts
# nobody checked.
package swiftdeploy.cluster

allow := count(deny) == 0

reasons := {d.reason | some d in deny}

deny contains lasting("nodes_unknown", msg) if {
	not is_array(input.nodes)
	msg := sprintf("Cluster nodes unknown: %s", [object.get(input, "error", "no node reading")])
}

deny contains lasting("no_nodes", "Cluster has no nodes") if {
	is_array(input.nodes)
	count(input.nodes) == 0
}

deny contains {"code": "node_pressure", "reason": msg, "transient": true} if {
	some n in input.nodes
	count(n.pressure) > 0
	msg := sprintf("Node %s reports %s", [n.name, concat(", ", sort(n.pressure))])
}

healthy contains n if {
	some n in input.nodes
	n.ready == true
	n.unschedulable != true
	count(n.pressure) == 0
}

deny contains lasting("no_healthy_node", "No node is ready, schedulable and free of pressure") if {
	is_array(input.nodes)
	count(input.nodes) > 0
	count(healthy) == 0
}

free_cpu := sum([max([0, n.allocatable_cpu_millis - n.requested_cpu_millis]) | some n in healthy])

free_memory := sum([max([0, n.allocatable_memory_bytes - n.requested_memory_bytes]) | some n in healthy])

deny contains lasting("cpu_insufficient", msg) if {
	count(healthy) > 0
	is_number(input.need_cpu_millis)
	input.need_cpu_millis > free_cpu
	msg := sprintf("CPU requests %vm exceed the %vm left on healthy nodes", [input.need_cpu_millis, free_cpu])
}

deny contains lasting("memory_insufficient", msg) if {
	count(healthy) > 0
	is_number(input.need_memory_bytes)
	input.need_memory_bytes > free_memory
	msg := sprintf("Memory requests %v MiB exceed the %v MiB left on healthy nodes", [mib(input.need_memory_bytes), mib(free_memory)])
}

deny contains lasting("need_unknown", "The manifest's requests are missing from the input") if {
	not is_number(input.need_cpu_millis)
}

deny contains lasting("need_unknown", "The manifest's requests are missing from the input") if {
	not is_number(input.need_memory_bytes)
}

lasting(code, reason) := {"code": code, "reason": reason, "transient": false}

mib(b) := round((b / 1048576) * 10) / 10
