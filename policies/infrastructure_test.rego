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
	infrastructure.reasons == {"Disk space below 10GB"} with input as doc
}

# max_cpu_load is per core: 8.01 on 4 CPUs is 2.0025 per core.
test_high_cpu_denied if {
	doc := object.union(healthy, {"cpu_load": 8.01})
	not infrastructure.allow with input as doc
	infrastructure.reasons == {"CPU load 2.0025 per core (8.01 on 4 CPUs) above 2.0"} with input as doc
}

test_cpu_load_is_divided_by_the_cpu_count if {
	busy := object.union(healthy, {"cpu_load": 7.8, "cpu_count": 2})
	infrastructure.reasons == {"CPU load 3.9 per core (7.8 on 2 CPUs) above 2.0"} with input as busy

	# The same load on more cores is within the limit.
	infrastructure.allow with input as object.union(busy, {"cpu_count": 4})
}

test_cpu_figures_have_one_or_two_decimals if {
	doc := object.union(healthy, {"cpu_load": 7.83, "cpu_count": 3})
	infrastructure.reasons == {"CPU load 2.61 per core (7.83 on 3 CPUs) above 2.0"} with input as doc
	whole := object.union(healthy, {"cpu_load": 9, "cpu_count": 3})
	infrastructure.reasons == {"CPU load 3.0 per core (9.0 on 3 CPUs) above 2.0"} with input as whole
}

# Rounded to two decimals, 2.001 would read "2.0 ... above 2.0": the
# figures keep the decimals that show it is above.
test_cpu_figure_just_above_the_limit if {
	doc := object.union(healthy, {"cpu_load": 2.001, "cpu_count": 1})
	infrastructure.reasons == {"CPU load 2.001 per core (2.001 on 1 CPU) above 2.0"} with input as doc
}

test_cpu_load_is_transient if {
	doc := object.union(healthy, {"cpu_load": 7.8, "cpu_count": 2})
	infrastructure.deny == {{
		"code": "cpu_load_high",
		"reason": "CPU load 3.9 per core (7.8 on 2 CPUs) above 2.0",
		"transient": true,
	}} with input as doc
}

test_lasting_reasons_are_not_transient if {
	doc := {"disk_free_gb": 1, "cpu_count": 0, "thresholds": {"min_disk_gb": 10}}
	denials := infrastructure.deny with input as doc
	count(denials) == 4
	every d in denials {
		d.transient == false
	}
}

test_every_reason_has_a_distinct_code if {
	doc := {"disk_free_gb": null, "cpu_load": null, "cpu_count": null, "thresholds": {}}
	codes := {d.code | some d in infrastructure.deny} with input as doc
	codes == {"min_disk_gb_missing", "max_cpu_load_missing", "disk_unknown", "cpu_load_unknown", "cpu_count_unknown"}
}

test_missing_cpu_count_denied if {
	doc := json.remove(healthy, ["cpu_count"])
	not infrastructure.allow with input as doc
	infrastructure.reasons == {"CPU count unknown: no CPU count reading"} with input as doc
}

test_zero_cpu_count_denied if {
	doc := object.union(healthy, {"cpu_count": 0})
	not infrastructure.allow with input as doc
	infrastructure.reasons == {"CPU count unknown: 0 is not a usable CPU count"} with input as doc
}

test_both_reasons if {
	doc := object.union(healthy, {"disk_free_gb": 1, "cpu_load": 16})
	infrastructure.reasons == {"Disk space below 10GB", "CPU load 4.0 per core (16.0 on 4 CPUs) above 2.0"} with input as doc
}

test_exact_thresholds_pass if {
	doc := object.union(healthy, {"disk_free_gb": 10, "cpu_load": 8})
	infrastructure.allow with input as doc
}

test_thresholds_shape_the_message if {
	doc := object.union(healthy, {
		"disk_free_gb": 15,
		"cpu_load": 6.4,
		"thresholds": {"min_disk_gb": 20, "max_cpu_load": 1.5},
	})
	infrastructure.reasons == {"Disk space below 20GB", "CPU load 1.6 per core (6.4 on 4 CPUs) above 1.5"} with input as doc
}

test_fractional_disk_threshold if {
	doc := object.union(healthy, {"disk_free_gb": 2, "thresholds": {"min_disk_gb": 2.5, "max_cpu_load": 4}})
	infrastructure.reasons == {"Disk space below 2.5GB"} with input as doc
}

test_missing_disk_reading_denied if {
	doc := object.union(healthy, {"disk_free_gb": null})
	not infrastructure.allow with input as doc
	infrastructure.reasons == {"Disk space unknown: no free-space reading for /var/lib/docker"} with input as doc
}

test_missing_cpu_reading_denied if {
	doc := json.remove(healthy, ["cpu_load"])
	infrastructure.reasons == {"CPU load unknown: no load average reading"} with input as doc
}

test_missing_threshold_denied if {
	doc := json.remove(healthy, ["thresholds/min_disk_gb"])
	not infrastructure.allow with input as doc
	infrastructure.reasons == {"Threshold min_disk_gb is missing"} with input as doc
}

test_empty_input_denied if {
	not infrastructure.allow with input as {}
	count(infrastructure.deny) == 5 with input as {}
}

test_threshold_written_as_float if {
	doc := object.union(healthy, {"disk_free_gb": 1, "cpu_load": 12, "thresholds": {"min_disk_gb": 10.0, "max_cpu_load": 2}})
	infrastructure.reasons == {"Disk space below 10GB", "CPU load 3.0 per core (12.0 on 4 CPUs) above 2.0"} with input as doc
}

test_non_number_reading_denied if {
	doc := object.union(healthy, {"disk_free_gb": "lots", "cpu_count": "two"})
	infrastructure.reasons == {
		"Disk space unknown: no free-space reading for /var/lib/docker",
		"CPU count unknown: no CPU count reading",
	} with input as doc
}
