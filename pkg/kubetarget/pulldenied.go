package kubetarget

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// On Kubernetes the kubelet pulls: a registry that refuses the pull
// Secret's credentials (or the lack of any) shows only as a pod waiting
// with ErrImagePull or ImagePullBackOff. This file finds such pods of a
// rollout; pkg/targets/kubernetes makes a lasting denial of them.

// The kubelet's waiting reasons of a container whose image is not pulled.
const (
	ReasonErrImagePull     = "ErrImagePull"
	ReasonImagePullBackOff = "ImagePullBackOff"
)

// PullRefused reports whether a kubelet's pull failure message says the
// registry refused the credentials or the access (401/403): containerd's
// "401 Unauthorized", CRI-O's "unauthorized: authentication required",
// dockershim's "pull access denied" and "no basic auth credentials". A
// missing image, a network or TLS error, a node's own "permission denied"
// are not: those keep the progress deadline. The same words as the
// Docker target's engine.PullDenied, on the runtimes' texts.
func PullRefused(message string) bool {
	msg := strings.ToLower(message)
	// A node's file permission error is not the registry's answer.
	msg = strings.ReplaceAll(msg, "permission denied", "")
	for _, s := range []string{
		"401 unauthorized", "403 forbidden", "unauthorized", "authentication required",
		"no basic auth credentials", "access denied", "denied: ", "access to the resource is denied",
		"incorrect username or password", "invalid username/password",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// WaitingPull is a container of a rollout's pod waiting for its image.
type WaitingPull struct {
	Deployment string
	Pod        corev1.Pod
	Container  string
	Image      string
	// Reason is ErrImagePull or ImagePullBackOff; Message the kubelet's.
	Reason, Message string
}

// WaitingPulls are the containers of the desired Deployments' current
// pods (the ReplicaSet at the Deployment's revision: an older one's
// stuck pod is not this rollout's) that wait for their image to be
// pulled, in pod name order.
func WaitingPulls(desired Desired, obs Observed) []WaitingPull {
	var out []WaitingPull
	for _, obj := range ForObserved(desired, obs).Objects {
		if _, ok := obj.(*appsv1.Deployment); !ok {
			continue
		}
		dep, ok := obs.Deployments[obj.GetName()]
		if !ok || dep.Spec.Selector == nil || dep.Status.ObservedGeneration < dep.Generation {
			continue // the controller has not made this template's pods yet
		}
		hash, err := CurrentPodTemplateHash(obs, dep)
		if err != nil {
			continue
		}
		sel := labels.SelectorFromSet(dep.Spec.Selector.MatchLabels)
		for _, p := range obs.Pods {
			if p.Labels["pod-template-hash"] != hash || !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
				w := cs.State.Waiting
				if w == nil || (w.Reason != ReasonErrImagePull && w.Reason != ReasonImagePullBackOff) {
					continue
				}
				out = append(out, WaitingPull{Deployment: dep.Name, Pod: p, Container: cs.Name,
					Image: containerImage(p, cs), Reason: w.Reason, Message: w.Message})
			}
		}
	}
	return out
}

// containerImage is the image the pod asks for (the status may show a
// resolved name).
func containerImage(p corev1.Pod, cs corev1.ContainerStatus) string {
	for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		if c.Name == cs.Name {
			return c.Image
		}
	}
	return cs.Image
}

// PullSecretHash is the content hash of the live image pull Secret ("" when
// there is none): the kubelet's next pull sends what it holds, so a
// registry's refusal is worth asking again once it changed. Kept in
// memory only; never shown.
func PullSecretHash(obs Observed) string {
	s := obs.PullSecret
	if s == nil {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(s.Type))
	keys := make([]string, 0, len(s.Data))
	for k := range s.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		h.Write([]byte{0})
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write(s.Data[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}
