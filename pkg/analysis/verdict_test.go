package analysis

import (
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
)

// Classify: a breach fails whatever view lacks data; otherwise no
// data is its own outcome; only two complete views that the policy allows
// pass.
func TestClassify(t *testing.T) {
	deny := func(codes ...string) policy.Decision {
		return policy.Decision{Reasons: codes, Codes: codes}
	}
	ok, missing, thin := metrics.OK, metrics.MissingData, metrics.InsufficientData
	tests := []struct {
		name       string
		dec        policy.Decision
		app, proxy metrics.Outcome
		want       string
	}{
		{"allowed, both views", policy.Decision{Allowed: true}, ok, ok, Pass},
		{"allowed by a lax policy without nginx's data", policy.Decision{Allowed: true}, ok, missing, NoData},
		{"app breach", deny("error_rate_high"), ok, ok, Fail},
		{"nginx breach while the app is silent", deny("error_rate_unknown", "p99_latency_unknown", "proxy_error_rate_high"), missing, ok, Fail},
		{"nginx's latency breach", deny("proxy_p99_latency_high"), ok, ok, Fail},
		{"both silent", deny("error_rate_unknown", "proxy_error_rate_unknown"), missing, missing, NoData},
		{"too few requests through nginx", deny("proxy_requests_low", "proxy_error_rate_unknown"), ok, thin, NoData},
		{"relative verdict short of data", deny("relative_insufficient_data"), thin, ok, NoData},
		{"relative fail", deny("relative_fail"), ok, ok, Fail},
		{"a custom policy's own code is a breach", deny("my_slo_burn"), missing, ok, Fail},
		{"a reason without a code and no data", policy.Decision{Reasons: []string{"policy evaluation failed: x"}}, missing, ok, NoData},
		{"a reason without a code, all data", policy.Decision{Reasons: []string{"policy evaluation failed: x"}}, ok, ok, Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.dec, tt.app, tt.proxy); got != tt.want {
				t.Errorf("Classify = %s, want %s", got, tt.want)
			}
		})
	}
}
