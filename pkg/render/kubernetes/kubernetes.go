// Package kubernetes renders a manifest as Kubernetes objects: for the
// plain target, a Deployment and a Service per track and a Gateway API
// HTTPRoute splitting traffic between them; for the argo-rollouts target,
// an Argo Rollouts Rollout with its Services and an AnalysisTemplate. Both
// come with the ServiceAccount, Role and RoleBinding swiftdeployd needs.
//
// Every object is built from typed Go structs (k8s.io/api, the Gateway
// API's apis/v1, and this package's mirror of the Argo Rollouts CRDs), not
// from text templates, so a misspelt field cannot compile and a value is
// never spliced into YAML by hand. The renderer is pure: the same manifest
// and Options give the same bytes.
package kubernetes

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Object is what the renderer returns: a typed API object with its
// apiVersion and kind set, ready to encode or to send to an API server.
type Object interface {
	metav1.Object
	GetObjectKind() schema.ObjectKind
}

// DefaultNamespace is Options.Namespace when none is given.
const DefaultNamespace = "default"

// Options are what the manifest cannot say about a cluster.
type Options struct {
	// Namespace of every object; the RoleBinding's subject needs it.
	// Default: DefaultNamespace.
	Namespace string
	// Gateway, when set, is the name of the Gateway (in Namespace) the
	// HTTPRoute attaches to. Without it the route has no parentRefs and
	// routes nothing until one is added: the manifest names no Gateway.
	Gateway string
	// PrometheusURL is the Prometheus the argo-rollouts AnalysisTemplate
	// queries. Required for that target, unused by the other.
	PrometheusURL string
	// Stack refines the manifest as the daemon does (a promoted image, a
	// rolled-back canary).
	Stack stack.Options
	// PullSecret, when set, is the .dockerconfigjson of the registries
	// the images are pulled from: rendered as a Secret of type
	// kubernetes.io/dockerconfigjson that every pod names in
	// imagePullSecrets. The daemon reads it from the same Docker config
	// as a pull on the Docker target; it is secret (never printed).
	PullSecret []byte
	// NamedForm renders a manifest of several services (named.go); without
	// it the named form is refused, so that a caller that handles one
	// service's objects only never gets several. swiftctl render and the
	// daemon's Kubernetes target (pkg/kubetarget) set it. The
	// argo-rollouts target refuses the named form whatever this says.
	NamedForm bool
}

// httpPort names the app's container and Service port; probes and the
// Service's targetPort refer to it by name, so the number lives in one place.
const httpPort = "http"

// tcpPort names an accessory's port instead: what it speaks is its own (a
// database's protocol), and tools read a port named http as HTTP.
const tcpPort = "tcp"

// portName is the name of a's port.
func portName(a stack.App) string {
	if a.Kind == manifest.KindAccessory {
		return tcpPort
	}
	return httpPort
}

// appContainer is the name of the app's container in every pod.
const appContainer = "app"

// AppContainer is appContainer for readers of the pods (swiftctl logs).
const AppContainer = appContainer

