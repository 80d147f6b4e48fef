package kubetarget

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Observed is what the namespace holds of the project, by name.
type Observed struct {
	Deployments map[string]appsv1.Deployment
	Services    map[string]corev1.Service
	Routes      map[string]gatewayv1.HTTPRoute
	Pods        []corev1.Pod
	// StatefulSets run the named form's accessories; observed in the
	// named form (Extras.StatefulSets), accessory or not: one removed from
	// the manifest is still the project's, to delete.
	StatefulSets map[string]appsv1.StatefulSet
	// ReplicaSets of the project's Deployments (their pod-template-hash).
	ReplicaSets []appsv1.ReplicaSet
	// Scaled names, by Deployment, the HorizontalPodAutoscaler that
	// targets it: its replicas are the HPA's, not the manifest's.
	Scaled map[string]string
	// Secrets are observed only when the project has some (the daemon's
	// Role grants secrets only then): from an informer started when first
	// asked, from the API until it has listed (Live.Observe).
	Secrets map[string]corev1.Secret
	// Claims are the named volumes' claims, observed when the project
	// has named volumes, and always in the named form (`down --volumes`
	// deletes them after the last volume left the manifest), likewise.
	Claims map[string]corev1.PersistentVolumeClaim
	// Unseen are the kinds asked for that the daemon may not list (a 403:
	// a Role rendered before it observed them), by kind, saying why: they
	// are observed as none, which status says (nothing silently).
	Unseen map[string]string
	// PullSecret is the project's image pull Secret (read by name: without
	// services.secrets the daemon may not list the namespace's Secrets);
	// nil when absent.
	PullSecret *corev1.Secret
}

// Extras are the kinds the daemon's Role grants only for some
// manifests: observed when asked, beside the cache. A list of claims or
// StatefulSets the server forbids is not an error: the kind is Unseen.
type Extras struct {
	Secrets, Claims bool
	// StatefulSets: the named form (the Role grants statefulsets to it).
	// Unlike Secrets and claims they are read from an informer, started
	// when first asked for (kube.Cache).
	StatefulSets bool
}

// Kinds an Observed may not have seen (Observed.Unseen).
const (
	UnseenStatefulSets = "StatefulSet"
	UnseenClaims       = "PersistentVolumeClaim"
)

// unseen records that the daemon may not list kind.
func (o *Observed) unseen(kind string, err error) {
	if o.Unseen == nil {
		o.Unseen = map[string]string{}
	}
	o.Unseen[kind] = fmt.Sprintf("cannot see the project's %ss (the daemon's Role does not grant listing them: apply the RBAC swiftctl render writes): %v", kind, err)
}

// listExtras lists the project's Secrets and claims when asked, and
// reads its image pull Secret, from the API (extras.go).
func listExtras(ctx context.Context, c API, ns, project string, x Extras, o *Observed) error {
	return readExtras(ctx, c, ns, project, x, true, o)
}

// API is what the target needs of the API server beyond the informers.
type API interface {
	Apply(ctx context.Context, ref kube.Ref, body []byte, o kube.ApplyOptions) ([]byte, error)
	Delete(ctx context.Context, ref kube.Ref) error
	List(ctx context.Context, r kube.Resource, ns, selector string, v any) error
}

// CacheSelectors select the project's objects for the informers.
func CacheSelectors(project string) kube.CacheSelectors {
	return kube.CacheSelectors{Owned: Selector(project), Pods: PodSelector(project)}
}

// PodSelector selects the project's pods and ReplicaSets: they carry the
// pod template's labels (no managed-by), the Deployments' doing.
func PodSelector(project string) string {
	return k8srender.LabelProject + "=" + project + "," + k8srender.LabelRole + "=" + stack.RoleApp
}

// FromCache reads the project's objects from the informers' cache (the
// cache's informers select them by label already).
func FromCache(c *kube.Cache) (Observed, error) {
	o := emptyObserved()
	all := labels.Everything()
	deps, err := c.Deployments.List(all)
	if err != nil {
		return o, fmt.Errorf("Deployments from the cache: %w", err)
	}
	for _, d := range deps {
		o.Deployments[d.Name] = *d
	}
	if l := c.StatefulSets(); l != nil {
		sts, err := l.List(all)
		if err != nil {
			return o, fmt.Errorf("StatefulSets from the cache: %w", err)
		}
		for _, s := range sts {
			o.StatefulSets[s.Name] = *s
		}
	}
	svcs, err := c.Services.List(all)
	if err != nil {
		return o, fmt.Errorf("Services from the cache: %w", err)
	}
	for _, s := range svcs {
		o.Services[s.Name] = *s
	}
	routes, err := c.Routes.List(all)
	if err != nil {
		return o, fmt.Errorf("HTTPRoutes from the cache: %w", err)
	}
	for _, r := range routes {
		o.Routes[r.Name] = *r
	}
	pods, err := c.Pods.List(all)
	if err != nil {
		return o, fmt.Errorf("Pods from the cache: %w", err)
	}
	for _, p := range pods {
		o.Pods = append(o.Pods, *p)
	}
	rss, err := c.ReplicaSets.List(all)
	if err != nil {
		return o, fmt.Errorf("ReplicaSets from the cache: %w", err)
	}
	for _, rs := range rss {
		o.ReplicaSets = append(o.ReplicaSets, *rs)
	}
	hpas, err := c.HPAs.List(all)
	if err != nil {
		return o, fmt.Errorf("HorizontalPodAutoscalers from the cache: %w", err)
	}
	for _, h := range hpas {
		if ref := h.Spec.ScaleTargetRef; ref.Kind == "Deployment" && (ref.APIVersion == "" || ref.APIVersion == "apps/v1") {
			o.Scaled[ref.Name] = h.Name
		}
	}
	o.sort()
	return o, nil
}

