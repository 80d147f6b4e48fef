package kubetarget

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// The project's extras: its Secrets and volume claims (which the Role
// grants only when the manifest has some) and its image pull Secret (read
// by name). The daemon observes them from informers started when first
// asked for, beside the project's cache; until an informer has listed
// (or when the daemon may not list and watch: an older Role), they are
// read from the API, as on every observe before.

// readExtras reads from the API the project's claims and Secrets that x
// asks for, and its image pull Secret when pull.
func readExtras(ctx context.Context, c API, ns, project string, x Extras, pull bool, o *Observed) error {
	sel := Selector(project)
	if x.Claims {
		var cl corev1.PersistentVolumeClaimList
		if err := c.List(ctx, kube.Claims, ns, sel, &cl); kube.IsForbidden(err) {
			o.unseen(UnseenClaims, err)
		} else if err != nil {
			return err
		}
		for _, pvc := range cl.Items {
			o.Claims[pvc.Name] = pvc
		}
	}
	if x.Secrets {
		var sl corev1.SecretList
		if err := c.List(ctx, kube.Secrets, ns, sel, &sl); err != nil {
			return err
		}
		for _, s := range sl.Items {
			o.Secrets[s.Name] = s
		}
	}
	if g, ok := c.(Getter); ok && pull {
		var sec corev1.Secret
		err := g.Get(ctx, kube.Ref{Resource: kube.Secrets, Namespace: ns, Name: k8srender.PullSecretName(project)}, &sec)
		switch {
		case kube.IsNotFound(err):
		case err != nil:
			return err
		case ownPullSecret(&sec, project):
			o.PullSecret = &sec
		}
	}
	return nil
}

// ownPullSecret: sec is the project's pull Secret, not someone else's
// Secret of that name (which is never touched).
func ownPullSecret(sec *corev1.Secret, project string) bool {
	return sec.Labels[k8srender.LabelManagedBy] == k8srender.ManagedBy && sec.Labels[k8srender.LabelProject] == project
}

// An API without Get (a Getter, kube.Client) observes no pull Secret.

// extraInformers are the informers of one project's extras.
type extraInformers struct {
	project               string
	secrets, claims, pull *kube.Informer
}

func (e *extraInformers) stop() {
	e.secrets.Stop()
	e.claims.Stop()
	e.pull.Stop()
	*e = extraInformers{}
}

// extrasFor starts the informers x asks for and stops those it no longer
// asks for (the Role may no longer grant them), all of them when the
// project changes. l.mu is held.
func (l *Live) extrasFor(project string, x Extras) extraInformers {
	e := &l.extras
	if e.project != project {
		e.stop()
		e.project = project
	}
	switch {
	case x.Secrets && e.secrets == nil:
		e.secrets = l.StartSecrets(l.base, l.ns, Selector(project))
	case !x.Secrets && e.secrets != nil:
		e.secrets.Stop()
		e.secrets = nil
	}
	switch {
	case x.Claims && e.claims == nil:
		e.claims = l.StartClaims(l.base, l.ns, Selector(project))
	case !x.Claims && e.claims != nil:
		e.claims.Stop()
		e.claims = nil
	}
	if e.pull == nil {
		e.pull = l.StartSecret(l.base, l.ns, k8srender.PullSecretName(project))
	}
	return *e
}

// observeExtras fills o's extras from their informers, from the API for
// those that have not listed.
func (l *Live) observeExtras(ctx context.Context, project string, x Extras, o *Observed) error {
	l.mu.Lock()
	e := l.extrasFor(project, x)
	l.mu.Unlock()
	var direct Extras
	if x.Claims {
		if e.claims.Synced() {
			for _, v := range e.claims.List() {
				pvc := v.(*corev1.PersistentVolumeClaim)
				o.Claims[pvc.Name] = *pvc.DeepCopy()
			}
		} else {
			direct.Claims = true
		}
	}
	if x.Secrets {
		if e.secrets.Synced() {
			for _, v := range e.secrets.List() {
				s := v.(*corev1.Secret)
				o.Secrets[s.Name] = *s.DeepCopy()
			}
		} else {
			direct.Secrets = true
		}
	}
	pull := !e.pull.Synced()
	if !pull {
		if v, ok := e.pull.Get(l.ns, k8srender.PullSecretName(project)); ok {
			if sec := v.(*corev1.Secret); ownPullSecret(sec, project) {
				o.PullSecret = sec.DeepCopy()
			}
		}
	}
	return readExtras(ctx, l.Client, l.ns, project, direct, pull, o)
}

// extraVersion reads ref's resource version (and whether it is not being
// deleted) from the extras' informer that holds ref's kind; nil when none
// has listed (the next observe reads the API).
func (l *Live) extraVersion(ref kube.Ref) func() (string, bool) {
	l.mu.Lock()
	e := l.extras
	l.mu.Unlock()
	var inf *kube.Informer
	switch ref.Resource {
	case kube.Secrets:
		inf = e.secrets
		if ref.Name == k8srender.PullSecretName(e.project) {
			inf = e.pull
		}
	case kube.Claims:
		inf = e.claims
	}
	if !inf.Synced() {
		return nil
	}
	return func() (string, bool) {
		v, ok := inf.Get(ref.Namespace, ref.Name)
		if !ok {
			return "", false
		}
		m := v.(metav1.Object)
		return m.GetResourceVersion(), m.GetDeletionTimestamp() == nil
	}
}
