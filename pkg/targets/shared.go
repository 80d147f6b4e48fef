package targets

import (
	"errors"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
)

// ReportTimeout bounds the fresh look a target's Report takes at what
// runs: status must answer even when the engine or API server does not.
const ReportTimeout = 5 * time.Second

// ErrReplicaGone: a replica listed no longer exists (a deploy replaced
// it); OpenLog wraps it, and the controller leaves that replica out.
var ErrReplicaGone = errors.New("replica gone")

// PlanError is a change that could not be planned (the API server
// refused a dry run): a failed deploy, unlike a target that cannot be
// reached (which the controller shows as the engine's error).
type PlanError struct{ Err error }

func (e *PlanError) Error() string { return e.Err.Error() }
func (e *PlanError) Unwrap() error { return e.Err }

// Figures are the part of a window's figures of the canary that an
// analysis check reports, as Judge read them.
type Figures struct {
	Outcome                               metrics.Outcome
	Requests, ErrorRate, P99Ms, ReqPerSec float64
	Relative                              map[string]any // the verdict's input, if any
	Proxy                                 metrics.Stats  // nginx's figures
	// NoProxy: the target has no proxy view (Kubernetes: Prometheus's
	// figures of the app only).
	NoProxy bool
}

// Thresholds are m's policy thresholds, as the policies take them.
func Thresholds(m *manifest.Manifest) policy.Thresholds {
	return policy.Thresholds{
		MinDiskGB:    m.Policy.MinDiskGB,
		MaxCPULoad:   m.Policy.MaxCPULoad,
		MaxErrorRate: m.Policy.MaxErrorRate,
		MaxP99Ms:     m.Policy.MaxP99Ms,
		MinRequests:  m.Policy.MinRequests,
	}
}

// APIDecision is a policy decision as status and the journal show it.
func APIDecision(dec policy.Decision) *api.Decision {
	return &api.Decision{Policy: dec.Policy, Allowed: dec.Allowed, Reasons: dec.Reasons, Input: dec.Input, Transient: dec.Transient}
}

// Round2 and Round4 round a figure for status (two and four decimals).
func Round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
func Round4(f float64) float64 { return float64(int64(f*10000+0.5)) / 10000 }
