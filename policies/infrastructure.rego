# Infrastructure policy: may this host take a deploy right now?
#
# Input (built by swiftdeployd from host facts, see docs/policy.md):
#   disk_path, disk_free_gb, cpu_load, cpu_count, mem_available_bytes,
#   thresholds.min_disk_gb, thresholds.max_cpu_load
# A reading the daemon could not take arrives as null and denies: a deploy is
# never allowed on facts nobody checked.
package swiftdeploy.infrastructure

allow := count(deny) == 0

deny contains "Threshold min_disk_gb is missing" if missing(["thresholds", "min_disk_gb"])

deny contains "Threshold max_cpu_load is missing" if missing(["thresholds", "max_cpu_load"])

deny contains msg if {
	missing("disk_free_gb")
	msg := sprintf("Disk space unknown: no free-space reading for %s", [disk_path])
}

# Comparisons check both sides are numbers first: Rego orders null below
# every number, so `null < 10` is true.
deny contains msg if {
	is_number(input.disk_free_gb)
	is_number(input.thresholds.min_disk_gb)
	input.disk_free_gb < input.thresholds.min_disk_gb
	msg := sprintf("Disk space below %vGB", [input.thresholds.min_disk_gb])
}

deny contains "CPU load unknown: no load average reading" if missing("cpu_load")

deny contains msg if {
	is_number(input.cpu_load)
	is_number(input.thresholds.max_cpu_load)
	input.cpu_load > input.thresholds.max_cpu_load
	msg := sprintf("CPU load above %s", [decimal(input.thresholds.max_cpu_load)])
}

# missing holds when the value at path is absent, null or not a number.
# (`not is_number(input.x)` would not do: it is undefined, not true, when
# input.x is absent.)
missing(path) if type_name(object.get(input, path, null)) != "number"

default disk_path := "the deploy disk"

disk_path := input.disk_path if {
	is_string(input.disk_path)
	input.disk_path != ""
}

# decimal renders a load figure with at least one decimal, as load averages
# are written: 2 -> "2.0", 2.5 -> "2.5".
decimal(x) := sprintf("%d.0", [round(x)]) if x == round(x)

decimal(x) := sprintf("%v", [x]) if x != round(x)
