package verdict

import (
	"math"
	"strings"
	"testing"
)

func TestZCritical(t *testing.T) {
	for c, want := range map[float64]float64{0.95: 1.6449, 0.99: 2.3263, 0.5: 0} {
		if got := ZCritical(c); math.Abs(got-want) > 1e-3 {
			t.Errorf("ZCritical(%v) = %.4f, want %.4f", c, got, want)
		}
	}
}

func TestCompare(t *testing.T) {
	cfg := Config{Confidence: 0.95, MinRequests: 100, MaxP99Factor: 2}
	tests := []struct {
		name           string
		canary, stable Sample
		cfg            Config
		want           Outcome
		z              float64 // expected statistic, NaN to skip
		reason         string
	}{
		// The case: 3% against 0%, at a 10% canary's sample.
		{"3% vs 0% fails", Sample{300, 9, 40}, Sample{2700, 0, 40}, cfg, Fail, 9.0, "significantly higher than stable's 0.00%"},
		{"equal rates pass", Sample{300, 3, 40}, Sample{2700, 27, 40}, cfg, Pass, 0, ""},
		{"no errors at all pass", Sample{300, 0, 40}, Sample{2700, 0, 40}, cfg, Pass, 0, ""},
		{"canary better passes", Sample{300, 0, 40}, Sample{2700, 27, 40}, cfg, Pass, math.NaN(), ""},
		// 2 errors in 200 against 0.5% of 2000: within chance.
		{"small difference within chance", Sample{200, 2, 40}, Sample{2000, 10, 40}, cfg, Pass, math.NaN(), ""},
		// The same difference with 10x the traffic is significant.
		{"small difference, large sample", Sample{20000, 200, 40}, Sample{200000, 1000, 40}, cfg, Fail, math.NaN(), "significantly higher"},
		{"stricter confidence lets a borderline one pass", Sample{300, 4, 40}, Sample{2700, 14, 40}, Config{Confidence: 0.999, MinRequests: 100}, Pass, math.NaN(), ""},
		{"too few canary requests", Sample{50, 5, 40}, Sample{2700, 0, 40}, cfg, InsufficientData, math.NaN(), "insufficient data: canary 50 and stable 2700 requests"},
		{"too few stable requests", Sample{300, 0, 40}, Sample{10, 0, 40}, cfg, InsufficientData, math.NaN(), "need 100 each"},
		{"p99 more than the factor", Sample{300, 0, 130}, Sample{2700, 0, 40}, cfg, Fail, 0, "canary p99 130ms is 3.25× stable's 40ms"},
		{"p99 within the factor", Sample{300, 0, 70}, Sample{2700, 0, 40}, cfg, Pass, 0, ""},
		{"p99 ratio on tiny latencies ignored", Sample{300, 0, 6}, Sample{2700, 0, 2}, cfg, Pass, 0, ""},
		{"p99 check off", Sample{300, 0, 900}, Sample{2700, 0, 40}, Config{Confidence: 0.95, MinRequests: 100}, Pass, 0, ""},
		{"both fail, both reasons", Sample{300, 30, 500}, Sample{2700, 0, 40}, cfg, Fail, math.NaN(), "p99"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Compare(tc.canary, tc.stable, tc.cfg)
			if v.Outcome != tc.want {
				t.Errorf("outcome %s, want %s: %+v", v.Outcome, tc.want, v)
			}
			if !math.IsNaN(tc.z) && math.Abs(v.Z-tc.z) > 0.05 {
				t.Errorf("z = %.3f, want %.2f", v.Z, tc.z)
			}
			if got := strings.Join(v.Reasons, "; "); tc.reason != "" && !strings.Contains(got, tc.reason) {
				t.Errorf("reasons %q lack %q", got, tc.reason)
			}
			if tc.want == Pass && len(v.Reasons) > 0 {
				t.Errorf("a pass with reasons: %v", v.Reasons)
			}
			if v.CanaryRequests != tc.canary.Requests || v.StableRequests != tc.stable.Requests {
				t.Errorf("sample sizes not carried: %+v", v)
			}
			in := v.Input()
			if in["verdict"] != string(v.Outcome) || in["z"] != v.Z || in["canary_requests"] != tc.canary.Requests {
				t.Errorf("policy input %v", in)
			}
		})
	}
}

// The test's false-failure rate at equal rates stays near 1-confidence:
// a deterministic sweep over plausible counts, not a random simulation.
func TestCompareNoFalseFailuresAtEqualRates(t *testing.T) {
	cfg := Config{Confidence: 0.95, MinRequests: 100}
	for n := 200.0; n <= 5000; n += 200 {
		for _, rate := range []float64{0, 0.001, 0.01, 0.05} {
			if v := Compare(Sample{n, rate * n, 0}, Sample{9 * n, rate * 9 * n, 0}, cfg); v.Outcome != Pass {
				t.Errorf("equal rates %.3f at n=%.0f failed: %+v", rate, n, v)
			}
		}
	}
}
