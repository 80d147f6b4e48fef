package kubernetes

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// The named form (several services) on the plain target:
//
//   - a web or worker service runs as a Deployment, WorkloadName
//     (PROJECT-SERVICE), and its canary, when it runs one, as
//     PROJECT-SERVICE-canary;
//   - an accessory runs as a StatefulSet of the same name whose
//     volumeClaimTemplates are its named volumes;
//   - a web service has a Service named after the service itself (web),
//     selecting its stable pods, and one for its canary
//     (PROJECT-SERVICE-canary); an accessory has a headless Service named
//     after the service (db), its StatefulSet's governing Service.
//
// Services are named after the services because on Docker the other
// services reach one by its name (a network alias): DATABASE_HOST=db
// resolves to the accessory on both targets, in the same namespace,
// without a change of the app's configuration. The price: two projects
// of the named form in one namespace with a service of the same name
// would claim one Service; give each project a namespace of its own.

// WorkloadName names the Deployment or StatefulSet of a named service.
func WorkloadName(project, service string) string { return project + "-" + service }

// CanaryName names the canary Deployment and Service of a named service.
func CanaryName(project, service string) string { return WorkloadName(project, service) + "-canary" }

// RouteName names the HTTPRoute of the named form's routes for host:
// PROJECT for every host (as in the single-service form), PROJECT-HOST
// for one.
func RouteName(project, host string) string {
	if host == "" {
		return project
	}
	return project + "-" + host
}

