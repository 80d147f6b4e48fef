package swiftdeploy.cluster_test

import data.swiftdeploy.cluster

node(name, pressure) := {
	"name": name, "ready": true, "unschedulable": false, "pressure": pressure,
	"allocatable_cpu_millis": 4000, "allocatable_memory_bytes": 8589934592,
	"requested_cpu_millis": 1000, "requested_memory_bytes": 1073741824,
}

test_allows_with_room if {
	cluster.allow with input as {"nodes": [node("a", [])], "need_cpu_millis": 3000, "need_memory_bytes": 1073741824}
}

test_limits_inclusive if {
	cluster.allow with input as {"nodes": [node("a", [])], "need_cpu_millis": 3000, "need_memory_bytes": 7516192768}
}

test_denies_pressure if {
	r := cluster.reasons with input as {"nodes": [node("a", ["MemoryPressure", "DiskPressure"]), node("b", [])], "need_cpu_millis": 100, "need_memory_bytes": 1}
	r == {"Node a reports DiskPressure, MemoryPressure"}
}

test_pressure_node_gives_no_capacity if {
	r := cluster.reasons with input as {"nodes": [node("a", ["PIDPressure"]), node("b", [])], "need_cpu_millis": 4000, "need_memory_bytes": 1}
	r == {"Node a reports PIDPressure", "CPU requests 4000m exceed the 3000m left on healthy nodes"}
}

test_denies_cpu if {
	r := cluster.reasons with input as {"nodes": [node("a", [])], "need_cpu_millis": 3001, "need_memory_bytes": 1}
	r == {"CPU requests 3001m exceed the 3000m left on healthy nodes"}
}

test_denies_memory if {
	r := cluster.reasons with input as {"nodes": [node("a", [])], "need_cpu_millis": 1, "need_memory_bytes": 8589934592}
	r == {"Memory requests 8192 MiB exceed the 7168 MiB left on healthy nodes"}
}

test_not_ready_gives_no_capacity if {
	n := object.union(node("a", []), {"ready": false})
	r := cluster.reasons with input as {"nodes": [n], "need_cpu_millis": 1, "need_memory_bytes": 1}
	r == {"No node is ready, schedulable and free of pressure"}
}

test_unknown_nodes_deny if {
	r := cluster.reasons with input as {"nodes": null, "error": "403 Forbidden", "need_cpu_millis": 1, "need_memory_bytes": 1}
	r == {"Cluster nodes unknown: 403 Forbidden"}
}

test_no_nodes_deny if {
	not cluster.allow with input as {"nodes": [], "need_cpu_millis": 1, "need_memory_bytes": 1}
}
