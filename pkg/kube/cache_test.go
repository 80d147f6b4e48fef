package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func waitingPod(reason, msg string) *corev1.Pod {
	p := &corev1.Pod{}
	if reason != "" {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}
	}
	return p
}

// A pod's new pull failure wakes a reconcile; the rest of a pod's life
// does not (its Deployment's status tells it).
func TestPullWaitChanged(t *testing.T) {
	for _, c := range []struct {
		name     string
		old, cur *corev1.Pod
		want     bool
	}{
		{"starts waiting for its image", waitingPod("", ""), waitingPod("ErrImagePull", "401 Unauthorized"), true},
		{"backs off", waitingPod("ErrImagePull", "401 Unauthorized"), waitingPod("ImagePullBackOff", `Back-off pulling image "a"`), true},
		{"pulls again", waitingPod("ImagePullBackOff", `Back-off pulling image "a"`), waitingPod("ErrImagePull", "401 Unauthorized"), true},
		{"same report", waitingPod("ErrImagePull", "401 Unauthorized"), waitingPod("ErrImagePull", "401 Unauthorized"), false},
		{"creating", waitingPod("", ""), waitingPod("ContainerCreating", ""), false},
		{"pulled", waitingPod("ErrImagePull", "x"), waitingPod("", ""), false},
	} {
		if got := pullWaitChanged(c.old, c.cur); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