// checkNamed refuses service names and hosts that cannot name the objects
// they become, naming the manifest field.
func checkNamed(m *manifest.Manifest) error {
	var errs []string
	for _, name := range m.ServiceNames() {
		at := "services." + name
		// A Service takes a DNS-1035 label (a letter first, no '-' last).
		if es := validation.IsDNS1035Label(name); len(es) > 0 {
			errs = append(errs, fmt.Sprintf("%s: %q cannot name a Kubernetes Service: %s", at, name, strings.Join(es, "; ")))
		}
		// A pod of a StatefulSet is named WORKLOAD-ORDINAL and labelled
		// with WORKLOAD-REVISIONHASH (10 characters): both labels.
		longest := CanaryName(m.Project, name)
		if m.Named[name].EffectiveKind() == manifest.KindAccessory {
			longest = WorkloadName(m.Project, name) + "-" + strings.Repeat("x", 10)
		}
		if es := validation.IsDNS1123Label(longest); len(es) > 0 {
			errs = append(errs, fmt.Sprintf("%s: project and service name together are too long for Kubernetes names (%q: %s)", at, longest, strings.Join(es, "; ")))
		}
		if r := m.Named[name].Route; r != nil && r.Host != "" {
			if es := validation.IsDNS1123Subdomain(RouteName(m.Project, r.Host)); len(es) > 0 {
				errs = append(errs, fmt.Sprintf("%s.route.host: %q cannot name an HTTPRoute (%s)", at, r.Host, strings.Join(es, "; ")))
			}
		}
		for i, v := range m.Named[name].Volumes {
			if v.Type == manifest.VolumeNamed && m.Named[name].EffectiveKind() == manifest.KindAccessory {
				if es := validation.IsDNS1123Label(v.Source); len(es) > 0 {
					errs = append(errs, fmt.Sprintf("%s.volumes[%d].source: %q cannot name a claim template: %s", at, i, v.Source, strings.Join(es, "; ")))
				}
			}
		}
	}
	if err := sharedClaims(m); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// sharedClaims refuses a named volume an accessory mounts and another
// service mounts too: an accessory's volumes are claims of its
// StatefulSet's pods (one per pod), which no other workload can mount.
func sharedClaims(m *manifest.Manifest) error {
	owner := map[string]string{}
	for _, name := range m.ServiceNames() {
		if m.Named[name].EffectiveKind() != manifest.KindAccessory {
			continue
		}
		for _, v := range m.Named[name].Volumes {
			if v.Type == manifest.VolumeNamed {
				owner[v.Source] = name
			}
		}
	}
	for _, name := range m.ServiceNames() {
		for i, v := range m.Named[name].Volumes {
			if o, ok := owner[v.Source]; ok && o != name && v.Type == manifest.VolumeNamed {
				return fmt.Errorf("services.%s.volumes[%d].source: volume %q is accessory %s's; on Kubernetes an accessory's volumes are claims of its own pods, which another service cannot mount", name, i, v.Source, o)
			}
		}
	}
	return nil
}

// namedObjects renders the named form (see the comment at the top).
func namedObjects(s stack.Stack, o Options) ([]Object, error) {
	var objs []Object
	if o.PullSecret != nil {
		objs = append(objs, pullSecret(s.Project, o.Namespace, o.PullSecret))
	}
	for _, svc := range s.Services {
		tracks := [][]stack.App{svc.Stable}
		if canary, _ := s.CanaryOf(svc.Name); len(canary) > 0 {
			// Every web service's own canary (the primary's and the
			// others', stack.CanaryServices): each its own Deployment,
			// Service and split.
			tracks = append(tracks, canary)
		}
		for _, apps := range tracks {
			a := apps[0]
			tmpl, err := podTemplate(s.Project, a, false)
			if err != nil {
				return nil, err
			}
			if o.PullSecret != nil {
				withPullSecret(&tmpl, s.Project)
			}
			replicas := int32(len(apps))
			switch {
			case svc.Kind == manifest.KindAccessory:
				sts, err := statefulSet(s.Project, o.Namespace, a, replicas, tmpl)
				if err != nil {
					return nil, err
				}
				objs = append(objs, sts, namedService(svc.Name, s.Project, o.Namespace, a, true))
			case a.Track == stack.TrackCanary:
				objs = append(objs, deployment(CanaryName(s.Project, svc.Name), s.Project, o.Namespace, a, replicas, tmpl),
					namedService(CanaryName(s.Project, svc.Name), s.Project, o.Namespace, a, false))
			default:
				objs = append(objs, deployment(WorkloadName(s.Project, svc.Name), s.Project, o.Namespace, a, replicas, tmpl))
				if svc.Kind == manifest.KindWeb {
					objs = append(objs, namedService(svc.Name, s.Project, o.Namespace, a, false))
				}
			}
		}
	}
	routes := namedRoutes(s, o)
	if err := checkRouteRules(routes); err != nil {
		return nil, err
	}
	objs = append(objs, routes...)
	// Claims of the web services' and workers' named volumes; an
	// accessory's are its StatefulSet's templates.
	claims, err := volumeClaims(withoutAccessories(s), o.Namespace)
	if err != nil {
		return nil, err
	}
	objs = append(objs, claims...)
	// statefulsets and persistentvolumeclaims whether or not the manifest
	// has an accessory or a volume now: the daemon observes them in the
	// named form always, to delete the StatefulSet of an accessory taken
	// out of the manifest and, on `down --volumes`, the claims of a volume
	// taken out, also after a restart (a Role rendered from the new
	// manifest must not lose sight of them).
	objs = append(objs, rbacFor(s.Project, o.Namespace, rbacNeeds{
		secrets: usesSecrets(s), claims: true, statefulSets: true,
	})...)
	if err := uniqueNames(objs); err != nil {
		return nil, err
	}
	return objs, nil
}

func withoutAccessories(s stack.Stack) stack.Stack {
	out := s
	out.Stable, out.Canary, out.OtherCanaries = nil, nil, nil // all in Stable below: Apps() must list each once
	for _, a := range s.Apps() {
		if a.Kind != manifest.KindAccessory {
			out.Stable = append(out.Stable, a)
		}
	}
	return out
}

// uniqueNames refuses two objects of one kind and name: service names
// and the names derived from them (web's canary, web-canary's workload)
// could meet, and the second would silently replace the first.
func uniqueNames(objs []Object) error {
	seen := map[string]bool{}
	for _, o := range objs {
		k := o.GetObjectKind().GroupVersionKind().Kind + " " + o.GetName()
		if seen[k] {
			return fmt.Errorf("services: two services render the %s: rename one", k)
		}
		seen[k] = true
	}
	return nil
}

// namedService is a Service selecting the pods of app a's track: for a
// web service's stable track and an accessory, named after the service
// (the name the others reach it by, as on Docker); headless for an
// accessory, so that the name resolves to its pods as the StatefulSet's
// governing Service must.
func namedService(name, project, namespace string, a stack.App, headless bool) *corev1.Service {
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(name, namespace, appLabels(project, a)),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: podLabels(project, a),
		},
	}
	if headless {
		svc.Spec.ClusterIP = corev1.ClusterIPNone
	}
	if a.Port > 0 {
		svc.Spec.Ports = []corev1.ServicePort{{
			Name: portName(a), Port: int32(a.Port), TargetPort: intstr.FromString(portName(a)), Protocol: corev1.ProtocolTCP,
		}}
	}
	return svc
}

