package kubetarget

import (
	appsv1 "k8s.io/api/apps/v1"

	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// ForObserved is what desired means given what is observed: a
// Deployment a HorizontalPodAutoscaler targets is applied without
// spec.replicas, so the HPA's count stands (setting it would take the
// field back at every resync and journal drift_reverted each time).
func ForObserved(d Desired, obs Observed) Desired {
	out := d
	out.Objects = make([]k8srender.Object, 0, len(d.Objects))
	for _, o := range d.Objects {
		if dep, ok := o.(*appsv1.Deployment); ok && obs.Scaled[dep.Name] != "" && dep.Spec.Replicas != nil {
			c := dep.DeepCopy()
			c.Spec.Replicas = nil
			seal(c)
			o = c
		}
		out.Objects = append(out.Objects, o)
	}
	return out
}
