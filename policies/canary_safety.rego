# Canary safety policy: may the canary be promoted to stable?
#
# Input (built by swiftdeployd from the canary's scraped metrics over the
# metrics window, see docs/policy.md):
#   mode, requests, req_per_sec, error_rate (fraction), p99_latency (ms),
#   thresholds.max_error_rate, thresholds.max_p99_ms, thresholds.min_requests
# Missing metrics arrive as null and deny: no data is not good data.
package swiftdeploy.canary_safety

default allow := false

allow if count(deny) == 0

deny contains "Threshold max_error_rate is missing" if not max_error_rate

deny contains "Threshold max_p99_ms is missing" if not max_p99_ms

deny contains "Threshold min_requests is missing" if not min_requests

deny contains "Insufficient data: no request count for the canary" if not requests

deny contains msg if {
	requests < min_requests
	msg := sprintf(
		"Insufficient data: %d requests in window, need at least %d",
		[floor(requests), ceil(min_requests)],
	)
}

deny contains "Error rate unknown: no error metrics for the canary" if not error_rate

deny contains msg if {
	error_rate > max_error_rate
	msg := sprintf("Error rate exceeds %s%% threshold", [percent(max_error_rate)])
}

deny contains "P99 latency unknown: no latency metrics for the canary" if not p99_latency

deny contains msg if {
	p99_latency > max_p99_ms
	msg := sprintf("P99 latency exceeds %sms", [plain(max_p99_ms)])
}

# The values compared above are defined only when they are numbers. Testing
# `not <rule>` is how a missing or null value is caught: `not
# is_number(input.x)` would be undefined, not true, when input.x is absent,
# and Rego orders null below every number, so comparing it would mislead.
requests := input.requests if is_number(input.requests)

error_rate := input.error_rate if is_number(input.error_rate)

p99_latency := input.p99_latency if is_number(input.p99_latency)

max_error_rate := input.thresholds.max_error_rate if is_number(input.thresholds.max_error_rate)

max_p99_ms := input.thresholds.max_p99_ms if is_number(input.thresholds.max_p99_ms)

min_requests := input.thresholds.min_requests if is_number(input.thresholds.min_requests)

# percent renders a fraction as a percentage without float noise:
# 0.01 -> 1, 0.005 -> 0.5, 0.07 -> 7.
percent(fraction) := plain(round(fraction * 10000) / 100)

# plain renders a number the way a person writes it: 500, 12.5.
plain(x) := sprintf("%d", [round(x)]) if x == round(x)

plain(x) := sprintf("%v", [x]) if x != round(x)