// statefulSet runs an accessory: its named volumes are claim templates
// (ReadWriteOnce, the manifest's size or DefaultVolumeSize, as the
// single-service claims), one claim per pod that outlives the pod and
// the StatefulSet (the default retention policy, Retain), as a Docker
// volume outlives its container. Its rolling update replaces a pod after
// the old one is gone: stop-first, as on Docker, so two databases never
// run on one data directory.
func statefulSet(project, namespace string, a stack.App, replicas int32, tmpl corev1.PodTemplateSpec) (*appsv1.StatefulSet, error) {
	sts := &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: meta(WorkloadName(project, a.Service), namespace, appLabels(project, a)),
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			Selector:    &metav1.LabelSelector{MatchLabels: podLabels(project, a)},
			Template:    tmpl,
			ServiceName: a.Service,
			// Written, not left to the API server's default, so that the
			// rendering says how the accessory is replaced.
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
		},
	}
	sts.Annotations = map[string]string{AnnotationImage: a.Image}
	seen := map[string]bool{}
	for i, v := range a.Volumes {
		if v.Type != manifest.VolumeNamed || seen[v.Source] {
			continue
		}
		seen[v.Source] = true
		size := v.Size
		if size == "" {
			size = manifest.DefaultVolumeSize
		}
		n, err := manifest.ParseMemory(size)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field(a, "volumes["+strconv.Itoa(i)+"].size"), err)
		}
		// No apiVersion and kind: the API server does not keep them in a
		// template (the live StatefulSet has none), so rendered they would
		// read as drift on every compare.
		sts.Spec.VolumeClaimTemplates = append(sts.Spec.VolumeClaimTemplates, corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: v.Source, Labels: appLabels(project, a)},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceStorage: *resource.NewQuantity(n, resource.BinarySI),
				}},
			},
		})
	}
	return sts, nil
}

// claimMounts mounts an accessory's named volumes, by their claim
// templates' names (the volume's name); a bind mount is refused as in
// volumeMounts, earlier.
func claimMounts(a stack.App, c *corev1.Container) {
	for _, v := range a.Volumes {
		if v.Type == manifest.VolumeNamed {
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: v.Source, MountPath: v.Target, ReadOnly: v.ReadOnly})
		}
	}
}

