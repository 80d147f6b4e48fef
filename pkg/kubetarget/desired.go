package kubetarget

import (
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Selector selects every object the daemon owns for project: both the
// project label and the managed-by label must be there, so an object
// someone else labelled with the project alone is never touched.
func Selector(project string) string {
	return k8srender.LabelProject + "=" + project + "," + k8srender.LabelManagedBy + "=" + k8srender.ManagedBy
}

// Desired is what the namespace should hold for a manifest.
type Desired struct {
	Project   string
	Namespace string
	Stack     stack.Stack
	// Objects are the Deployments, Services and the HTTPRoute, in apply
	// order. The RBAC the renderer also writes is not applied by the
	// daemon: it cannot grant itself permissions.
	Objects []k8srender.Object
	// Keep names objects ("Kind/name") left as they are for now: not
	// applied, not deleted (a promotion's stable Deployment while its
	// traffic moves to the canary; see stage.go).
	Keep map[string]bool
	// Bridges, one per promotion of a web service's canary the manifest
	// has not caught up with (the primary's, or another service's), are
	// the stages that move every request of that service to its canary
	// at the stable's size first (stage.go).
	Bridges []*Bridge
	// Secrets are the project's Secrets with their content (secrets.go),
	// applied before the objects and kept out of Revision: their content
	// reaches the pods' template only as the keyed digest in the config
	// hash.
	Secrets []*corev1.Secret
}

// DesiredFor renders m refined by o (a promotion, a rollback) for ns;
// pullSecret, when set, is the .dockerconfigjson of the image pull Secret
// (k8srender.Options.PullSecret).
func DesiredFor(m *manifest.Manifest, o stack.Options, ns, gateway string, deadline time.Duration, pullSecret []byte) (Desired, error) {
	if err := Accept(m); err != nil {
		return Desired{}, err
	}
	d, err := render(m, o, ns, gateway, deadline, pullSecret)
	if err != nil {
		return d, err
	}
	if c := m.Main().Canary; c != nil && o.StableImage != "" && c.Image == o.StableImage {
		// A promotion of the primary's canary: its traffic moves to the
		// canary at full size before the stable Deployment rolls
		// (stage.go). The bridge is the pre-promotion stack with every
		// request on the canary.
		bo := o
		bo.StableImage, bo.NoCanary, bo.CanaryWeight = "", false, 100
		if err := addBridge(&d, m, bo, d.Stack.Primary, ns, gateway, deadline, pullSecret); err != nil {
			return d, err
		}
	}
	for _, n := range promotedOthers(m, o) {
		// The same for another web service's promotion (its image
		// override is its canary's image): that service's canary at 100,
		// every other service as o has it.
		bo := o
		bo.ServiceImages = map[string]string{}
		for k, v := range o.ServiceImages {
			if k != n {
				bo.ServiceImages[k] = v
			}
		}
		bo.Canaries = map[string]stack.CanaryOptions{}
		for k, v := range o.Canaries {
			bo.Canaries[k] = v
		}
		bo.Canaries[n] = stack.CanaryOptions{Weight: 100}
		if err := addBridge(&d, m, bo, n, ns, gateway, deadline, pullSecret); err != nil {
			return d, err
		}
	}
	return d, nil
}

// promotedOthers names the web services other than the primary whose
// image override (o.ServiceImages) is the canary image the manifest still
// declares for them: a promotion the manifest has not caught up with.
func promotedOthers(m *manifest.Manifest, o stack.Options) []string {
	if !m.IsNamed() {
		return nil
	}
	p, _ := m.Primary()
	var out []string
	for _, n := range m.ServiceNames() {
		s := m.Named[n]
		if n != p && s.EffectiveKind() == manifest.KindWeb && s.Canary != nil && o.ServiceImages[n] != "" && o.ServiceImages[n] == s.Canary.Image && s.Image != s.Canary.Image {
			out = append(out, n)
		}
	}
	return out
}

// addBridge renders m under bo (the pre-promotion stack with service's
// canary at 100) and adds the bridge of service's promotion to d.
func addBridge(d *Desired, m *manifest.Manifest, bo stack.Options, service, ns, gateway string, deadline time.Duration, pullSecret []byte) error {
	b, err := render(m, bo, ns, gateway, deadline, pullSecret)
	if err != nil {
		who := service
		if who == "" {
			who = m.Project // the single-service form
		}
		return fmt.Errorf("bridge of %s's promotion: %w", who, err)
	}
	if br := bridgeOf(b, *d, namesFor(d.Project, service)); br != nil {
		d.Bridges = append(d.Bridges, br)
	}
	return nil
}

// renderObjects is the renderer; a test makes one render fail.
var renderObjects = k8srender.Kubernetes

func render(m *manifest.Manifest, o stack.Options, ns, gateway string, deadline time.Duration, pullSecret []byte) (Desired, error) {
	objs, err := renderObjects(m, k8srender.Options{Namespace: ns, Gateway: gateway, Stack: o, PullSecret: pullSecret, NamedForm: true})
	if err != nil {
		return Desired{}, err
	}
	if deadline <= 0 {
		deadline = DefaultProgressDeadline
	}
	d := Desired{Project: m.Project, Namespace: ns, Stack: stack.FromManifest(m, o)}
	// Claims first: the pods a Deployment starts mount them. The rest in
	// the renderer's order: the named form's services in start order (an
	// accessory's StatefulSet before the Deployments that depend on it).
	for _, obj := range objs {
		if v, ok := obj.(*corev1.PersistentVolumeClaim); ok {
			d.Objects = append(d.Objects, v)
		}
	}
	for _, obj := range objs {
		switch v := obj.(type) {
		case *appsv1.Deployment:
			secs := int32(deadline / time.Second)
			v.Spec.ProgressDeadlineSeconds = &secs
			d.Objects = append(d.Objects, v)
		case *appsv1.StatefulSet, *corev1.Service, *gatewayv1.HTTPRoute, *corev1.Secret:
			d.Objects = append(d.Objects, v)
		}
	}
	for _, o := range d.Objects {
		seal(o)
	}
	return d, nil
}

// RefOf names a rendered object for the API.
func RefOf(o k8srender.Object) kube.Ref {
	var r kube.Resource
	switch o.(type) {
	case *appsv1.Deployment:
		r = kube.Deployments
	case *appsv1.StatefulSet:
		r = kube.StatefulSets
	case *corev1.Service:
		r = kube.Services
	case *gatewayv1.HTTPRoute:
		r = kube.HTTPRoutes
	case *corev1.Secret:
		r = kube.Secrets
	case *corev1.PersistentVolumeClaim:
		r = kube.Claims
	}
	return kube.Ref{Resource: r, Namespace: o.GetNamespace(), Name: o.GetName()}
}

// Op kinds.
const (
	OpApply  = "apply"
	OpDelete = "delete"
)

// WorkerMetrics refuses a worker with metrics of its own
// (services.NAME.metrics): the Kubernetes target rolls a worker's
// Deployment on readiness and does not judge it on its figures yet, and a
// judgement asked for must not be dropped in silence.
func WorkerMetrics(m *manifest.Manifest) error {
	ve := &manifest.ValidationError{}
	for _, n := range m.ServiceNames() {
		if s := m.Named[n]; s.Metrics != nil {
			ve.Problems = append(ve.Problems, manifest.Problem{Field: "services." + n + ".metrics",
				Msg: "on --target kubernetes a worker is not judged on its own metrics yet (its Deployment rolls on readiness); remove metrics or deploy with the docker target"})
		}
	}
	if len(ve.Problems) == 0 {
		return nil
	}
	return ve
}

// Accept is every refusal of a manifest the Kubernetes target cannot run
// as written (WorkerMetrics, k8srender.RouteRules), as one validation
// error. The controller asks it when it reads a manifest, so the last good
// one stays in force, and planning asks it again before anything is
// applied.
func Accept(m *manifest.Manifest) error {
	all := &manifest.ValidationError{}
	for _, err := range []error{WorkerMetrics(m), k8srender.RouteRules(m)} {
		var ve *manifest.ValidationError
		switch {
		case err == nil:
		case errors.As(err, &ve):
			all.Problems = append(all.Problems, ve.Problems...)
		default:
			return err
		}
	}
	if len(all.Problems) == 0 {
		return nil
	}
	return all
}
