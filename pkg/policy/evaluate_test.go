package policy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/fstest"
)

// Evaluate re-judges an input as the journal recorded it (decoded from
// JSON: every number a float64), and tells a policy that did not decide
// (Failure) from one that denied by its own reasons.
func TestEvaluate(t *testing.T) {
	const infraHead = "package swiftdeploy.infrastructure\n\n"
	recorded := `{"cpu_count":2,"cpu_load":4.8,"disk_free_gb":50,"disk_path":"/","mem_available_bytes":1073741824,"thresholds":{"max_cpu_load":2,"min_disk_gb":10}}`
	tests := []struct {
		name    string
		infra   string // infrastructure.rego; "" for the default policies
		policy  string
		input   string
		ctx     func() context.Context
		allowed bool
		reasons []string // prefixes, in order
		failure string
	}{
		{name: "default policy denies the recorded load", policy: Infrastructure, input: recorded,
			reasons: []string{"CPU load 2.4 per core (4.8 on 2 CPUs) above 2.0"}},
		{name: "default policy allows a recorded idle host", policy: Infrastructure,
			input: strings.Replace(recorded, `"cpu_load":4.8`, `"cpu_load":0.4`, 1), allowed: true},
		{name: "default canary policy on a recorded canary input", policy: CanarySafety,
			input:   `{"mode":"canary","requests":900,"req_per_sec":15,"error_rate":0.03,"p99_latency":120,"proxy_requests":900,"proxy_error_rate":0.03,"proxy_p99_latency":125,"thresholds":{"max_error_rate":0.01,"max_p99_ms":500,"min_requests":20}}`,
			reasons: []string{"Error rate exceeds 1% threshold", "Proxy error rate exceeds 1% threshold"}},
		{name: "a recorded null reading denies", policy: CanarySafety,
			input:   `{"mode":"canary","requests":0,"req_per_sec":null,"error_rate":null,"p99_latency":null,"proxy_requests":null,"proxy_error_rate":null,"proxy_p99_latency":null,"thresholds":{"max_error_rate":0.01,"max_p99_ms":500,"min_requests":20}}`,
			reasons: []string{"Error rate unknown", "Insufficient data: 0 requests", "Insufficient data: no request count from nginx", "P99 latency unknown", "Proxy P99 latency unknown", "Proxy error rate unknown"}},
		{name: "undefined allow", infra: infraHead + "allow if input.cpu_load < 1\n", policy: Infrastructure, input: recorded,
			reasons: []string{"policy infrastructure returned no decision (undefined)"}, failure: FailureUndefined},
		{name: "a policy missing from the set is undefined", infra: infraHead + "allow := true\n", policy: CanarySafety, input: `{}`,
			reasons: []string{"policy canary_safety returned no decision (undefined)"}, failure: FailureUndefined},
		{name: "evaluation error", infra: infraHead + "default allow := false\n\nallow if count(deny) == 0\n\ndeny contains \"x\" if to_number(input.disk_path) > 1\n",
			policy: Infrastructure, input: recorded, reasons: []string{"policy evaluation failed: "}, failure: FailureError},
		{name: "non-boolean allow", infra: infraHead + "allow := 1\n", policy: Infrastructure, input: recorded,
			reasons: []string{"policy infrastructure returned a non-boolean allow: 1"}, failure: FailureError},
		{name: "a policy the engine does not know", policy: "rate_limit", input: `{}`,
			reasons: []string{"policy rate_limit: not a policy the engine evaluates"}, failure: FailureError},
		{name: "cancelled", policy: Infrastructure, input: recorded, ctx: cancelled,
			reasons: []string{"policy evaluation failed: "}, failure: FailureError},
		{name: "a policy's own denial is no failure", infra: infraHead + "allow := false\n\ndeny contains \"no\"\n", policy: Infrastructure, input: recorded,
			reasons: []string{"no"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := defaultEngine(t)
			if tc.infra != "" {
				var err error
				if e, err = New(fstest.MapFS{"infrastructure.rego": {Data: []byte(tc.infra)}}); err != nil {
					t.Fatal(err)
				}
			}
			var in map[string]any
			if err := json.Unmarshal([]byte(tc.input), &in); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			d := e.Evaluate(ctx, tc.policy, in)
			if d.Allowed != tc.allowed || d.Failure != tc.failure || d.Policy != tc.policy || len(d.Reasons) != len(tc.reasons) {
				t.Fatalf("got allowed=%v failure=%q policy=%q reasons=%q; want allowed=%v failure=%q reasons %q", d.Allowed, d.Failure, d.Policy, d.Reasons, tc.allowed, tc.failure, tc.reasons)
			}
			for i, r := range tc.reasons {
				if !strings.HasPrefix(d.Reasons[i], r) {
					t.Errorf("reason %d = %q, want it to start with %q", i, d.Reasons[i], r)
				}
			}
		})
	}
}