// namedRoutes are the front door of the named form: an HTTPRoute per
// route host (the Gateway API matches a host by the route's hostnames,
// not by a rule), the one for every host named PROJECT and carrying
// nginx.tls.hosts as the single-service route does. Each holds the
// refused rules, then a rule per web service routed there (a host's
// route also holds the rules without a host whose prefix it does not
// route itself, as nginx's server for that host does), matching its
// path prefix (the Gateway API prefers the longest prefix, as nginx
// does), with a URLRewrite
// filter replacing the prefix by / when the service strips it, and the
// stable and canary Services as weighted backends.
func namedRoutes(s stack.Stack, o Options) []Object {
	byHost := map[string][]stack.Service{}
	for _, svc := range s.Services {
		if svc.Routed() {
			byHost[svc.Route.Host] = append(byHost[svc.Route.Host], svc)
		}
	}
	hosts := make([]string, 0, len(byHost))
	for h := range byHost {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var out []Object
	for _, host := range hosts {
		r := &gatewayv1.HTTPRoute{
			TypeMeta:   metav1.TypeMeta{APIVersion: gatewayv1.GroupVersion.String(), Kind: "HTTPRoute"},
			ObjectMeta: meta(RouteName(s.Project, host), o.Namespace, objectLabels(s.Project, RoleFrontDoor, "")),
		}
		if o.Gateway != "" {
			r.Spec.ParentRefs = []gatewayv1.ParentReference{{Name: gatewayv1.ObjectName(o.Gateway)}}
		}
		switch {
		case host != "":
			r.Spec.Hostnames = []gatewayv1.Hostname{gatewayv1.Hostname(host)}
		case s.Nginx.TLS != nil:
			for _, h := range s.Nginx.TLS.Hosts {
				r.Spec.Hostnames = append(r.Spec.Hostnames, gatewayv1.Hostname(h))
			}
		}
		r.Spec.Rules = refusedRules(s)
		svcs := append([]stack.Service(nil), byHost[host]...)
		if host != "" {
			// As nginx serves a route without a host on every host that
			// does not route the same prefix itself: a request matches
			// one HTTPRoute's hostnames (the most specific), so that
			// route holds the rules of the routes without a host too.
			own := map[string]bool{}
			for _, svc := range svcs {
				own[svc.Route.Prefix] = true
			}
			for _, svc := range byHost[""] {
				if !own[svc.Route.Prefix] {
					svcs = append(svcs, svc)
				}
			}
		}
		// Longest prefix first: the order a reader expects (the Gateway
		// API's precedence does not depend on it).
		sort.SliceStable(svcs, func(i, j int) bool { return len(svcs[i].Route.Prefix) > len(svcs[j].Route.Prefix) })
		for _, svc := range svcs {
			r.Spec.Rules = append(r.Spec.Rules, serviceRules(s, svc)...)
		}
		out = append(out, r)
	}
	return out
}

// serviceRules route a web service: its canary's match rule while it
// runs a canary with one, and its weighted rule.
func serviceRules(s stack.Stack, svc stack.Service) []gatewayv1.HTTPRouteRule {
	port := svc.Stable[0].Port
	path := &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr(svc.Route.Prefix)}
	var filters []gatewayv1.HTTPRouteFilter
	if svc.Route.Strip {
		filters = []gatewayv1.HTTPRouteFilter{{
			Type: gatewayv1.HTTPRouteFilterURLRewrite,
			URLRewrite: &gatewayv1.HTTPURLRewriteFilter{Path: &gatewayv1.HTTPPathModifier{
				Type: gatewayv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr("/"),
			}},
		}}
	}
	refs := []gatewayv1.HTTPBackendRef{backendRef(svc.Name, port, 100)}
	var rules []gatewayv1.HTTPRouteRule
	if canary, weight := s.CanaryOf(svc.Name); len(canary) > 0 {
		refs = []gatewayv1.HTTPBackendRef{
			backendRef(svc.Name, port, int32(100-weight)),
			backendRef(CanaryName(s.Project, svc.Name), canary[0].Port, int32(weight)),
		}
		if m := s.CanaryMatch(svc.Name); m != nil {
			rules = append(rules, gatewayv1.HTTPRouteRule{
				Name:        ptr(gatewayv1.SectionName(MatchRuleOf(s, svc.Name))),
				Matches:     []gatewayv1.HTTPRouteMatch{{Path: path, Headers: []gatewayv1.HTTPHeaderMatch{matchHeader(m)}}},
				Filters:     filters,
				BackendRefs: []gatewayv1.HTTPBackendRef{backendRef(CanaryName(s.Project, svc.Name), canary[0].Port, 1)},
			})
		}
	}
	return append(rules, gatewayv1.HTTPRouteRule{
		Name:        ptr(gatewayv1.SectionName(ServiceRule(svc.Name))),
		Matches:     []gatewayv1.HTTPRouteMatch{{Path: path}},
		Filters:     filters,
		BackendRefs: refs,
	})
}

// ServiceRule names the HTTPRoute rule of a named web service: "app-" and
// the name, so that no service's rule takes the name of a refused rule or
// of the match rule.
func ServiceRule(service string) string { return "app-" + service }

// MatchRuleOf names the match rule of named service service's canary:
// MatchRule for the primary's (as it always was), MatchRule-SERVICE for
// another's, since a host's route may hold several services' rules and
// a route's rule names are unique.
func MatchRuleOf(s stack.Stack, service string) string {
	if service == s.Primary || service == "" {
		return MatchRule
	}
	return MatchRule + "-" + service
}

// IsMatchRule: a rule named name sends a canary's matching requests
// (MatchRuleOf), not a share of the weighted split.
func IsMatchRule(name string) bool {
	return name == MatchRule || strings.HasPrefix(name, MatchRule+"-")
}
