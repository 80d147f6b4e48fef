package kubernetes

import (
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// rbacNeeds are what the rendered objects need the daemon to write
// beyond Deployments (or Rollouts), Services and HTTPRoutes.
type rbacNeeds struct {
	argo, secrets, claims, statefulSets bool
}

// DaemonName names swiftdeployd's ServiceAccount, Role and RoleBinding
// (prefixed with the project).
const DaemonName = "swiftdeployd"

// rbac is what swiftdeployd needs to converge one project in one
// namespace: the objects it renders, read and written by server-side
// apply (get, list and watch to observe them, patch to apply, delete to
// remove a canary), pods and events read-only, for status, pods' logs
// read-only, for swiftctl logs, its Lease and the namespace's
// HorizontalPodAutoscalers (read). It is a
// Role, not a ClusterRole: the daemon never needs another namespace.
// The cluster policy's facts are cluster-scoped, so the plain target also
// gets a ClusterRole, read-only: nodes (readiness, pressure, allocatable)
// and pods in every namespace (the requests already placed on each node),
// listed and watched by informers.
//
// With secrets (services.secrets, services.env_file), the daemon also
// writes the project's Secret objects: the Role then grants secrets too,
// and only then, as RBAC cannot narrow a grant to some Secrets by label.
//
// With named volumes, the daemon applies their claims: the Role grants
// persistentvolumeclaims then.
//
// In the named form the Role always grants statefulsets (its
// accessories) and persistentvolumeclaims (its volumes, and the claims the
// StatefulSet controller made, which `down --volumes` deletes): the
// daemon observes both even once the manifest has none left, to delete
// what a removed accessory or volume left behind.
func rbacFor(project, namespace string, n rbacNeeds) []Object {
	argo, secrets, claims := n.argo, n.secrets, n.claims
	name := project + "-" + DaemonName
	labels := objectLabels(project, RoleDaemon, "")
	write := []string{"get", "list", "watch", "create", "patch", "update", "delete"}
	read := []string{"get", "list", "watch"}
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: write},
		{APIGroups: []string{""}, Resources: []string{"pods", "events"}, Verbs: read},
		{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
		// The image pull Secret, and no other: the daemon reads it by
		// name (never lists the namespace's Secrets; its informer lists
		// and watches with a metadata.name field selector, which
		// resourceNames authorizes). create cannot be limited to a name
		// (the object does not exist yet).
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{PullSecretName(project)}, Verbs: []string{"get", "list", "watch", "patch", "update", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
	}
	if argo {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{"argoproj.io"}, Resources: []string{"rollouts", "analysistemplates"}, Verbs: write},
			rbacv1.PolicyRule{APIGroups: []string{"argoproj.io"}, Resources: []string{"analysisruns"}, Verbs: read})
	} else {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: write},
			rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: read})
	}
	if secrets {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: write})
	}
	if n.statefulSets {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, Verbs: write})
	}
	if claims {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: write})
	}
	// The daemon applies the HTTPRoute on both targets (on argo-rollouts
	// the plugin then moves its weights).
	rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"httproutes"}, Verbs: write})
	if !argo {
		// Leader election: daemons of the project on this namespace hold
		// one Lease, and only its holder applies. An HPA that targets a
		// Deployment owns its replicas: the daemon reads them to leave
		// them alone.
		rules = append(rules,
			rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
			rbacv1.PolicyRule{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: read})
	}
	objs := []Object{
		&corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: meta(name, namespace, labels),
		},
		&rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
			ObjectMeta: meta(name, namespace, labels),
			Rules:      rules,
		},
		&rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
			ObjectMeta: meta(name, namespace, labels),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}},
		},
	}
	if argo {
		return objs
	}
	// Cluster-scoped names are shared by every namespace: the namespace is
	// part of the name.
	cname := namespace + "-" + name
	return append(objs,
		&rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: cname, Labels: labels},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: read},
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}},
			},
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: cname, Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cname},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}},
		})
}
