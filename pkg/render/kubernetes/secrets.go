package kubernetes

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Secrets on Kubernetes: the pods refer to two Secret objects by name,
// SecretName (one key per services.secrets entry) and EnvSecretName (the
// variables of services.env_file). The renderer is pure and the manifest
// holds no secret, so the objects themselves are not rendered: the daemon
// makes them from the files (pkg/kubetarget.SecretObjects), and a user of
// `swiftctl render` makes them with kubectl (docs/kubernetes.md).

// SecretName is the Secret holding a project's services.secrets.
func SecretName(project string) string { return project + "-secrets" }

// EnvSecretName is the Secret holding a project's env files' variables.
func EnvSecretName(project string) string { return project + "-env" }

// secretVolume is the pod volume of the secret files.
const secretVolume = "secrets"

// secretRefs points container c at the app's secrets: the env files as
// envFrom (services.env, PORT and MODE, in env, win over them as on
// Docker), each env secret as a variable from its key, the file secrets
// as a read-only volume at /run/secrets, mode 0400. It returns that
// volume, nil when no secret is a file.
func secretRefs(project string, a stack.App, c *corev1.Container) *corev1.Volume {
	if len(a.EnvFiles) > 0 {
		// In the named form each service has env files of its own: a
		// Secret per service, so that no service sees another's variables
		// (on Docker each container reads its own files).
		name := EnvSecretName(project)
		if a.Service != "" {
			name = EnvSecretName(project + "-" + a.Service)
		}
		c.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}
	}
	var items []corev1.KeyToPath
	for _, s := range a.Secrets {
		if s.Env != "" {
			c.Env = append(c.Env, corev1.EnvVar{Name: s.Env, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: SecretName(project)}, Key: s.Name,
			}}})
			continue
		}
		items = append(items, corev1.KeyToPath{Key: s.Name, Path: s.Name, Mode: ptr(int32(0o400))})
	}
	sortEnv(c.Env)
	if len(items) == 0 {
		return nil
	}
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: secretVolume, MountPath: manifest.SecretsDir, ReadOnly: true})
	return &corev1.Volume{Name: secretVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: SecretName(project), Items: items, DefaultMode: ptr(int32(0o400)),
	}}}
}

func sortEnv(env []corev1.EnvVar) {
	for i := 1; i < len(env); i++ {
		for j := i; j > 0 && env[j].Name < env[j-1].Name; j-- {
			env[j], env[j-1] = env[j-1], env[j]
		}
	}
}

// usesSecrets: the stack's pods refer to Secrets (the daemon then needs
// to write them).
func usesSecrets(s stack.Stack) bool {
	for _, a := range s.Apps() {
		if len(a.EnvFiles) > 0 || len(a.Secrets) > 0 {
			return true
		}
	}
	return false
}

// SecretObjects are the project's Secrets with their content: files
// (services.secrets, by name) in SecretName, env (the env files'
// variables) in EnvSecretName; each only when it has something. The daemon
// applies them and never prints them: status, diff and the journal name a
// Secret, never its data.
func SecretObjects(project, namespace string, files map[string][]byte, env map[string]string) []*corev1.Secret {
	var out []*corev1.Secret
	mk := func(name string) *corev1.Secret {
		return &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: meta(name, namespace, objectLabels(project, stack.RoleApp, "")),
			Type:       corev1.SecretTypeOpaque,
		}
	}
	if len(files) > 0 {
		s := mk(SecretName(project))
		s.Data = map[string][]byte{}
		for k, v := range files {
			s.Data[k] = append([]byte(nil), v...)
		}
		out = append(out, s)
	}
	if len(env) > 0 {
		s := mk(EnvSecretName(project))
		s.Data = map[string][]byte{}
		for k, v := range env {
			s.Data[k] = []byte(v)
		}
		out = append(out, s)
	}
	return out
}
