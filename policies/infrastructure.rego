# Infrastructure policy: may this host take a deploy right now?
#
# Input (built by swiftdeployd from host facts, see docs/policy.md):
#   disk_path, disk_free_gb, cpu_load, cpu_count, mem_available_bytes,
#   thresholds.min_disk_gb, thresholds.max_cpu_load
# A reading the daemon could not take arrives as null and denies: a deploy is
# never allowed on facts nobody checked.
package swiftdeploy.infrastructure

default allow := false

allow if count(deny) == 0

deny contains "Threshold min_disk_gb is missing" if not min_disk_gb

deny contains "Threshold max_cpu_load is missing" if not max_cpu_load

deny contains msg if {
	not disk_free_gb
	msg := sprintf("Disk space unknown: no free-space reading for %s", [disk_path])
}

deny contains msg if {
	disk_free_gb < min_disk_gb
	msg := sprintf("Disk space below %sGB", [plain(min_disk_gb)])
}

deny contains "CPU load unknown: no load average reading" if not cpu_load

deny contains msg if {
	cpu_load > max_cpu_load
	msg := sprintf("CPU load above %s", [decimal(max_cpu_load)])
}

# The values compared above are defined only when they are numbers. Testing
# `not <rule>` is how a missing or null value is caught: `not
# is_number(input.x)` would be undefined, not true, when input.x is absent,
# and Rego orders null below every number, so comparing it would mislead.
disk_free_gb := input.disk_free_gb if is_number(input.disk_free_gb)

cpu_load := input.cpu_load if is_number(input.cpu_load)

min_disk_gb := input.thresholds.min_disk_gb if is_number(input.thresholds.min_disk_gb)

max_cpu_load := input.thresholds.max_cpu_load if is_number(input.thresholds.max_cpu_load)

default disk_path := "the deploy disk"

disk_path := input.disk_path if {
	is_string(input.disk_path)
	input.disk_path != ""
}

# plain renders a number the way a person writes it: 10, 10.5.
plain(x) := sprintf("%d", [round(x)]) if x == round(x)

plain(x) := sprintf("%v", [x]) if x != round(x)

# decimal renders a load figure with at least one decimal: 2.0, 2.5.
decimal(x) := sprintf("%d.0", [round(x)]) if x == round(x)

decimal(x) := sprintf("%v", [x]) if x != round(x)
