// Package verdict judges a canary against stable over the same window:
// is the canary's error rate significantly higher than stable's (a
// one-sided two-proportion z-test), or its p99 latency more than a factor
// above stable's? It is pure: figures in, a verdict out, with the
// statistic and the sample sizes, so the policy, the journal and the audit
// can show why. Kayenta does this with a judge service; here it is a
// function.
package verdict

import (
	"fmt"
	"math"
)

// Outcome of a comparison.
type Outcome string

const (
	Pass Outcome = "pass"
	Fail Outcome = "fail"
	// InsufficientData: a track has fewer requests than the test needs.
	// It is its own outcome, never a pass.
	InsufficientData Outcome = "insufficient_data"
)

// MinP99DeltaMs is how far above stable's a canary's p99 must also be
// before the factor counts: at a few milliseconds, histogram buckets make
// ratios meaningless (2ms against 1ms is "twice as slow").
const MinP99DeltaMs = 10

// Config is the test's parameters (manifest policy.relative).
type Config struct {
	// Confidence of the one-sided test, e.g. 0.95: the canary fails when
	// a difference this large would arise by chance less than 5% of the
	// time if both had the same error rate.
	Confidence float64
	// MinRequests each track needs in the window for the test to judge.
	MinRequests float64
	// MaxP99Factor fails a canary whose p99 is more than this times
	// stable's (and MinP99DeltaMs above it); 0 turns the check off.
	MaxP99Factor float64
}

// Sample is one track's figures over the window.
type Sample struct {
	Requests float64
	Errors   float64
	P99Ms    float64
}

// Verdict is the comparison's outcome and everything it was based on.
type Verdict struct {
	Outcome Outcome `json:"verdict"`
	// Z is the two-proportion statistic (canary minus stable, pooled
	// standard error); ZCritical the value it must exceed to fail; PValue
	// the one-sided p-value.
	Z               float64  `json:"z"`
	ZCritical       float64  `json:"z_critical"`
	PValue          float64  `json:"p_value"`
	Confidence      float64  `json:"confidence"`
	CanaryRequests  float64  `json:"canary_requests"`
	StableRequests  float64  `json:"stable_requests"`
	CanaryErrorRate float64  `json:"canary_error_rate"`
	StableErrorRate float64  `json:"stable_error_rate"`
	P99Ratio        float64  `json:"p99_ratio,omitempty"`
	MaxP99Factor    float64  `json:"max_p99_factor,omitempty"`
	Reasons         []string `json:"reasons,omitempty"`
}

// ZCritical is the one-sided critical value at confidence c: the c
// quantile of the standard normal distribution.
func ZCritical(c float64) float64 { return math.Sqrt2 * math.Erfinv(2*c-1) }

// Compare judges canary against stable.
func Compare(canary, stable Sample, c Config) Verdict {
	v := Verdict{Outcome: Pass, Confidence: c.Confidence, ZCritical: round(ZCritical(c.Confidence), 4),
		CanaryRequests: canary.Requests, StableRequests: stable.Requests, MaxP99Factor: c.MaxP99Factor, PValue: 1}
	if canary.Requests < c.MinRequests || stable.Requests < c.MinRequests || canary.Requests <= 0 || stable.Requests <= 0 {
		v.Outcome = InsufficientData
		v.Reasons = []string{fmt.Sprintf("Relative verdict: insufficient data: canary %.0f and stable %.0f requests in window, need %.0f each",
			canary.Requests, stable.Requests, c.MinRequests)}
		return v
	}
	p1 := clamp01(canary.Errors / canary.Requests)
	p2 := clamp01(stable.Errors / stable.Requests)
	v.CanaryErrorRate, v.StableErrorRate = round(p1, 6), round(p2, 6)
	pooled := (p1*canary.Requests + p2*stable.Requests) / (canary.Requests + stable.Requests)
	if se := math.Sqrt(pooled * (1 - pooled) * (1/canary.Requests + 1/stable.Requests)); se > 0 {
		z := (p1 - p2) / se
		v.Z, v.PValue = round(z, 4), round(0.5*math.Erfc(z/math.Sqrt2), 6)
		if z > ZCritical(c.Confidence) {
			v.Outcome = Fail
			v.Reasons = append(v.Reasons, fmt.Sprintf("Relative verdict: canary error rate %.2f%% is significantly higher than stable's %.2f%% (z %.2f > %.2f at %v%% confidence, %.0f vs %.0f requests)",
				100*p1, 100*p2, z, ZCritical(c.Confidence), round(100*c.Confidence, 2), canary.Requests, stable.Requests))
		}
	}
	if c.MaxP99Factor > 0 && stable.P99Ms > 0 && !math.IsNaN(canary.P99Ms) {
		v.P99Ratio = round(canary.P99Ms/stable.P99Ms, 4)
		if canary.P99Ms > c.MaxP99Factor*stable.P99Ms && canary.P99Ms-stable.P99Ms > MinP99DeltaMs {
			v.Outcome = Fail
			v.Reasons = append(v.Reasons, fmt.Sprintf("Relative verdict: canary p99 %.0fms is %.2f× stable's %.0fms (more than %v×)",
				canary.P99Ms, canary.P99Ms/stable.P99Ms, stable.P99Ms, c.MaxP99Factor))
		}
	}
	return v
}

// Input is v as the canary-safety policy's input.relative.
func (v Verdict) Input() map[string]any {
	reasons := make([]any, len(v.Reasons))
	for i, r := range v.Reasons {
		reasons[i] = r
	}
	return map[string]any{
		"verdict": string(v.Outcome), "z": v.Z, "z_critical": v.ZCritical, "p_value": v.PValue, "confidence": v.Confidence,
		"canary_requests": v.CanaryRequests, "stable_requests": v.StableRequests,
		"canary_error_rate": v.CanaryErrorRate, "stable_error_rate": v.StableErrorRate,
		"p99_ratio": v.P99Ratio, "max_p99_factor": v.MaxP99Factor, "reasons": reasons,
	}
}

func clamp01(f float64) float64 {
	if math.IsNaN(f) {
		return 0
	}
	return min(max(f, 0), 1)
}

func round(f float64, digits int) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	p := math.Pow(10, float64(digits))
	return math.Round(f*p) / p
}
