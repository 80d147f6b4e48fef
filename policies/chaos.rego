# Chaos policy: may `swiftctl chaos` inject this failure into these
# containers? It is the gate of each chaos plan, evaluated once before the
# plan's first operation (a deny hits nothing). `chaos recover` undoes
# chaos and is never gated.
#
# Input (built by swiftdeployd, see docs/policy.md):
#   operation        "chaos"
#   mode             slow | error | crash | hang
#   rate             fraction of requests to fail (error, crash), else 0
#   duration         seconds of delay per request (slow), else 0
#   track            stable | canary
#   service          the named web service aimed at ("" for the primary)
#   project          the project
#   canary_running   whether a canary runs now
#   containers       the app containers the plan would hit
#
# The default allows chaos within the bounds swiftctl itself enforces, so
# a request that went around swiftctl meets the same limits. A stricter
# policy might, for example, refuse chaos on the stable track while no
# canary runs (everything users reach would fail):
#
#   deny contains lasting("stable_only", "Chaos on the stable track while no canary runs") if {
#       input.track == "stable"
#       not input.canary_running
#   }
package swiftdeploy.chaos

allow := count(deny) == 0

# reasons are the deny reasons as text, for tests and readers.
reasons := {d.reason | some d in deny}

deny contains lasting("not_chaos", "Not a chaos operation") if input.operation != "chaos"

deny contains lasting("mode_unknown", msg) if {
	not input.mode in {"slow", "error", "crash", "hang"}
	msg := sprintf("Chaos mode %v is not one of slow, error, crash, hang", [input.mode])
}

deny contains lasting("rate_out_of_range", msg) if {
	input.mode in {"error", "crash"}
	not fraction(input.rate)
	msg := sprintf("Chaos rate %v is not a fraction above 0 and at most 1", [input.rate])
}

deny contains lasting("duration_out_of_range", msg) if {
	input.mode == "slow"
	not slow_duration(input.duration)
	msg := sprintf("Chaos duration %vs is not above 0 and at most 60s", [input.duration])
}

deny contains lasting("no_containers", "Chaos names no container") if count(object.get(input, "containers", [])) == 0

fraction(x) if {
	is_number(x)
	x > 0
	x <= 1
}

slow_duration(x) if {
	is_number(x)
	x > 0
	x <= 60
}

lasting(code, reason) := {"code": code, "reason": reason, "transient": false}
