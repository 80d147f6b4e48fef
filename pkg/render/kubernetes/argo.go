package kubernetes

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// The Argo Rollouts objects are typed structs of this package that mirror
// the part of the argoproj.io/v1alpha1 CRD schema the renderer writes,
// field for field and with the CRD's JSON names. Argo's own Go module
// (github.com/argoproj/argo-rollouts) is not imported: it requires
// k8s.io/kubernetes itself, with replace directives for the staging
// modules that do not apply to a module importing it, and would pull most
// of Kubernetes into SwiftDeploy's go.mod for a dozen fields. The mirror is
// held to the real schema instead: argo_schema_test.go validates every
// rendered Rollout and AnalysisTemplate against the openAPIV3Schema of the
// CRDs in that module's manifests/crds at ArgoRolloutsVersion, unknown
// fields refused, and the harness's e2e test has the API server check them
// (server-side dry-run, strict field validation) with those CRDs installed.

// ArgoRolloutsVersion is the Argo Rollouts release whose CRDs the mirror
// follows and the harness installs.
const ArgoRolloutsVersion = "v1.10.1"

// ArgoGatewayPlugin is the Argo Rollouts traffic router plugin for the
// Gateway API; the Rollout names the HTTPRoute it moves weights on.
const ArgoGatewayPlugin = "argoproj-labs/gatewayAPI"

// Rollout mirrors argoproj.io/v1alpha1 Rollout (spec only: status is the
// controller's).
type Rollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RolloutSpec `json:"spec"`
}

type RolloutSpec struct {
	Replicas             *int32                 `json:"replicas,omitempty"`
	Selector             *metav1.LabelSelector  `json:"selector"`
	Template             corev1.PodTemplateSpec `json:"template"`
	RevisionHistoryLimit *int32                 `json:"revisionHistoryLimit,omitempty"`
	Strategy             RolloutStrategy        `json:"strategy"`
}

type RolloutStrategy struct {
	Canary *CanaryStrategy `json:"canary,omitempty"`
}

type CanaryStrategy struct {
	CanaryService  string              `json:"canaryService,omitempty"`
	StableService  string              `json:"stableService,omitempty"`
	CanaryMetadata *PodMetadata        `json:"canaryMetadata,omitempty"`
	StableMetadata *PodMetadata        `json:"stableMetadata,omitempty"`
	MaxSurge       *intstr.IntOrString `json:"maxSurge,omitempty"`
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	TrafficRouting *TrafficRouting     `json:"trafficRouting,omitempty"`
	Steps          []CanaryStep        `json:"steps,omitempty"`
}

type PodMetadata struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// TrafficRouting.Plugins is free-form in the CRD
// (x-kubernetes-preserve-unknown-fields): each plugin reads its own key.
type TrafficRouting struct {
	Plugins map[string]json.RawMessage `json:"plugins,omitempty"`
}

type CanaryStep struct {
	SetWeight      *int32          `json:"setWeight,omitempty"`
	SetCanaryScale *SetCanaryScale `json:"setCanaryScale,omitempty"`
	Pause          *RolloutPause   `json:"pause,omitempty"`
	Analysis       *StepAnalysis   `json:"analysis,omitempty"`
}

type SetCanaryScale struct {
	Replicas *int32 `json:"replicas,omitempty"`
}

// RolloutPause without a duration pauses until promoted.
type RolloutPause struct {
	Duration *intstr.IntOrString `json:"duration,omitempty"`
}

type StepAnalysis struct {
	Templates []AnalysisTemplateRef `json:"templates"`
	Args      []AnalysisRunArgument `json:"args,omitempty"`
}

type AnalysisTemplateRef struct {
	TemplateName string `json:"templateName"`
}

type AnalysisRunArgument struct {
	Name      string        `json:"name"`
	Value     string        `json:"value,omitempty"`
	ValueFrom *ArgumentFrom `json:"valueFrom,omitempty"`
}

type ArgumentFrom struct {
	// PodTemplateHashValue is "Stable" or "Latest".
	PodTemplateHashValue *string `json:"podTemplateHashValue,omitempty"`
}

// AnalysisTemplate mirrors argoproj.io/v1alpha1 AnalysisTemplate.
type AnalysisTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AnalysisTemplateSpec `json:"spec"`
}

type AnalysisTemplateSpec struct {
	Args    []Argument `json:"args,omitempty"`
	Metrics []Metric   `json:"metrics"`
}

