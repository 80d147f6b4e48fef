package kubernetes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// leadership is what this daemon knows of its namespace's leader
// election: two daemons of one project on one namespace (a standby, a
// rolling update of the daemon's own Deployment) elect one leader on a
// coordination.k8s.io Lease; only it applies. The other serves status
// and every read-only call from its own informers, and refuses what
// would change the cluster, naming the leader.
type leadership struct {
	mu       sync.Mutex
	elected  bool   // an election runs (false: this daemon always acts)
	leading  bool   // this daemon holds the Lease
	holder   string // who holds it, as last seen
	identity string
	lease    string
}

// Acting is nil when this daemon may change the cluster: it leads, or
// no election runs.
func (t *Target) Acting() error {
	l := &t.lead
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.elected || l.leading {
		return nil
	}
	holder := l.holder
	if holder == "" {
		holder = "no one yet (the election has not decided)"
	}
	return fmt.Errorf("this daemon (%s) is not the leader of namespace %s: the Lease %s is held by %s; it serves status only",
		l.identity, t.cfg.Namespace, l.lease, holder)
}

// Leader reports the election for status: whether this daemon leads, and
// who does ("" when no election runs).
func (t *Target) Leader() (leading bool, holder string) {
	l := &t.lead
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.elected {
		return true, ""
	}
	return l.leading, l.holder
}

// identity names this daemon in the Lease: stable across restarts (the
// host and the manifest's directory), so a restarted leader renews its
// own lease at once instead of waiting for it to expire.
func (t *Target) identity() string {
	if t.cfg.Identity != "" {
		return t.cfg.Identity
	}
	host, _ := os.Hostname()
	dir, _ := filepath.Abs(t.d.Dir)
	return host + ":" + dir
}

// runElection campaigns for the project's Lease until ctx ends. Until the
// manifest names the project (the Lease is the project's), it waits; a
// daemon that cannot act does not apply meanwhile.
func (t *Target) runElection(ctx context.Context) {
	if t.elect == nil {
		return
	}
	d := t.d
	l := &t.lead
	l.mu.Lock()
	l.identity = t.identity()
	l.mu.Unlock()
	project := d.Project()
	for project == "" && ctx.Err() == nil {
		sleepCtx(ctx, 250*time.Millisecond)
		project = d.Project()
	}
	if ctx.Err() != nil {
		return
	}
	lease := project + "-" + k8srender.DaemonName
	l.mu.Lock()
	l.lease = lease
	l.mu.Unlock()
	e := kube.Election{Namespace: t.cfg.Namespace, Lease: lease, Identity: l.identity, LeaseDuration: t.cfg.LeaseDuration,
		OnNewLeader: func(id string) {
			l.mu.Lock()
			l.holder = id
			l.mu.Unlock()
			d.Log.Info("leader of the namespace", zap.String("lease", lease), zap.String("identity", id))
		}}
	lead := func(context.Context) {
		l.mu.Lock()
		l.leading, l.holder = true, l.identity
		l.mu.Unlock()
		d.Event(journal.EventLeaderElected, fmt.Sprintf("this daemon (%s) leads namespace %s (Lease %s): it applies", l.identity, t.cfg.Namespace, lease),
			map[string]any{"identity": l.identity, "lease": lease, "namespace": t.cfg.Namespace})
		d.Wake()
	}
	lost := func() {
		l.mu.Lock()
		was := l.leading
		l.leading = false
		l.mu.Unlock()
		if was {
			d.Event(journal.EventLeaderLost, fmt.Sprintf("this daemon (%s) no longer leads namespace %s (Lease %s): it stops applying", l.identity, t.cfg.Namespace, lease),
				map[string]any{"identity": l.identity, "lease": lease, "namespace": t.cfg.Namespace})
		}
	}
	if err := t.elect(ctx, e, lead, lost); err != nil {
		d.Log.Error("leader election", zap.Error(err))
	}
}
