package kubernetes

import (
	"fmt"
	"sync"

	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/registryauth"
)

// A registry that refuses the kubelet's pull is a lasting denial, as on
// Docker (reconciler.PullDeniedError): the rollout fails at once, not at
// its progress deadline, and stays failed until the manifest or the pull
// Secret changes. The kubelet keeps retrying meanwhile (its own backoff),
// and its status alternates ErrImagePull (the runtime's error) and
// ImagePullBackOff ("Back-off pulling image", no cause before 1.32's
// kubelets), so the refusal is remembered per container, with the
// attempt it belongs to: the desired revision and the pull Secret's
// content. A refusal seen under another attempt is stale: the
// credentials or the manifest changed since; it counts again only once
// the kubelet reports anew (its status changes).

// pullDenials is the target's memory of the refusals seen.
type pullDenials struct {
	mu   sync.Mutex
	seen map[string]pullSeen // by pod UID (or name) and container
}

type pullSeen struct {
	reason, message string // the kubelet's last waiting status
	refused         bool   // the registry refused the last pull
	refusal         string // that pull's message
	attempt         string // the attempt the refusal was seen under
}

// denied is the lasting refusal of the pull of a desired Deployment's
// current pods under rev (the desired revision), or nil. It updates the
// memory from obs: pods gone, or no longer waiting for their image, are
// forgotten.
func (p *pullDenials) denied(desired kubetarget.Desired, rev string, obs kubetarget.Observed) *reconciler.PullDeniedError {
	attempt := rev + "/" + kubetarget.PullSecretHash(obs)
	p.mu.Lock()
	defer p.mu.Unlock()
	next := map[string]pullSeen{}
	var first *kubetarget.WaitingPull
	var firstSeen pullSeen
	for _, w := range kubetarget.WaitingPulls(desired, obs) {
		id := string(w.Pod.UID)
		if id == "" {
			id = w.Pod.Name
		}
		k := id + "/" + w.Container
		cur, had := p.seen[k]
		if !had || cur.reason != w.Reason || cur.message != w.Message {
			cur.reason, cur.message = w.Reason, w.Message
			switch {
			case kubetarget.PullRefused(w.Message):
				cur.refused, cur.refusal, cur.attempt = true, w.Message, attempt
			case w.Reason == kubetarget.ReasonErrImagePull:
				cur.refused = false // a failure of another kind now
			}
			// An ImagePullBackOff that does not say why continues the
			// pull failure before it.
		}
		next[k] = cur
		if cur.refused && cur.attempt == attempt && first == nil {
			w := w
			first, firstSeen = &w, cur
		}
	}
	p.seen = next
	if first == nil {
		return nil
	}
	registry, err := registryauth.Host(first.Image)
	if err != nil {
		registry = "of " + first.Image
	}
	auth := "no image pull Secret"
	if obs.PullSecret != nil {
		auth = "image pull Secret " + obs.PullSecret.Name
	}
	return &reconciler.PullDeniedError{Image: first.Image, Registry: registry, Auth: auth,
		Err: fmt.Errorf("Deployment %s: pod %s: %s: %s", first.Deployment, first.Pod.Name, kubetarget.ReasonErrImagePull, firstSeen.refusal)}
}
