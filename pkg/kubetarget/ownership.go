package kubetarget

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// Ownership of a name. The plan sees only the objects that carry the
// project's labels, so an object of the same name that is not the
// project's (another project's: the named form names a Service after its
// service, `web`, and `shop` with a service `web` names its canary
// `shop-web-canary`, as does the project `shop-web`; or one made by hand)
// looks missing, and a server-side apply under swiftdeploy's field
// manager would take it over without a conflict, relabelled. So each
// object a plan creates is read by name first (Creates, CheckCreates).

// Creates are the plan's applies of objects it did not observe.
func Creates(p Plan) []Op {
	var out []Op
	for _, op := range p.Ops {
		if op.Kind == OpApply && op.Create {
			out = append(out, op)
		}
	}
	return out
}

// CheckCreates reads by name each object p creates and says why p must
// not run ("" when it may): an object of that name exists that project
// does not own (another project's, or one without swiftdeploy's labels).
// An object of the project's own (the cache not caught up yet) is not a
// reason. A read that fails is an error naming the object.
func CheckCreates(ctx context.Context, g Getter, project string, p Plan) (string, error) {
	for _, op := range Creates(p) {
		var v struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		err := g.Get(ctx, op.Ref, &v)
		if kube.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read %s before creating it: %w", op.Ref, err)
		}
		if why := foreign(op.Ref, v.Metadata.Labels, project); why != "" {
			return why, nil
		}
	}
	return "", nil
}

// foreign says why an existing object named ref is not project's to
// apply ("" when it is).
func foreign(ref kube.Ref, labels map[string]string, project string) string {
	owner, managed := labels[k8srender.LabelProject], labels[k8srender.LabelManagedBy] == k8srender.ManagedBy
	switch {
	case managed && owner == project:
		return ""
	case managed && owner != "":
		return fmt.Sprintf("%s %s/%s exists and belongs to project %s, not to %s: it is not taken over (give each project its own namespace, or rename the service or project whose object takes that name)",
			ref.Resource.Kind, ref.Namespace, ref.Name, owner, project)
	default:
		return fmt.Sprintf("%s %s/%s exists and was not made by swiftdeploy for project %s (no %s=%s and %s=%s labels): it is not taken over (delete or rename it, or deploy to another namespace)",
			ref.Resource.Kind, ref.Namespace, ref.Name, project, k8srender.LabelManagedBy, k8srender.ManagedBy, k8srender.LabelProject, project)
	}
}

// Getter reads one object by name (kube.Client).
type Getter interface {
	Get(ctx context.Context, ref kube.Ref, v any) error
}
