package swiftdeploy.infrastructure_test

import data.swiftdeploy.infrastructure

thresholds := {"min_disk_gb": 10, "max_cpu_load": 2.0}

healthy := {
	"disk_path": "/var/lib/docker",
	"disk_free_gb": 50,
	"cpu_load": 0.5,
	"cpu_count": 4,
	"mem_available_bytes": 1073741824,
	"thresholds": thresholds,
}

test_healthy_host_allowed if {
	infrastructure.allow with input as healthy
	count(infrastructure.deny) == 0 with input as healthy
}

test_low_disk_denied if {
	doc := object.union(healthy, {"disk_free_gb": 9.99})
	not infrastructure.allow with input as doc
	infrastructure.deny == {"Disk space below 10GB"} with input as doc
}

test_high_cpu_denied if {
	doc := object.union(healthy, {"cpu_load": 2.01})
	not infrastructure.allow with input as doc
	infrastructure.deny == {"CPU load above 2.0"} with input as doc
}

test_both_reasons if {
	doc := object.union(healthy, {"disk_free_gb": 1, "cpu_load": 8})
	infrastructure.deny == {"Disk space below 10GB", "CPU load above 2.0"} with input as doc
}

test_exact_thresholds_pass if {
	doc := object.union(healthy, {"disk_free_gb": 10, "cpu_load": 2})
	infrastructure.allow with input as doc
}

test_thresholds_shape_the_message if {
	doc := object.union(healthy, {
		"disk_free_gb": 15,
		"cpu_load": 1.6,
		"thresholds": {"min_disk_gb": 20, "max_cpu_load": 1.5},
	})
	infrastructure.deny == {"Disk space below 20GB", "CPU load above 1.5"} with input as doc
}

test_fractional_disk_threshold if {
	doc := object.union(healthy, {"disk_free_gb": 2, "thresholds": {"min_disk_gb": 2.5, "max_cpu_load": 4}})
	infrastructure.deny == {"Disk space below 2.5GB"} with input as doc
}

test_missing_disk_reading_denied if {
	doc := object.union(healthy, {"disk_free_gb": null})
	not infrastructure.allow with input as doc
	infrastructure.deny == {"Disk space unknown: no free-space reading for /var/lib/docker"} with input as doc
}

test_missing_cpu_reading_denied if {
	doc := json.remove(healthy, ["cpu_load"])
	infrastructure.deny == {"CPU load unknown: no load average reading"} with input as doc
}

test_missing_threshold_denied if {
	doc := json.remove(healthy, ["thresholds/min_disk_gb"])
	not infrastructure.allow with input as doc
	infrastructure.deny == {"Threshold min_disk_gb is missing"} with input as doc
}

test_empty_input_denied if {
	not infrastructure.allow with input as {}
	count(infrastructure.deny) == 4 with input as {}
}

test_threshold_written_as_float if {
	doc := object.union(healthy, {"disk_free_gb": 1, "cpu_load": 3, "thresholds": {"min_disk_gb": 10.0, "max_cpu_load": 2}})
	infrastructure.deny == {"Disk space below 10GB", "CPU load above 2.0"} with input as doc
}

test_non_number_reading_denied if {
	doc := object.union(healthy, {"disk_free_gb": "lots"})
	infrastructure.deny == {"Disk space unknown: no free-space reading for /var/lib/docker"} with input as doc
}
