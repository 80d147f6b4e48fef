package kubernetes

import (
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// NetworkPolicy keeps the app's pods, and so /chaos and the metrics path
// (the app serves both on its one port), from every other namespace: only
// pods of the project's own namespace may connect. The HTTPRoute refuses
// /chaos at the Gateway; this policy stops a pod elsewhere in the cluster
// from going around the Gateway to a pod's address. A Gateway whose
// proxies run in another namespace needs that namespace added to the
// policy (the manifest does not name it; docs/kubernetes.md).
//
// swiftctl render writes it beside the other objects; the daemon's
// Kubernetes target does not apply it yet.
func NetworkPolicy(m *manifest.Manifest, o Options) (*networkingv1.NetworkPolicy, error) {
	o, err := o.withDefaults(m)
	if err != nil {
		return nil, err
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "NetworkPolicy"},
		ObjectMeta: meta(m.Project+"-app", o.Namespace, objectLabels(m.Project, RoleFrontDoor, "")),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelProject: m.Project, LabelRole: stack.RoleApp}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			// A peer with a pod selector and no namespace selector is a pod
			// of the policy's own namespace.
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}},
			}},
		},
	}, nil
}
