package swiftdeploy.chaos_test

import data.swiftdeploy.chaos

req(mode, extra) := object.union({
	"operation": "chaos", "mode": mode, "rate": 0, "duration": 0, "track": "canary",
	"service": "", "project": "demo", "canary_running": true, "containers": ["demo-app-canary-1"],
}, extra)

test_allows_error_on_canary if {
	chaos.allow with input as req("error", {"rate": 0.5})
}

test_allows_slow_and_hang_on_stable if {
	chaos.allow with input as req("slow", {"duration": 0.7, "track": "stable", "canary_running": false})
	chaos.allow with input as req("hang", {"track": "stable"})
}

test_allows_bounds_inclusive if {
	chaos.allow with input as req("crash", {"rate": 1})
	chaos.allow with input as req("slow", {"duration": 60})
}

test_denies_rate_out_of_range if {
	r := chaos.reasons with input as req("error", {"rate": 1.5})
	r == {"Chaos rate 1.5 is not a fraction above 0 and at most 1"}
	r0 := chaos.reasons with input as req("crash", {"rate": 0})
	r0 == {"Chaos rate 0 is not a fraction above 0 and at most 1"}
}

test_denies_duration_out_of_range if {
	r := chaos.reasons with input as req("slow", {"duration": 120})
	r == {"Chaos duration 120s is not above 0 and at most 60s"}
}

test_denies_unknown_mode if {
	r := chaos.reasons with input as req("melt", {})
	r == {"Chaos mode melt is not one of slow, error, crash, hang"}
}

test_denies_no_containers if {
	r := chaos.reasons with input as req("hang", {"containers": []})
	r == {"Chaos names no container"}
}

test_denies_what_is_not_chaos if {
	not chaos.allow with input as req("hang", {"operation": "deploy"})
}

test_codes if {
	d := chaos.deny with input as req("error", {"rate": 2})
	d == {{"code": "rate_out_of_range", "reason": "Chaos rate 2 is not a fraction above 0 and at most 1", "transient": false}}
}