type Argument struct {
	Name  string  `json:"name"`
	Value *string `json:"value,omitempty"`
}

type Metric struct {
	Name             string              `json:"name"`
	Interval         string              `json:"interval,omitempty"`
	Count            *intstr.IntOrString `json:"count,omitempty"`
	SuccessCondition string              `json:"successCondition,omitempty"`
	FailureCondition string              `json:"failureCondition,omitempty"`
	FailureLimit     *intstr.IntOrString `json:"failureLimit,omitempty"`
	Provider         MetricProvider      `json:"provider"`
}

type MetricProvider struct {
	Prometheus *PrometheusMetric `json:"prometheus,omitempty"`
}

type PrometheusMetric struct {
	Address string `json:"address,omitempty"`
	Query   string `json:"query,omitempty"`
}

const argoAPIVersion = "argoproj.io/v1alpha1"

// canaryHashArg is the AnalysisTemplate argument carrying the canary
// ReplicaSet's pod-template-hash, which the queries select pods by.
const canaryHashArg = "canary-hash"

// ArgoRollouts renders m for a cluster running Argo Rollouts with its
// Gateway API plugin: a Rollout whose steps scale the canary to its
// replicas, set its weight, wait one metrics window and run the
// canary-safety analysis; stable and canary Services; the HTTPRoute the
// plugin moves weights on; the AnalysisTemplate; and the daemon's RBAC.
//
// Argo's model differs from SwiftDeploy's: a Rollout has one pod template,
// the version being rolled out, and Argo keeps the previous one as stable.
// So the template holds the canary image when a canary is declared (the
// stable image otherwise), and a first apply of a Rollout goes straight
// to 100% (there is no stable yet): apply the manifest without its canary
// first. See docs/kubernetes.md.
func ArgoRollouts(m *manifest.Manifest, o Options) ([]Object, error) {
	if m.IsNamed() {
		// One Rollout per service, each with its own analysis, is not
		// written yet; rendering one service as the app would be wrong.
		return nil, fmt.Errorf("services: several services (the named form: %s) are not rendered for the argo-rollouts target; use --target kubernetes", strings.Join(m.ServiceNames(), ", "))
	}
	o, err := o.withDefaults(m)
	if err != nil {
		return nil, err
	}
	if o.PrometheusURL == "" {
		return nil, fmt.Errorf("the argo-rollouts target needs the URL of the Prometheus its AnalysisTemplate queries")
	}
	if u, err := url.Parse(o.PrometheusURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus URL %q: want an http or https URL with a host", o.PrometheusURL)
	}
	s := stack.FromManifest(m, o.Stack)
	a := s.Stable[0]
	if len(s.Canary) > 0 {
		a = s.Canary[0]
	}
	tmpl, err := podTemplate(s.Project, a, true)
	if err != nil {
		return nil, err
	}
	if o.PullSecret != nil {
		withPullSecret(&tmpl, s.Project)
	}
	name := trackName(s.Project, "rollout")
	analysis := s.Project + "-canary-safety"
	window := fmt.Sprintf("%ds", int(m.Metrics.Window.D().Seconds()))
	plugin, _ := json.Marshal(map[string]string{"httpRoute": s.Project, "namespace": o.Namespace})
	canaryReplicas := int32(manifest.DefaultCanaryReplicas)
	weight := int32(0)
	if c := m.Services.Canary; c != nil {
		canaryReplicas, weight = int32(c.Replicas), int32(c.Weight)
	}
	r := &Rollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: argoAPIVersion, Kind: "Rollout"},
		ObjectMeta: meta(name, o.Namespace, objectLabels(s.Project, stack.RoleApp, "")),
		Spec: RolloutSpec{
			Replicas: ptr(int32(len(s.Stable))),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelProject: s.Project, LabelRole: stack.RoleApp}},
			Template: tmpl,
			Strategy: RolloutStrategy{Canary: &CanaryStrategy{
				CanaryService:  trackName(s.Project, stack.TrackCanary),
				StableService:  trackName(s.Project, stack.TrackStable),
				CanaryMetadata: &PodMetadata{Labels: map[string]string{LabelTrack: stack.TrackCanary}},
				StableMetadata: &PodMetadata{Labels: map[string]string{LabelTrack: stack.TrackStable}},
				MaxSurge:       ptr(intstr.FromInt32(1)),
				MaxUnavailable: ptr(intstr.FromInt32(0)),
				TrafficRouting: &TrafficRouting{Plugins: map[string]json.RawMessage{ArgoGatewayPlugin: plugin}},
				Steps: []CanaryStep{
					{SetCanaryScale: &SetCanaryScale{Replicas: &canaryReplicas}},
					{SetWeight: &weight},
					{Pause: &RolloutPause{Duration: ptr(intstr.FromString(window))}},
					{Analysis: &StepAnalysis{
						Templates: []AnalysisTemplateRef{{TemplateName: analysis}},
						Args: []AnalysisRunArgument{{
							Name: canaryHashArg, ValueFrom: &ArgumentFrom{PodTemplateHashValue: ptr("Latest")},
						}},
					}},
				},
			}},
		},
	}
	// Argo adds the pod-template-hash to each Service's selector itself.
	sel := map[string]string{LabelProject: s.Project, LabelRole: stack.RoleApp}
	objs := []Object{
		r,
		service(s.Project, o.Namespace, stack.TrackStable, a.Port, sel),
		service(s.Project, o.Namespace, stack.TrackCanary, a.Port, sel),
		// The plugin owns the weights; it starts with everything on stable.
		httpRoute(s, o, []gatewayv1.HTTPBackendRef{
			backendRef(trackName(s.Project, stack.TrackStable), a.Port, 100),
			backendRef(trackName(s.Project, stack.TrackCanary), a.Port, 0),
		}),
		analysisTemplate(analysis, o, m, window),
	}
	if o.PullSecret != nil {
		objs = append([]Object{pullSecret(s.Project, o.Namespace, o.PullSecret)}, objs...)
	}
	claims, err := volumeClaims(s, o.Namespace)
	if err != nil {
		return nil, err
	}
	objs = append(objs, claims...)
	return append(objs, rbacFor(s.Project, o.Namespace, rbacNeeds{argo: true, secrets: usesSecrets(s), claims: len(claims) > 0})...), nil
}

