package swiftdeploy.canary_safety_test

import data.swiftdeploy.canary_safety

thresholds := {"max_error_rate": 0.01, "max_p99_ms": 500, "min_requests": 20}

healthy := {
	"mode": "canary",
	"requests": 900,
	"req_per_sec": 15,
	"error_rate": 0.001,
	"p99_latency": 120,
	"proxy_requests": 905,
	"proxy_error_rate": 0.002,
	"proxy_p99_latency": 125,
	"thresholds": thresholds,
}

test_healthy_canary_allowed if {
	canary_safety.allow with input as healthy
	count(canary_safety.deny) == 0 with input as healthy
}

test_article_example_denied if {
	doc := object.union(healthy, {"error_rate": 0.04, "p99_latency": 600})
	not canary_safety.allow with input as doc
	canary_safety.reasons == {"Error rate exceeds 1% threshold", "P99 latency exceeds 500ms"} with input as doc
}

test_high_error_rate_denied if {
	doc := object.union(healthy, {"error_rate": 0.0101})
	canary_safety.reasons == {"Error rate exceeds 1% threshold"} with input as doc
}

test_high_latency_denied if {
	doc := object.union(healthy, {"p99_latency": 500.5})
	canary_safety.reasons == {"P99 latency exceeds 500ms"} with input as doc
}

test_exact_thresholds_pass if {
	doc := object.union(healthy, {"error_rate": 0.01, "p99_latency": 500, "requests": 20})
	canary_safety.allow with input as doc
}

test_insufficient_data_denied if {
	doc := object.union(healthy, {"requests": 3, "error_rate": 0, "p99_latency": 10})
	canary_safety.reasons == {"Insufficient data: 3 requests in window, need at least 20"} with input as doc
}

test_fractional_request_count_rounds_down if {
	doc := object.union(healthy, {"requests": 19.6})
	canary_safety.reasons == {"Insufficient data: 19 requests in window, need at least 20"} with input as doc
}

test_thresholds_shape_the_message if {
	doc := object.union(healthy, {
		"error_rate": 0.5,
		"p99_latency": 300,
		"thresholds": {"max_error_rate": 0.005, "max_p99_ms": 250, "min_requests": 20},
	})
	canary_safety.reasons == {"Error rate exceeds 0.5% threshold", "P99 latency exceeds 250ms"} with input as doc
}

test_percentage_has_no_float_noise if {
	doc := object.union(healthy, {"error_rate": 0.5, "thresholds": object.union(thresholds, {"max_error_rate": 0.07})})
	canary_safety.reasons == {"Error rate exceeds 7% threshold"} with input as doc
}

test_no_metrics_denied if {
	doc := object.union(healthy, {"requests": null, "error_rate": null, "p99_latency": null, "proxy_requests": null, "proxy_error_rate": null, "proxy_p99_latency": null})
	not canary_safety.allow with input as doc
	canary_safety.reasons == {
		"Insufficient data: no request count for the canary",
		"Error rate unknown: no error metrics for the canary",
		"P99 latency unknown: no latency metrics for the canary",
		"Insufficient data: no request count from nginx for the canary",
		"Proxy error rate unknown: no access-log figures for the canary",
		"Proxy P99 latency unknown: no access-log figures for the canary",
	} with input as doc
}

# A canary whose process died: its own metrics fell silent, nginx saw
# 502s. The proxy's reason names nginx's view.
test_dead_canary_denied_by_proxy if {
	doc := object.union(healthy, {"error_rate": null, "p99_latency": null, "proxy_error_rate": 0.3, "proxy_p99_latency": 40})
	canary_safety.reasons == {
		"Error rate unknown: no error metrics for the canary",
		"P99 latency unknown: no latency metrics for the canary",
		"Proxy error rate exceeds 1% threshold",
	} with input as doc
}

# A hung canary: nginx waited for it until its timeout.
test_hung_canary_denied_by_proxy if {
	doc := object.union(healthy, {"proxy_error_rate": 0.09, "proxy_p99_latency": 1000})
	canary_safety.reasons == {"Proxy error rate exceeds 1% threshold", "Proxy P99 latency exceeds 500ms"} with input as doc
}

# Either view over the threshold denies, with the reason naming which.
test_either_view_denies if {
	app := object.union(healthy, {"error_rate": 0.02})
	canary_safety.reasons == {"Error rate exceeds 1% threshold"} with input as app
	proxy := object.union(healthy, {"proxy_p99_latency": 501})
	canary_safety.reasons == {"Proxy P99 latency exceeds 500ms"} with input as proxy
	exact := object.union(healthy, {"proxy_error_rate": 0.01, "proxy_p99_latency": 500, "proxy_requests": 20})
	canary_safety.allow with input as exact
}

test_few_proxy_requests_denied if {
	doc := object.union(healthy, {"proxy_requests": 7})
	canary_safety.reasons == {"Insufficient data: nginx routed 7 requests to the canary in window, need at least 20"} with input as doc
}

