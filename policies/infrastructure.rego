# Infrastructure policy: may this host take a deploy right now?
#
# Input (built by swiftdeployd from host facts, see docs/policy.md):
#   disk_path, disk_free_gb, cpu_load, cpu_count, mem_available_bytes,
#   thresholds.min_disk_gb, thresholds.max_cpu_load (per core)
# A reading the daemon could not take arrives as null and denies: a deploy is
# never allowed on facts nobody checked.
#
# Each deny entry is an object:
#   reason     what people read; it may carry the figures of this reading
#   code       stable from one reading to the next, so that a retried
#              denial can be told from a new one
#   transient  true when the reading may settle by itself (CPU load), so
#              that waiting and retrying makes sense; false when it will
#              not (a full disk, a missing reading or threshold)
package swiftdeploy.infrastructure

allow := count(deny) == 0

# reasons are the deny reasons as text, for tests and readers.
reasons := {d.reason | some d in deny}

deny contains lasting("min_disk_gb_missing", "Threshold min_disk_gb is missing") if missing(["thresholds", "min_disk_gb"])

deny contains lasting("max_cpu_load_missing", "Threshold max_cpu_load is missing") if missing(["thresholds", "max_cpu_load"])

deny contains lasting("disk_unknown", msg) if {
	missing("disk_free_gb")
	msg := sprintf("Disk space unknown: no free-space reading for %s", [disk_path])
}

# Comparisons check both sides are numbers first: Rego orders null below
# every number, so `null < 10` is true.
deny contains lasting("disk_low", msg) if {
	is_number(input.disk_free_gb)
	is_number(input.thresholds.min_disk_gb)
	input.disk_free_gb < input.thresholds.min_disk_gb
	msg := sprintf("Disk space below %vGB", [input.thresholds.min_disk_gb])
}

deny contains lasting("cpu_load_unknown", "CPU load unknown: no load average reading") if missing("cpu_load")

# The load average counts runnable tasks host-wide, so it is judged per
# core: 3.0 is busy on 2 CPUs and idle on 16. Without a usable CPU count
# there is nothing to divide by, and the deploy is denied.
deny contains lasting("cpu_count_unknown", "CPU count unknown: no CPU count reading") if missing("cpu_count")

deny contains lasting("cpu_count_unknown", msg) if {
	is_number(input.cpu_count)
	input.cpu_count <= 0
	msg := sprintf("CPU count unknown: %v is not a usable CPU count", [input.cpu_count])
}

deny contains {"code": "cpu_load_high", "reason": msg, "transient": true} if {
	is_number(input.cpu_load)
	is_number(input.cpu_count)
	input.cpu_count > 0
	is_number(input.thresholds.max_cpu_load)
	per_core := input.cpu_load / input.cpu_count
	per_core > input.thresholds.max_cpu_load

	# Two decimals, unless rounding would hide that per_core is above the
	# limit (2.001 would read "2.0 per core ... above 2.0").
	exact := round(per_core * 100) / 100 <= input.thresholds.max_cpu_load
	msg := sprintf("CPU load %s per core (%s on %s) above %s", [
		load_figure(per_core, exact),
		load_figure(input.cpu_load, exact),
		cpus(input.cpu_count),
		decimal(input.thresholds.max_cpu_load),
	])
}

lasting(code, reason) := {"code": code, "reason": reason, "transient": false}

# missing holds when the value at path is absent, null or not a number.
# (`not is_number(input.x)` would not do: it is undefined, not true, when
# input.x is absent.)
missing(path) if type_name(object.get(input, path, null)) != "number"

default disk_path := "the deploy disk"

disk_path := input.disk_path if {
	is_string(input.disk_path)
	input.disk_path != ""
}

# cpus writes a CPU count: "1 CPU", "2 CPUs".
cpus(n) := "1 CPU" if n == 1

cpus(n) := sprintf("%v CPUs", [n]) if n != 1

# load_figure writes a load figure rounded to two decimals, with at least
# one (7.8 -> "7.8", 9 -> "9.0", 2.6100000000000003 -> "2.61"), or exact
# with all its decimals.
load_figure(x, false) := decimal(round(x * 100) / 100)

load_figure(x, true) := sprintf("%v", [x])

# decimal renders a load figure with at least one decimal, as load averages
# are written: 2 -> "2.0", 2.5 -> "2.5".
decimal(x) := sprintf("%d.0", [round(x)]) if x == round(x)

decimal(x) := sprintf("%v", [x]) if x != round(x)
