package kubernetes

import (
	"bytes"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// With pull credentials, the Secret comes first (it must exist before a
// pod pulls) and every pod template names it; without, neither appears.
func TestPullSecret(t *testing.T) {
	m := parse(t, withServices("  canary: {image: app:2, weight: 10}"))
	payload := []byte(`{"auths":{"registry.example.com":{"username":"u","password":"p","auth":"dTpw"}}}`)
	for _, tc := range []struct {
		name   string
		render func() ([]Object, error)
		pods   int
	}{
		{"kubernetes", func() ([]Object, error) { return Kubernetes(m, Options{PullSecret: payload}) }, 2},
		{"argo-rollouts", func() ([]Object, error) {
			return ArgoRollouts(m, Options{PullSecret: payload, PrometheusURL: "http://prometheus:9090"})
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := tc.render()
			if err != nil {
				t.Fatal(err)
			}
			sec, ok := objs[0].(*corev1.Secret)
			if !ok {
				t.Fatalf("first object is %T, want the pull Secret", objs[0])
			}
			if sec.Name != "web-registry" || sec.Type != corev1.SecretTypeDockerConfigJson || !bytes.Equal(sec.Data[corev1.DockerConfigJsonKey], payload) {
				t.Fatalf("secret %s of type %s with keys %v", sec.Name, sec.Type, len(sec.Data))
			}
			if sec.Labels[LabelManagedBy] != ManagedBy || sec.Labels[LabelProject] != "web" {
				t.Errorf("secret labels %v", sec.Labels)
			}
			pods := 0
			for _, o := range objs {
				var spec *corev1.PodSpec
				switch x := o.(type) {
				case *appsv1.Deployment:
					spec = &x.Spec.Template.Spec
				case *Rollout:
					spec = &x.Spec.Template.Spec
				default:
					continue
				}
				pods++
				if len(spec.ImagePullSecrets) != 1 || spec.ImagePullSecrets[0].Name != "web-registry" {
					t.Errorf("%s %s: imagePullSecrets %v", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), spec.ImagePullSecrets)
				}
			}
			if pods != tc.pods {
				t.Errorf("%d pod templates, want %d", pods, tc.pods)
			}
		})
	}
	objs, err := Kubernetes(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if _, ok := o.(*corev1.Secret); ok {
			t.Error("a Secret without pull credentials")
		}
		if d, ok := o.(*appsv1.Deployment); ok && len(d.Spec.Template.Spec.ImagePullSecrets) != 0 {
			t.Errorf("%s names a pull secret without credentials", d.Name)
		}
	}
}
