package kubernetes

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/metrics"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
	"github.com/swiftdeploy/swiftdeploy/pkg/verdict"
)

// Report is status on the Kubernetes target: everything from the
// informers' cache of the API (Deployments' generation,
// observedGeneration and replica counts, the HTTPRoute's weights, the
// pods), the figures from Prometheus, never from what was applied. The
// plan is computed from the cache too: no call to the API server, no dry
// run.
func (t *Target) Report(ctx context.Context, m *manifest.Manifest, st targets.Decisions, s *api.Status) {
	d := t.d
	ctx, cancel := context.WithTimeout(ctx, targets.ReportTimeout)
	defer cancel()
	obs, err := t.api.Observe(ctx, m.Project, extras(m))
	if err != nil {
		s.EngineError = err.Error()
		return
	}
	ks := &api.KubeStatus{Namespace: t.cfg.Namespace, Deployments: []api.KubeDeployment{}}
	ks.Leading, ks.Leader = t.Leader()
	for _, kind := range slices.Sorted(maps.Keys(obs.Unseen)) {
		ks.Warnings = append(ks.Warnings, obs.Unseen[kind])
	}
	names := kubetarget.PrimaryNames(m)
	if m.IsNamed() {
		ks.Deployments = append(ks.Deployments, kubeWorkloads(obs)...)
		s.Services = kubeServicesStatus(stack.FromManifest(m, st.Options(m)), obs)
	} else {
		for _, tr := range []struct{ track, name string }{{stack.TrackStable, names.StableDeployment}, {stack.TrackCanary, names.CanaryDeployment}} {
			if dep, ok := obs.Deployments[tr.name]; ok {
				ks.Deployments = append(ks.Deployments, deploymentStatus(dep, tr.track))
			}
		}
	}
	// The route of the primary service (in the named form, the weights of
	// its rule).
	route, weights, routed := kubetarget.PrimaryWeights(obs, names)
	if routed {
		ks.Route, ks.RouteWeights = route, weights
	}
	s.Kubernetes = ks
	if sv := serving(m, obs); sv.Mode != "" {
		s.Mode, s.StableImage = sv.Mode, sv.StableImage
		if sv.Mode == stack.TrackCanary {
			s.CanaryImage, s.CanaryWeight = sv.CanaryImage, sv.CanaryWeight
		}
		s.Revision = obs.Routes[route].ResourceVersion
	}
	for _, p := range obs.Pods {
		s.Containers = append(s.Containers, api.Container{Name: p.Name, Role: stack.RoleApp, Track: p.Labels[k8srender.LabelTrack],
			Service: p.Labels[k8srender.LabelService], Image: podImage(p), State: podState(p), IP: p.Status.PodIP})
	}
	if !s.Down {
		desired, err := t.desired(m, st)
		if err != nil {
			s.EngineError = err.Error()
			return
		}
		plan, err := t.plan(ctx, desired, kubetarget.Revision(desired), obs)
		if err != nil {
			s.EngineError = err.Error()
		} else {
			s.Pending = plan.Lines()
			done, _ := kubetarget.Converged(desired, obs, plan)
			s.Converged = done && s.LastReconcile != nil && s.LastReconcile.Error == ""
			// What has not rolled out is pending too: the route waits.
			for _, dep := range ks.Deployments {
				if !dep.RolledOut && len(plan.Ops) == 0 {
					kind := dep.Kind
					if kind == "" {
						kind = "Deployment"
					}
					s.Pending = append(s.Pending, "rollout: "+kind+" "+dep.Name+": "+dep.Problem)
				}
			}
		}
		s.Policies = append(s.Policies, *targets.APIDecision(d.Policies.ClusterDecision(ctx, kubetarget.ClusterFacts(ctx, t.api, desired))))
	}
	tracks := []string{stack.TrackStable}
	if s.Mode == stack.TrackCanary {
		tracks = append(tracks, stack.TrackCanary)
	}
	for _, track := range tracks {
		ts, _ := t.trackStats(ctx, m, "", obs, track)
		s.Tracks = append(s.Tracks, ts.api)
	}
	if s.Mode == stack.TrackCanary {
		dec, _ := t.canaryDecision(ctx, m, "", obs)
		s.Policies = append(s.Policies, *targets.APIDecision(dec))
	}
	return
}

func deploymentStatus(dep appsv1.Deployment, track string) api.KubeDeployment {
	done, why := kubetarget.RolledOut(dep)
	k := api.KubeDeployment{
		Name: dep.Name, Track: track, Image: kubetarget.ImageOf(dep),
		Generation: dep.Generation, ObservedGeneration: dep.Status.ObservedGeneration,
		Updated: dep.Status.UpdatedReplicas, Ready: dep.Status.ReadyReplicas, Available: dep.Status.AvailableReplicas,
		RolledOut: done, Problem: why,
	}
	if dep.Spec.Replicas != nil {
		k.Replicas = *dep.Spec.Replicas
	}
	return k
}

func podImage(p corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if c.Name == "app" {
			return c.Image
		}
	}
	return ""
}

