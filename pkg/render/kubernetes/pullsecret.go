package kubernetes

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RoleRegistry marks the image pull Secret.
const RoleRegistry = "registry"

// PullSecretName names project's image pull Secret.
func PullSecretName(project string) string { return project + "-registry" }

// pullSecret is the kubernetes.io/dockerconfigjson Secret the pods pull
// their images with: data is Options.PullSecret, the credentials of the
// registries the manifest's images use (registryauth.DockerConfigJSON),
// and only those.
func pullSecret(project, namespace string, data []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta(PullSecretName(project), namespace, objectLabels(project, RoleRegistry, "")),
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: data},
	}
}

// withPullSecret makes a pod template pull with project's Secret.
func withPullSecret(tmpl *corev1.PodTemplateSpec, project string) {
	tmpl.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: PullSecretName(project)}}
}