// analysisTemplate holds the canary safety policy's figures as PromQL over
// one metrics window, selecting the canary's pods by their
// pod-template-hash (as Prometheus' Kubernetes discovery labels them,
// rollouts_pod_template_hash, with the usual pod-label labelmap). "No
// data" is its own outcome, as in the Rego policy: a missing series or a
// NaN (0/0, no buckets) meets neither the success nor the failure
// condition, so the measurement is Inconclusive and Argo pauses the
// rollout instead of passing it.
func analysisTemplate(name string, o Options, m *manifest.Manifest, window string) *AnalysisTemplate {
	sel := fmt.Sprintf(`namespace=%q,rollouts_pod_template_hash="{{args.%s}}"`, o.Namespace, canaryHashArg)
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	metric := func(name, query, ok, bad string) Metric {
		return Metric{
			Name:             name,
			Count:            ptr(intstr.FromInt32(1)),
			SuccessCondition: "len(result) == 1 && !isNaN(result[0]) && " + ok,
			FailureCondition: "len(result) == 1 && !isNaN(result[0]) && " + bad,
			FailureLimit:     ptr(intstr.FromInt32(0)),
			Provider:         MetricProvider{Prometheus: &PrometheusMetric{Address: o.PrometheusURL, Query: query}},
		}
	}
	p := m.Policy
	return &AnalysisTemplate{
		TypeMeta:   metav1.TypeMeta{APIVersion: argoAPIVersion, Kind: "AnalysisTemplate"},
		ObjectMeta: meta(name, o.Namespace, objectLabels(m.Project, stack.RoleApp, stack.TrackCanary)),
		Spec: AnalysisTemplateSpec{
			Args: []Argument{{Name: canaryHashArg}},
			Metrics: []Metric{
				metric("requests",
					fmt.Sprintf(`sum(increase(http_requests_total{%s}[%s]))`, sel, window),
					"result[0] >= "+strconv.Itoa(p.MinRequests), "false"),
				metric("error-rate",
					fmt.Sprintf(`sum(rate(http_requests_total{%s,status=~"5.."}[%s])) / sum(rate(http_requests_total{%s}[%s]))`, sel, window, sel, window),
					"result[0] <= "+num(p.MaxErrorRate), "result[0] > "+num(p.MaxErrorRate)),
				metric("p99-ms",
					fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{%s}[%s]))) * 1000`, sel, window),
					"result[0] <= "+num(p.MaxP99Ms), "result[0] > "+num(p.MaxP99Ms)),
			},
		},
	}
}
