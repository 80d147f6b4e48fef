# Canary safety policy: may the canary be promoted to stable?
#
# Input (built by swiftdeployd over the metrics window, see docs/policy.md):
#   mode, requests, req_per_sec, error_rate (fraction), p99_latency (ms):
#     the canary's own figures, scraped from its /metrics;
#   proxy_requests, proxy_error_rate, proxy_p99_latency: nginx's figures
#     for the canary, from its access log (5xx it sent, its own 502/504
#     included, and request times), which a crashed or hung canary cannot
#     hide;
#   thresholds.max_error_rate, thresholds.max_p99_ms, thresholds.min_requests
# Missing metrics arrive as null and deny: no data is not good data.
#
# Each deny entry is an object {code, reason, transient} (see
# infrastructure.rego). None is transient: a promotion is judged on the
# canary's figures when it is asked for, and nothing retries it.
package swiftdeploy.canary_safety

allow := count(deny) == 0

# reasons are the deny reasons as text, for tests and readers.
reasons := {d.reason | some d in deny}

deny contains lasting("max_error_rate_missing", "Threshold max_error_rate is missing") if missing(["thresholds", "max_error_rate"])

deny contains lasting("max_p99_ms_missing", "Threshold max_p99_ms is missing") if missing(["thresholds", "max_p99_ms"])

deny contains lasting("min_requests_missing", "Threshold min_requests is missing") if missing(["thresholds", "min_requests"])

deny contains lasting("requests_unknown", "Insufficient data: no request count for the canary") if missing("requests")

# Comparisons check both sides are numbers first: Rego orders null below
# every number, so `null < 20` is true.
deny contains lasting("requests_low", msg) if {
	is_number(input.requests)
	is_number(input.thresholds.min_requests)
	input.requests < input.thresholds.min_requests
	msg := sprintf(
		"Insufficient data: %d requests in window, need at least %d",
		[floor(input.requests), ceil(input.thresholds.min_requests)],
	)
}

deny contains lasting("error_rate_unknown", "Error rate unknown: no error metrics for the canary") if missing("error_rate")

deny contains lasting("error_rate_high", msg) if {
	is_number(input.error_rate)
	is_number(input.thresholds.max_error_rate)
	input.error_rate > input.thresholds.max_error_rate
	# As a percentage rounded to 0.01 so float noise never shows:
	# 0.01 -> 1, 0.005 -> 0.5, 0.07 -> 7 (not 7.000000000000001).
	percent := round(input.thresholds.max_error_rate * 10000) / 100
	msg := sprintf("Error rate exceeds %v%% threshold", [percent])
}

deny contains lasting("p99_latency_unknown", "P99 latency unknown: no latency metrics for the canary") if missing("p99_latency")

deny contains lasting("p99_latency_high", msg) if {
	is_number(input.p99_latency)
	is_number(input.thresholds.max_p99_ms)
	input.p99_latency > input.thresholds.max_p99_ms
	msg := sprintf("P99 latency exceeds %vms", [input.thresholds.max_p99_ms])
}

# nginx's view, against the same thresholds. The reasons say "Proxy" so
# that a reader knows which view failed. Absent figures deny (fail closed)
# unless the input says the target has no proxy of its own to read
# (proxy_view: false, the Kubernetes target: its Gateway's figures are not
# scraped); then only the app's view is judged.
proxy_judged if not input.proxy_view == false

deny contains lasting("proxy_requests_unknown", "Insufficient data: no request count from nginx for the canary") if {
	proxy_judged
	missing("proxy_requests")
}

deny contains lasting("proxy_requests_low", msg) if {
	is_number(input.proxy_requests)
	is_number(input.thresholds.min_requests)
	input.proxy_requests < input.thresholds.min_requests
	msg := sprintf(
		"Insufficient data: nginx routed %d requests to the canary in window, need at least %d",
		[floor(input.proxy_requests), ceil(input.thresholds.min_requests)],
	)
}

deny contains lasting("proxy_error_rate_unknown", "Proxy error rate unknown: no access-log figures for the canary") if {
	proxy_judged
	missing("proxy_error_rate")
}

deny contains lasting("proxy_error_rate_high", msg) if {
	is_number(input.proxy_error_rate)
	is_number(input.thresholds.max_error_rate)
	input.proxy_error_rate > input.thresholds.max_error_rate
	percent := round(input.thresholds.max_error_rate * 10000) / 100
	msg := sprintf("Proxy error rate exceeds %v%% threshold", [percent])
}

deny contains lasting("proxy_p99_latency_unknown", "Proxy P99 latency unknown: no access-log figures for the canary") if {
	proxy_judged
	missing("proxy_p99_latency")
}

deny contains lasting("proxy_p99_latency_high", msg) if {
	is_number(input.proxy_p99_latency)
	is_number(input.thresholds.max_p99_ms)
	input.proxy_p99_latency > input.thresholds.max_p99_ms
	msg := sprintf("Proxy P99 latency exceeds %vms", [input.thresholds.max_p99_ms])
}

# The optional canary-vs-stable verdict (manifest policy.relative): the
# daemon runs the two-proportion test and the p99 comparison
# (pkg/verdict) and passes the verdict, its statistic and sample sizes as
# input.relative; a failing verdict, or too few requests to judge, denies
# with the verdict's own reasons.
deny contains lasting("relative_fail", reason) if {
	input.relative.verdict == "fail"
	some reason in input.relative.reasons
}

deny contains lasting("relative_insufficient_data", reason) if {
	input.relative.verdict == "insufficient_data"
	some reason in input.relative.reasons
}

lasting(code, reason) := {"code": code, "reason": reason, "transient": false}

# missing holds when the value at path is absent, null or not a number.
# (`not is_number(input.x)` would not do: it is undefined, not true, when
# input.x is absent.)
missing(path) if type_name(object.get(input, path, null)) != "number"
