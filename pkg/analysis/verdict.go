package analysis

import (
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
)

// A check's outcomes, as status and the journal show them.
const (
	Pass   = "pass"
	Fail   = "fail"
	NoData = "no_data"
	// Grace is a check that found no data when it was the first this
	// daemon made of the rollout (its windows start empty): not counted.
	Grace = "grace"
)

// Canary-safety codes that say a figure is missing or too thin to judge,
// not that one crossed a limit; the relative verdict's short sample is one.
var noDataCodes = map[string]bool{
	"requests_unknown": true, "requests_low": true, "error_rate_unknown": true, "p99_latency_unknown": true,
	"proxy_requests_unknown": true, "proxy_requests_low": true, "proxy_error_rate_unknown": true, "proxy_p99_latency_unknown": true,
	"relative_insufficient_data": true,
}

// breach reports whether a denial rests on a figure the policy had: a
// reason with a code that is not a no-data code. A canary whose app
// metrics fell silent while nginx saw it fail is failing, not merely
// unknown.
func breach(dec policy.Decision) bool {
	if dec.Allowed {
		return false
	}
	for _, c := range dec.Codes {
		if c != "" && !noDataCodes[c] {
			return true
		}
	}
	return false
}

// Classify is a check's outcome from its canary-safety decision (the
// relative verdict's included) and the outcomes of both views: a breach
// fails whatever else is missing; otherwise a view without data is no
// data (never a pass); otherwise the decision.
func Classify(dec policy.Decision, app, proxy metrics.Outcome) string {
	switch {
	case breach(dec):
		return Fail
	case app != metrics.OK || proxy != metrics.OK:
		return NoData
	case !dec.Allowed:
		return Fail
	}
	return Pass
}