// Kubernetes renders m for a plain cluster with the Gateway API: a stable
// Deployment and Service, with a canary a canary Deployment and Service,
// an HTTPRoute whose backendRefs carry the stable and canary weights, and
// the daemon's RBAC. The named form (several services, with
// Options.NamedForm) is rendered by namedObjects (named.go). An error
// names the manifest field that cannot be expressed on Kubernetes.
func Kubernetes(m *manifest.Manifest, o Options) ([]Object, error) {
	o, err := o.withDefaults(m)
	if err != nil {
		return nil, err
	}
	s := stack.FromManifest(m, o.Stack)
	if m.IsNamed() {
		return namedObjects(s, o)
	}
	var objs []Object
	if o.PullSecret != nil {
		objs = append(objs, pullSecret(s.Project, o.Namespace, o.PullSecret))
	}
	tracks := []struct {
		apps   []stack.App
		weight int32
	}{{s.Stable, int32(100 - s.CanaryWeight)}, {s.Canary, int32(s.CanaryWeight)}}
	var refs []gatewayv1.HTTPBackendRef
	for _, t := range tracks {
		if len(t.apps) == 0 {
			continue
		}
		a := t.apps[0]
		tmpl, err := podTemplate(s.Project, a, false)
		if err != nil {
			return nil, err
		}
		if o.PullSecret != nil {
			withPullSecret(&tmpl, s.Project)
		}
		objs = append(objs,
			deployment(trackName(s.Project, a.Track), s.Project, o.Namespace, a, int32(len(t.apps)), tmpl),
			service(s.Project, o.Namespace, a.Track, a.Port, selectorLabels(s.Project, a.Track)))
		refs = append(refs, backendRef(trackName(s.Project, a.Track), a.Port, t.weight))
	}
	objs = append(objs, httpRoute(s, o, refs))
	claims, err := volumeClaims(s, o.Namespace)
	if err != nil {
		return nil, err
	}
	objs = append(objs, claims...)
	objs = append(objs, rbacFor(s.Project, o.Namespace, rbacNeeds{secrets: usesSecrets(s), claims: len(claims) > 0})...)
	return objs, nil
}

func (o Options) withDefaults(m *manifest.Manifest) (Options, error) {
	if m.IsNamed() && !o.NamedForm {
		// Rendering the first service's containers as the app would be
		// a silently wrong cluster.
		return o, fmt.Errorf("services: several services (the named form: %s) are rendered only when asked for (Options.NamedForm)", strings.Join(m.ServiceNames(), ", "))
	}
	if m.IsNamed() {
		if err := checkNamed(m); err != nil {
			return o, err
		}
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if errs := validation.IsDNS1123Label(o.Namespace); len(errs) > 0 {
		return o, fmt.Errorf("namespace %q is not a valid Kubernetes namespace: %s", o.Namespace, strings.Join(errs, "; "))
	}
	if o.Gateway != "" {
		if errs := validation.IsDNS1123Subdomain(o.Gateway); len(errs) > 0 {
			return o, fmt.Errorf("gateway %q is not a valid Gateway name: %s", o.Gateway, strings.Join(errs, "; "))
		}
	}
	// Services take DNS-1035 labels (a letter first, no '_'), stricter
	// than a project name. The name is refused rather than rewritten:
	// "my_app" and "my-app" must not become the same objects.
	longest := trackName(m.Project, stack.TrackCanary)
	if errs := validation.IsDNS1035Label(longest); len(errs) > 0 {
		return o, fmt.Errorf("project: %q cannot name Kubernetes objects (%q: %s); use lower-case letters, digits and '-', starting with a letter", m.Project, longest, strings.Join(errs, "; "))
	}
	return o, nil
}

// trackName names a track's Deployment (or Rollout) and Service.
func trackName(project, track string) string { return project + "-" + track }

func meta(name, namespace string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels}
}

// deployment runs a track of app a (name: trackName in the seed form,
// workloadName in the named form).
func deployment(name, project, namespace string, a stack.App, replicas int32, tmpl corev1.PodTemplateSpec) *appsv1.Deployment {
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(name, namespace, appLabels(project, a)),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: podLabels(project, a)},
			Template: tmpl,
			// As on Docker, what runs is never taken away before its
			// replacement is ready: one extra pod at a time, none missing.
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr(intstr.FromInt32(0)),
					MaxSurge:       ptr(intstr.FromInt32(1)),
				},
			},
		},
	}
	d.Annotations = map[string]string{AnnotationImage: a.Image}
	return d
}

