package docker

import (
	"context"

	"github.com/swiftdeploy/swiftdeploy/pkg/hostfacts"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/observe"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
	"github.com/swiftdeploy/swiftdeploy/pkg/verdict"
)

// judge is the canary-safety decision on the revision's own windows, the
// app's and nginx's, with why data is missing added to the reasons.
func (t *Target) judge(ctx context.Context, m *manifest.Manifest, revision string) (policy.Decision, targets.Figures) {
	st := t.Observer.Stats(stack.TrackCanary, revision, m.Policy.MinRequests)
	px := t.Proxy.Stats(stack.TrackCanary, revision, m.Policy.MinRequests)
	in := CanaryInput(stack.TrackCanary, st, px)
	rel := t.withRelative(&in, m, revision, st)
	dec := t.Policies.CanarySafety(ctx, in, targets.Thresholds(m))
	if !dec.Allowed && st.Outcome != metrics.OK && st.Reason != "" {
		dec.Reasons = append(dec.Reasons, st.Reason)
	}
	if !dec.Allowed && px.Outcome != metrics.OK && px.Reason != "" {
		dec.Reasons = append(dec.Reasons, px.Reason)
	}
	outcome := st.Outcome
	if rel == verdict.InsufficientData && outcome == metrics.OK {
		// Too few requests to compare with stable is no data, not a
		// failure of the canary (and never a pass).
		outcome = metrics.InsufficientData
	}
	return dec, targets.Figures{Outcome: outcome, Relative: in.Relative, Requests: st.Requests, ErrorRate: st.ErrorRate, P99Ms: st.P99Ms, ReqPerSec: st.ReqPerSec, Proxy: px}
}

// CanaryInput turns a revision's figures, the app's (st) and nginx's
// (px), into the canary-safety policy input; unless a view's outcome is OK
// (fresh data, enough requests) its figures stay nil so the policy denies
// (fail closed).
func CanaryInput(track string, st observe.Stats, px metrics.Stats) policy.CanaryInput {
	in := policy.CanaryInput{Mode: track}
	req := st.Requests
	in.Requests = &req
	if st.Outcome == metrics.OK {
		rps, er, p99 := st.ReqPerSec, st.ErrorRate, st.P99Ms
		in.ReqPerSec, in.ErrorRate, in.P99Ms = &rps, &er, &p99
	}
	withProxy(&in, px)
	return in
}

// withProxy adds nginx's figures to a canary-safety input: the request
// count always, the error rate and p99 only when the outcome is OK, so
// that the policy denies on missing data (fail closed).
func withProxy(in *policy.CanaryInput, px metrics.Stats) {
	req := px.Requests
	in.ProxyRequests = &req
	if px.Outcome == metrics.OK {
		er, p99 := px.ErrorRate, px.P99Ms
		in.ProxyErrorRate, in.ProxyP99Ms = &er, &p99
	}
}

// infraDecision evaluates the infrastructure policy on fresh host facts.
func (t *Target) infraDecision(ctx context.Context, m *manifest.Manifest) policy.Decision {
	var in policy.InfraInput
	end := trace.Begin(ctx, "gate: host facts", m.Policy.DiskPath)
	if t.HostFacts != nil {
		in = t.HostFacts(m.Policy.DiskPath)
	} else {
		in = hostfacts.Collect(m.Policy.DiskPath).InfraInput()
	}
	end()
	end = trace.Begin(ctx, "gate: policy", "infrastructure")
	defer end()
	return t.Policies.Infrastructure(ctx, in, targets.Thresholds(m))
}
