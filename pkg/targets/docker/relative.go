package docker

import (
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/observe"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/verdict"
)

// withRelative adds the canary-vs-stable verdict to a canary-safety input
// when the manifest asks for one (policy.relative): the canary's window
// against the stable revision's over the same span. It returns the
// verdict's outcome ("" without one).
func (t *Target) withRelative(in *policy.CanaryInput, m *manifest.Manifest, revision string, canary observe.Stats) verdict.Outcome {
	r := m.Policy.Relative
	if r == nil {
		return ""
	}
	cfg := verdict.Config{Confidence: r.Confidence, MinRequests: float64(r.MinRequests), MaxP99Factor: r.MaxP99Factor}
	// Stable's revision is the desired stack's; deriving the stack alone
	// (not rendering nginx.conf, as t.desired does) keeps an analysis
	// check cheap.
	state := t.Decisions()
	var stable observe.Stats
	if withFiles, err := t.WithFiles(m); err == nil {
		m = withFiles
	}
	if st := stableOf(stack.FromManifest(m, state.Options(m)), revision); len(st) > 0 {
		stable = t.Observer.Stats(stack.TrackStable, st[0].Hash, r.MinRequests)
	}
	v := verdict.Compare(sample(canary), sample(stable), cfg)
	in.Relative = v.Input()
	return v.Outcome
}

// stableOf is the stable containers a canary revision is compared with:
// its own service's (several web services may run a canary at once), the
// primary's when no other service's canary has that revision.
func stableOf(st stack.Stack, revision string) []stack.App {
	for _, name := range st.CanaryServices() {
		if name == "" || name == st.CanaryService {
			continue
		}
		if apps, _ := st.CanaryOf(name); len(apps) > 0 && apps[0].Hash == revision {
			if svc := st.Service(name); svc != nil {
				return svc.Stable
			}
		}
	}
	return st.MainStable()
}

// sample is a window's figures for the verdict; figures that are not
// current (missing data) count as no requests.
func sample(st observe.Stats) verdict.Sample {
	if st.Outcome != metrics.OK && st.Outcome != metrics.InsufficientData {
		return verdict.Sample{}
	}
	return verdict.Sample{Requests: st.Requests, Errors: st.ErrorRate * st.Requests, P99Ms: st.P99Ms}
}