// podTemplate is a track's pod: the app container with its image, port,
// env byte for byte as the manifest holds it, probes on the health path
// and the manifest's limits. For a Rollout (modeFromLabel) one template
// serves both tracks, so MODE comes from the pod's track label, which the
// Rollout's stable/canary metadata sets.
func podTemplate(project string, a stack.App, modeFromLabel bool) (corev1.PodTemplateSpec, error) {
	res, err := resources(a)
	if err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	h := a.Timings()
	interval, retries := int32(h.Interval.D().Seconds()), int32(h.Retries)
	// An app with a health path is probed over HTTP; an accessory of the
	// named form with a port, as the Docker target judges it, by a TCP
	// connection; a worker (no port) by running alone: no probe.
	var handler *corev1.ProbeHandler
	switch {
	case a.HealthPath != "":
		handler = &corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: a.HealthPath, Port: intstr.FromString(httpPort), Scheme: corev1.URISchemeHTTP,
		}}
	case a.Port > 0:
		handler = &corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString(portName(a))}}
	}
	probe := func(period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     *handler,
			PeriodSeconds:    period,
			TimeoutSeconds:   int32(h.Timeout.D().Seconds()),
			FailureThreshold: failures,
		}
	}
	c, err := containerFields(a)
	if err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	var podVolumes []corev1.Volume
	if a.Kind == manifest.KindAccessory {
		// An accessory's named volumes are its StatefulSet's claim
		// templates, mounted by the template's name.
		claimMounts(a, &c)
	} else if podVolumes, err = volumeMounts(project, a, &c); err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	labels := podLabels(project, a)
	annotations := map[string]string{AnnotationConfigHash: a.Hash, AnnotationImage: a.Image}
	if modeFromLabel {
		// The track is the Rollout's business, and so is the config hash:
		// stack's hash covers the track, so promoting the canary in the
		// manifest would change the template and start a rollout of the
		// very image that was just promoted.
		labels = map[string]string{LabelProject: project, LabelRole: stack.RoleApp}
		delete(annotations, AnnotationConfigHash)
	}
	c.Name, c.Image = appContainer, a.Image
	if a.Port > 0 {
		c.Ports = []corev1.ContainerPort{{Name: portName(a), ContainerPort: int32(a.Port), Protocol: corev1.ProtocolTCP}}
	}
	c.Env = env(a.Env, modeFromLabel)
	secretVolume := secretRefs(project, a, &c)
	c.Resources = res
	// Readiness decides traffic, as the Docker target's health check
	// does; liveness restarts a hung app, later and more patiently (five
	// intervals, twice the retries), so that a slow start is not a crash
	// loop. The defaults (2 s, 3 retries, 2 s timeout) give the probes
	// rendered before services.health existed.
	if handler != nil {
		c.ReadinessProbe = probe(interval, retries)
		c.LivenessProbe = probe(5*interval, 2*retries)
	}
	if handler != nil && a.Health != nil {
		// A written start period is the startup probe's budget, during
		// which the other probes wait.
		c.StartupProbe = probe(interval, int32(math.Ceil(h.StartPeriod.D().Seconds()/float64(interval))))
	}
	spec := corev1.PodSpec{Containers: []corev1.Container{c}, Volumes: podVolumes}
	if secretVolume != nil {
		spec.Volumes = append(spec.Volumes, *secretVolume)
		// The kubelet makes a secret volume's files root's, group-readable
		// by fsGroup: the service's group (or its user's id) reads them.
		if uid, gid, ok := manifest.NumericUser(a.User); ok && uid != 0 {
			if gid < 0 {
				gid = uid
			}
			spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: &gid}
		}
	}
	if a.StopGrace != 0 {
		spec.TerminationGracePeriodSeconds = ptr(int64(a.StopGrace.D().Seconds()))
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
		Spec:       spec,
	}, nil
}

// containerFields renders what the app's container needs: entrypoint and
// command as command and args (as on Docker, an entrypoint given drops
// the image's command unless one is given too), the working directory and
// the user, which Kubernetes takes as numbers only.
func containerFields(a stack.App) (corev1.Container, error) {
	c := corev1.Container{Command: a.Entrypoint, Args: a.Command, WorkingDir: a.WorkingDir}
	if a.User != "" {
		uid, gid, ok := manifest.NumericUser(a.User)
		if !ok {
			return c, fmt.Errorf("%s: Kubernetes takes a numeric user (runAsUser), got %q: write UID or UID:GID", field(a, "user"), a.User)
		}
		c.SecurityContext = &corev1.SecurityContext{RunAsUser: &uid}
		if gid >= 0 {
			c.SecurityContext.RunAsGroup = &gid
		}
	}
	return c, nil
}

