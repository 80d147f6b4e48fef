package kubernetes

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// ClaimName is the PersistentVolumeClaim of a project's named volume.
func ClaimName(project, volume string) string { return project + "-" + volume }

// volumeMounts mounts the app's named volumes (their claims) in container
// c and returns the pod's volumes. A bind mount has no Kubernetes
// equivalent a manifest could mean (a hostPath ties the pod to one node's
// files): refused, naming the entry.
func volumeMounts(project string, a stack.App, c *corev1.Container) ([]corev1.Volume, error) {
	var out []corev1.Volume
	for i, v := range a.Volumes {
		field := field(a, "volumes["+strconv.Itoa(i)+"]")
		if v.Type != manifest.VolumeNamed {
			return nil, fmt.Errorf("%s: a bind mount (a host path) cannot be expressed on Kubernetes; use a named volume", field)
		}
		claim := ClaimName(project, v.Source)
		if errs := validation.IsDNS1123Subdomain(claim); len(errs) > 0 {
			return nil, fmt.Errorf("%s.source: %q cannot name a Kubernetes claim (%q: %s); use lower-case letters, digits and '-'", field, v.Source, claim, strings.Join(errs, "; "))
		}
		name := "volume-" + strconv.Itoa(i)
		out = append(out, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: v.ReadOnly},
		}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: v.Target, ReadOnly: v.ReadOnly})
	}
	return out, nil
}

// volumeClaims are the claims of the stack's named volumes, each once:
// ReadWriteOnce, the size the manifest gives (DefaultVolumeSize without
// one). The daemon applies them and never deletes one but for `down
// --volumes`: a claim outlives every change, as a Docker volume does.
func volumeClaims(s stack.Stack, namespace string) ([]Object, error) {
	var out []Object
	seen := map[string]bool{}
	for _, a := range s.Apps() {
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
			out = append(out, &corev1.PersistentVolumeClaim{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
				ObjectMeta: meta(ClaimName(s.Project, v.Source), namespace, objectLabels(s.Project, stack.RoleApp, "")),
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceStorage: *resource.NewQuantity(n, resource.BinarySI),
					}},
				},
			})
		}
	}
	return out, nil
}