// podState is the pod's phase, and whether it is Ready (what a Service
// sends traffic to).
func podState(p corev1.Pod) string {
	state := strings.ToLower(string(p.Status.Phase))
	if p.DeletionTimestamp != nil {
		return "terminating"
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status == corev1.ConditionTrue {
				return state + ", ready"
			}
			return state + ", not ready"
		}
	}
	return state
}

// trackFigures is one track's figures from Prometheus, for status and for
// the canary-safety policy.
type trackFigures struct {
	api api.TrackStats
	in  policy.CanaryInput
	why []string // why figures are missing
}

// trackStats asks Prometheus for a track's figures over
// metrics.window. No Prometheus named, no current ReplicaSet, a query
// without data: each leaves the figures nil with its reason, so the
// policy denies.
//
// service names the named web service ("" the primary): its track's
// pods only, by their service label too in the named form.
func (t *Target) trackStats(ctx context.Context, m *manifest.Manifest, service string, obs kubetarget.Observed, track string) (trackFigures, error) {
	noProxy := false // no nginx here: the Gateway's figures are not read, only the app's are judged
	out := trackFigures{api: api.TrackStats{Track: track, Outcome: string(metrics.MissingData)}, in: policy.CanaryInput{Mode: track, ProxyView: &noProxy}}
	fail := func(why string) (trackFigures, error) {
		out.why = append(out.why, why)
		out.api.Reason = why
		return out, nil
	}
	if m.Metrics.Prometheus == "" {
		return fail("metrics.prometheus is not set: the Kubernetes target reads the canary's figures from Prometheus")
	}
	n := kubetarget.NamesOf(m, service)
	name := n.StableDeployment
	if track == stack.TrackCanary {
		name = n.CanaryDeployment
	}
	dep, ok := obs.Deployments[name]
	if !ok {
		return fail("no Deployment for the " + track + " track")
	}
	hash, err := kubetarget.CurrentPodTemplateHash(obs, dep)
	if err != nil {
		return fail(err.Error())
	}
	out.api.Revision = hash
	sel := kubetarget.TrackSelector(t.cfg.Namespace, m.Project, track, hash)
	if service != "" {
		// Another service's pods may share the primary's track and, in
		// principle, a template hash: its own label tells them apart.
		sel = kubetarget.ServiceSelector(sel, service)
	}
	q := kubetarget.QueriesFor(sel, m.Metrics.Window.D())
	p := kubetarget.Prometheus{URL: m.Metrics.Prometheus}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := p.TrackStats(qctx, q)
	if err != nil {
		return fail(err.Error())
	}
	out.in.Requests, out.in.ReqPerSec, out.in.ErrorRate, out.in.P99Ms = st.Requests, st.ReqPerSec, st.ErrorRate, st.P99Ms
	val := func(f *float64) float64 {
		if f == nil {
			return 0
		}
		return *f
	}
	out.api.Requests, out.api.ReqPerSec = targets.Round2(val(st.Requests)), targets.Round2(val(st.ReqPerSec))
	out.api.ErrorRate, out.api.P99Ms = targets.Round4(val(st.ErrorRate)), targets.Round2(val(st.P99Ms))
	switch {
	case len(st.Missing) > 0:
		out.why = append(out.why, "Prometheus has no data for "+strings.Join(st.Missing, "; "))
		out.api.Reason = out.why[0]
	case val(st.Requests) < float64(m.Policy.MinRequests):
		out.api.Outcome = string(metrics.InsufficientData)
	default:
		out.api.Outcome = string(metrics.OK)
	}
	return out, nil
}

// canaryDecision is canary safety on Kubernetes, from Prometheus;
// why figures are missing is added to the policy's reasons.
func (t *Target) canaryDecision(ctx context.Context, m *manifest.Manifest, service string, obs kubetarget.Observed) (policy.Decision, trackFigures) {
	ts, _ := t.trackStats(ctx, m, service, obs, stack.TrackCanary)
	if r := m.Policy.Relative; r != nil {
		// The canary-vs-stable verdict, on both tracks' figures from
		// Prometheus over the same window (as Docker's withRelative).
		st, _ := t.trackStats(ctx, m, service, obs, stack.TrackStable)
		cfg := verdict.Config{Confidence: r.Confidence, MinRequests: float64(r.MinRequests), MaxP99Factor: r.MaxP99Factor}
		ts.in.Relative = verdict.Compare(promSample(ts), promSample(st), cfg).Input()
	}
	dec := t.d.Policies.CanarySafety(ctx, ts.in, targets.Thresholds(m))
	if !dec.Allowed {
		dec.Reasons = append(dec.Reasons, ts.why...)
	}
	return dec, ts
}

// promSample is a track's figures for the verdict; a track without data
// counts as no requests (the verdict then says insufficient data).
func promSample(ts trackFigures) verdict.Sample {
	val := func(f *float64) float64 {
		if f == nil {
			return 0
		}
		return *f
	}
	if ts.in.Requests == nil || ts.in.ErrorRate == nil {
		return verdict.Sample{}
	}
	req := val(ts.in.Requests)
	return verdict.Sample{Requests: req, Errors: val(ts.in.ErrorRate) * req, P99Ms: val(ts.in.P99Ms)}
}