// env lists the container's variables in name order (a stable rendering);
// the values are stack.App.Env's, which are the manifest's bytes as written.
func env(vars map[string]string, modeFromLabel bool) []corev1.EnvVar {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]corev1.EnvVar, 0, len(names))
	for _, k := range names {
		if k == "MODE" && modeFromLabel {
			out = append(out, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['" + LabelTrack + "']"},
			}})
			continue
		}
		out = append(out, corev1.EnvVar{Name: k, Value: vars[k]})
	}
	return out
}

// resources turns the manifest's per-container limits into limits and
// equal requests. Requests are written, not left for the API server to
// default from the limits, so that the scheduler and a reader see the
// same figures, and so the pod is Guaranteed: on Docker a limit is all
// there is.
func resources(a stack.App) (corev1.ResourceRequirements, error) {
	list := corev1.ResourceList{}
	if a.CPUs > 0 {
		milli := int64(math.Round(a.CPUs * 1000))
		if milli < 1 {
			return corev1.ResourceRequirements{}, fmt.Errorf("%s: %v is below Kubernetes' smallest CPU quantity, 0.001", field(a, "resources.cpus"), a.CPUs)
		}
		list[corev1.ResourceCPU] = *resource.NewMilliQuantity(milli, resource.DecimalSI)
	}
	if a.Memory != "" {
		b, err := manifest.ParseMemory(a.Memory)
		if err != nil {
			return corev1.ResourceRequirements{}, fmt.Errorf("%s: %w", field(a, "resources.memory"), err)
		}
		list[corev1.ResourceMemory] = *resource.NewQuantity(b, resource.BinarySI)
	}
	if len(list) == 0 {
		return corev1.ResourceRequirements{}, nil
	}
	return corev1.ResourceRequirements{Limits: list, Requests: list.DeepCopy()}, nil
}

func service(project, namespace, track string, port int, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(trackName(project, track), namespace, objectLabels(project, stack.RoleApp, track)),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector,
			Ports: []corev1.ServicePort{{
				Name: httpPort, Port: int32(port), TargetPort: intstr.FromString(httpPort), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

func backendRef(service string, port int, weight int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{
			Name: gatewayv1.ObjectName(service),
			Port: ptr(gatewayv1.PortNumber(port)),
		},
		Weight: &weight,
	}}
}

// httpRoute is the front door: every path goes to the tracks by weight,
// except the paths the Docker target's nginx refuses. Each of those gets a
// rule without backends, which the Gateway API requires implementations
// to answer with a 500: one rule with the exact prefixes (core support,
// matching whole segments and letter case) and one with a case-insensitive
// regular expression (implementation-specific support; /CHAOS, /Debug/).
// services.canary.match becomes a rule with a header match that sends
// matching requests to the canary alone. See docs/kubernetes.md for what
// differs from nginx (matching, stickiness).
func httpRoute(s stack.Stack, o Options, refs []gatewayv1.HTTPBackendRef) *gatewayv1.HTTPRoute {
	project := s.Project
	r := &gatewayv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gatewayv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: meta(project, o.Namespace, objectLabels(project, RoleFrontDoor, "")),
	}
	if o.Gateway != "" {
		r.Spec.ParentRefs = []gatewayv1.ParentReference{{Name: gatewayv1.ObjectName(o.Gateway)}}
	}
	// nginx.tls.hosts: the names the route serves. Without a sectionName
	// the route attaches to every listener of the Gateway whose hostname
	// matches, its HTTPS listener (which holds the certificate) included.
	if s.Nginx.TLS != nil {
		for _, h := range s.Nginx.TLS.Hosts {
			r.Spec.Hostnames = append(r.Spec.Hostnames, gatewayv1.Hostname(h))
		}
	}
	r.Spec.Rules = refusedRules(s)
	if m := s.FrontDoor.Match; m != nil && len(s.Canary) > 0 {
		r.Spec.Rules = append(r.Spec.Rules, gatewayv1.HTTPRouteRule{
			Name: ptr(gatewayv1.SectionName(MatchRule)),
			Matches: []gatewayv1.HTTPRouteMatch{{
				Path:    &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr("/")},
				Headers: []gatewayv1.HTTPHeaderMatch{matchHeader(m)},
			}},
			BackendRefs: []gatewayv1.HTTPBackendRef{backendRef(trackName(project, stack.TrackCanary), s.Canary[0].Port, 1)},
		})
	}
	r.Spec.Rules = append(r.Spec.Rules, gatewayv1.HTTPRouteRule{
		Name:        ptr(gatewayv1.SectionName("app")),
		Matches:     []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr("/")}}},
		BackendRefs: refs,
	})
	return r
}