func emptyObserved() Observed {
	return Observed{Deployments: map[string]appsv1.Deployment{}, StatefulSets: map[string]appsv1.StatefulSet{}, Services: map[string]corev1.Service{},
		Routes: map[string]gatewayv1.HTTPRoute{}, Scaled: map[string]string{},
		Secrets: map[string]corev1.Secret{}, Claims: map[string]corev1.PersistentVolumeClaim{}}
}

func (o *Observed) sort() {
	sort.Slice(o.Pods, func(i, j int) bool { return o.Pods[i].Name < o.Pods[j].Name })
	sort.Slice(o.ReplicaSets, func(i, j int) bool { return o.ReplicaSets[i].Name < o.ReplicaSets[j].Name })
}

// Observe is ListObserve (the name the API fakes' tests use).
func Observe(ctx context.Context, c API, ns, project string) (Observed, error) {
	return ListObserve(ctx, c, ns, project)
}

// ListObserve lists the project's objects in ns, one list per kind (for
// API fakes without informers; the daemon reads FromCache).
func ListObserve(ctx context.Context, c API, ns, project string) (Observed, error) {
	return ObserveAll(ctx, c, ns, project, false, false)
}

// ObserveWith is ListObserve that also lists the project's Secrets when
// withSecrets.
func ObserveWith(ctx context.Context, c API, ns, project string, withSecrets bool) (Observed, error) {
	return ObserveAll(ctx, c, ns, project, withSecrets, false)
}

// ObserveAll is ListObserve that also lists the project's Secrets and its
// volume claims when asked.
func ObserveAll(ctx context.Context, c API, ns, project string, withSecrets, withClaims bool) (Observed, error) {
	return ListObserveExtras(ctx, c, ns, project, Extras{Secrets: withSecrets, Claims: withClaims})
}

// ListObserveExtras is ListObserve with the kinds x asks for.
func ListObserveExtras(ctx context.Context, c API, ns, project string, x Extras) (Observed, error) {
	sel := Selector(project)
	o := emptyObserved()
	if err := listExtras(ctx, c, ns, project, x, &o); err != nil {
		return o, err
	}
	var dl appsv1.DeploymentList
	if err := c.List(ctx, kube.Deployments, ns, sel, &dl); err != nil {
		return o, err
	}
	for _, d := range dl.Items {
		o.Deployments[d.Name] = d
	}
	if x.StatefulSets {
		var sl appsv1.StatefulSetList
		if err := c.List(ctx, kube.StatefulSets, ns, sel, &sl); kube.IsForbidden(err) {
			o.unseen(UnseenStatefulSets, err)
		} else if err != nil {
			return o, err
		}
		for _, s := range sl.Items {
			o.StatefulSets[s.Name] = s
		}
	}
	var sl corev1.ServiceList
	if err := c.List(ctx, kube.Services, ns, sel, &sl); err != nil {
		return o, err
	}
	for _, s := range sl.Items {
		o.Services[s.Name] = s
	}
	var rl gatewayv1.HTTPRouteList
	if err := c.List(ctx, kube.HTTPRoutes, ns, sel, &rl); err != nil {
		return o, err
	}
	for _, r := range rl.Items {
		o.Routes[r.Name] = r
	}
	var pl corev1.PodList
	if err := c.List(ctx, kube.Pods, ns, PodSelector(project), &pl); err != nil {
		return o, err
	}
	o.Pods = pl.Items
	var rsl appsv1.ReplicaSetList
	if err := c.List(ctx, kube.ReplicaSets, ns, PodSelector(project), &rsl); err != nil {
		return o, err
	}
	o.ReplicaSets = rsl.Items
	o.sort()
	return o, nil
}

// liveObject is the live object named by ref, as a JSON map.
func liveObject(obs Observed, ref kube.Ref) (map[string]any, bool) {
	var v any
	var ok bool
	switch ref.Resource.Kind {
	case "Deployment":
		v, ok = obs.Deployments[ref.Name]
	case "StatefulSet":
		v, ok = obs.StatefulSets[ref.Name]
	case "Service":
		v, ok = obs.Services[ref.Name]
	case "HTTPRoute":
		v, ok = obs.Routes[ref.Name]
	case "PersistentVolumeClaim":
		v, ok = obs.Claims[ref.Name]
	case "Secret":
		if obs.PullSecret != nil && obs.PullSecret.Name == ref.Name {
			v, ok = obs.PullSecret, true
		}
	}
	if !ok {
		return nil, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m) == nil
}

// CurrentPodTemplateHash is the pod-template-hash of a Deployment's
// current ReplicaSet (the one at the Deployment's revision).
func CurrentPodTemplateHash(obs Observed, dep appsv1.Deployment) (string, error) {
	rev := dep.Annotations["deployment.kubernetes.io/revision"]
	for _, rs := range obs.ReplicaSets {
		owned := false
		for _, o := range rs.OwnerReferences {
			owned = owned || o.UID == dep.UID
		}
		if owned && rev != "" && rs.Annotations["deployment.kubernetes.io/revision"] == rev {
			return rs.Labels["pod-template-hash"], nil
		}
	}
	return "", fmt.Errorf("no ReplicaSet of Deployment %s at revision %q yet", dep.Name, rev)
}