# A policy written before the proxy figures existed sees them absent:
# absent denies like null.
test_absent_proxy_figures_denied if {
	doc := json.remove(healthy, ["proxy_requests", "proxy_error_rate", "proxy_p99_latency"])
	canary_safety.reasons == {
		"Insufficient data: no request count from nginx for the canary",
		"Proxy error rate unknown: no access-log figures for the canary",
		"Proxy P99 latency unknown: no access-log figures for the canary",
	} with input as doc
}

test_missing_threshold_denied if {
	doc := json.remove(healthy, ["thresholds/max_p99_ms"])
	canary_safety.reasons == {"Threshold max_p99_ms is missing"} with input as doc
}

test_zero_error_budget if {
	perfect := object.union(healthy, {"error_rate": 0, "proxy_error_rate": 0, "thresholds": {"max_error_rate": 0}})
	canary_safety.allow with input as perfect
	flawed := object.union(perfect, {"error_rate": 0.001})
	canary_safety.reasons == {"Error rate exceeds 0% threshold"} with input as flawed
}

test_threshold_written_as_float if {
	doc := object.union(healthy, {"p99_latency": 501, "thresholds": {"max_p99_ms": 500.0}})
	canary_safety.reasons == {"P99 latency exceeds 500ms"} with input as doc
}

test_non_number_metric_denied if {
	doc := object.union(healthy, {"error_rate": "0.5"})
	canary_safety.reasons == {"Error rate unknown: no error metrics for the canary"} with input as doc
}

# A canary's figures are judged at the moment of promotion; none of its
# reasons is transient, so nothing retries a promotion by itself.
test_no_reason_is_transient if {
	doc := object.union(healthy, {"requests": 3, "error_rate": 0.5, "p99_latency": 900})
	denials := canary_safety.deny with input as doc
	count(denials) == 3
	every d in denials {
		d.transient == false
	}
}

test_every_reason_has_a_distinct_code if {
	doc := {"thresholds": {}}
	codes := {d.code | some d in canary_safety.deny} with input as doc
	codes == {
		"max_error_rate_missing", "max_p99_ms_missing", "min_requests_missing",
		"requests_unknown", "error_rate_unknown", "p99_latency_unknown",
		"proxy_requests_unknown", "proxy_error_rate_unknown", "proxy_p99_latency_unknown",
	}
	high := object.union(healthy, {"requests": 3, "error_rate": 0.5, "p99_latency": 900, "proxy_requests": 3, "proxy_error_rate": 0.5, "proxy_p99_latency": 900})
	high_codes := {d.code | some d in canary_safety.deny} with input as high
	high_codes == {"requests_low", "error_rate_high", "p99_latency_high", "proxy_requests_low", "proxy_error_rate_high", "proxy_p99_latency_high"}
}

# The relative verdict: 3% against stable's 0% fails even when the
# absolute threshold (raised to 5%) allows it.
relative_fail := {
	"verdict": "fail", "z": 9.0, "z_critical": 1.6449, "canary_requests": 300, "stable_requests": 2700,
	"canary_error_rate": 0.03, "stable_error_rate": 0,
	"reasons": ["Relative verdict: canary error rate 3.00% is significantly higher than stable's 0.00%"],
}

test_relative_fail_denied_despite_absolute_pass if {
	doc := object.union(healthy, {"error_rate": 0.03, "thresholds": {"max_error_rate": 0.05, "max_p99_ms": 500, "min_requests": 20}, "relative": relative_fail})
	not canary_safety.allow with input as doc
	canary_safety.reasons == {"Relative verdict: canary error rate 3.00% is significantly higher than stable's 0.00%"} with input as doc
}

test_relative_pass_allowed if {
	doc := object.union(healthy, {"relative": {"verdict": "pass", "reasons": []}})
	canary_safety.allow with input as doc
}

test_relative_insufficient_denied if {
	doc := object.union(healthy, {"relative": {"verdict": "insufficient_data", "reasons": ["Relative verdict: insufficient data"]}})
	canary_safety.reasons == {"Relative verdict: insufficient data"} with input as doc
}

# A target without a proxy view (Kubernetes) says so: only the app's
# figures are judged, and they still deny on their own.
test_no_proxy_view_judges_the_app_alone if {
	doc := object.union(json.remove(healthy, ["proxy_requests", "proxy_error_rate", "proxy_p99_latency"]), {"proxy_view": false})
	canary_safety.allow with input as doc
	bad := object.union(doc, {"error_rate": 0.05})
	canary_safety.reasons == {"Error rate exceeds 1% threshold"} with input as bad
}

# Only an explicit false turns it off: anything else is judged.
test_proxy_view_other_values_still_judged if {
	doc := object.union(json.remove(healthy, ["proxy_requests", "proxy_error_rate", "proxy_p99_latency"]), {"proxy_view": "no"})
	not canary_safety.allow with input as doc
}