// refusedRules are the rules without backends of the paths the front
// door refuses (see httpRoute), on every route.
func refusedRules(s stack.Stack) []gatewayv1.HTTPRouteRule {
	prefixes := manifest.RefusedPrefixes(s.FrontDoor.Refused)
	var refused []gatewayv1.HTTPRouteMatch
	for _, p := range prefixes {
		refused = append(refused, gatewayv1.HTTPRouteMatch{Path: &gatewayv1.HTTPPathMatch{
			Type:  ptr(gatewayv1.PathMatchPathPrefix),
			Value: ptr(strings.TrimSuffix(p, "/")),
		}})
	}
	return []gatewayv1.HTTPRouteRule{
		{Name: ptr(gatewayv1.SectionName("refused")), Matches: refused},
		{Name: ptr(gatewayv1.SectionName("refused-any-case")), Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{
			Type:  ptr(gatewayv1.PathMatchRegularExpression),
			Value: ptr(RefusedPathRegex(prefixes)),
		}}}},
	}
}

// matchHeader is services.canary.match as a header match.
func matchHeader(m *manifest.Match) gatewayv1.HTTPHeaderMatch {
	if m.Cookie != "" {
		// The Gateway API has no cookie match: the Cookie header, by a
		// regular expression (implementation-specific support).
		return gatewayv1.HTTPHeaderMatch{Type: ptr(gatewayv1.HeaderMatchRegularExpression), Name: "Cookie",
			Value: `(^|.*;\s*)` + regexp.QuoteMeta(m.Cookie+"="+m.Value) + `(;.*|$)`}
	}
	return gatewayv1.HTTPHeaderMatch{Type: ptr(gatewayv1.HeaderMatchExact), Name: gatewayv1.HTTPHeaderName(m.Header), Value: m.Value}
}

// MatchRule names the HTTPRoute rule of services.canary.match; its
// backend is not part of the weighted split.
const MatchRule = "canary-match"

// RefusedPathRegex matches, in any letter case, every path one of the
// prefixes refuses (manifest.IsRefusedPath), as a whole-path expression:
// anchored, so implementations that match a part and those that match the
// whole path agree.
func RefusedPathRegex(prefixes []string) string {
	alts := make([]string, len(prefixes))
	for i, p := range prefixes {
		p = strings.ToLower(strings.TrimPrefix(p, "/"))
		if segment, ok := strings.CutSuffix(p, "/"); ok {
			alts[i] = regexp.QuoteMeta(segment) + "(/.*)?"
		} else {
			alts[i] = regexp.QuoteMeta(p) + ".*"
		}
	}
	return "^(?i:/(" + strings.Join(alts, "|") + "))$"
}

func ptr[T any](v T) *T { return &v }

// field names a manifest field of app a's service: services.NAME.rest in
// the named form, services.rest in the single-service form.
func field(a stack.App, rest string) string {
	if a.Service != "" {
		return "services." + a.Service + "." + rest
	}
	return "services." + rest
}
