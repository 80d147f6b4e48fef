package policy

import "context"

// Chaos is the policy that gates a chaos plan (`swiftctl chaos`): Rego
// package swiftdeploy.chaos, evaluated once before the plan's first
// operation. Recovering from chaos is never gated.
const Chaos = "chaos"

// ChaosInput is what the chaos policy judges: the request and the
// containers the plan would hit.
type ChaosInput struct {
	Mode     string
	Rate     float64
	Duration float64 // seconds
	Track    string
	Service  string
	Project  string
	// CanaryRunning: a canary runs now.
	CanaryRunning bool
	Containers    []string
}

// ChaosDecision decides whether a chaos plan may run.
func (e *Engine) ChaosDecision(ctx context.Context, in ChaosInput) Decision {
	containers := make([]any, 0, len(in.Containers))
	for _, c := range in.Containers {
		containers = append(containers, c)
	}
	return e.decide(ctx, Chaos, map[string]any{
		"operation":      "chaos",
		"mode":           in.Mode,
		"rate":           finiteValue(in.Rate),
		"duration":       finiteValue(in.Duration),
		"track":          in.Track,
		"service":        in.Service,
		"project":        in.Project,
		"canary_running": in.CanaryRunning,
		"containers":     containers,
	})
}
