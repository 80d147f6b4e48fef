package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// TestDaemonDeploysScalesAndRollsOut runs swiftdeployd --target
// kubernetes on an empty namespace: from nothing to available, then a
// scale and an image change, each an edit of the manifest that the daemon
// picks up by itself; each is journaled deploy_succeeded exactly once,
// when the API shows it rolled out. Then down deletes what it owns.
func TestDaemonDeploysScalesAndRollsOut(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "daemon")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	k := startDaemon(t, c, ns, manifestYAML("app:1", 2, "0.1", "", ""), daemonOpts{})
	c.waitRolledOut(ctx, t, ns, "shop-stable", 2, "app:1")
	eventually(ctx, t, "route to stable", func() (bool, string) {
		w := c.routeWeights(ctx, t, ns, "shop")
		return w == "shop-stable=100", w
	})
	t.Logf("from nothing to rolled out and routed: %.2fs", time.Since(start).Seconds())
	converged := func(image string, replicas int32) {
		t.Helper()
		eventually(ctx, t, "status converged on "+image, func() (bool, string) {
			s := k.status(ctx)
			ok := s.Converged && s.Mode == "stable" && s.StableImage == image && s.Kubernetes != nil &&
				len(s.Kubernetes.Deployments) == 1 && s.Kubernetes.Deployments[0].RolledOut && s.Kubernetes.Deployments[0].Available == replicas
			return ok, fmt.Sprintf("converged %v mode %q stable %q pending %q kube %+v last %+v", s.Converged, s.Mode, s.StableImage, s.Pending, s.Kubernetes, s.LastReconcile)
		})
	}
	converged("app:1", 2)
	succeeded := func(n int) {
		t.Helper()
		eventually(ctx, t, fmt.Sprintf("%d deploy_succeeded", n), func() (bool, string) {
			got := len(k.events(journal.EventDeploySucceeded))
			return got == n, fmt.Sprintf("%d", got)
		})
	}
	succeeded(1)
	var v api.Validation
	if err := k.api.Post(ctx, api.PathValidate, nil, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Checks) != 3 {
		t.Fatalf("validate: %+v, want 3 checks", v)
	}
	for _, ch := range v.Checks {
		if !ch.OK {
			t.Fatalf("validate: %+v", v)
		}
	}

	k.write(manifestYAML("app:1", 3, "0.1", "", ""))
	c.waitRolledOut(ctx, t, ns, "shop-stable", 3, "app:1")
	converged("app:1", 3)
	succeeded(2)

	edited := k.write(manifestYAML("app:2", 3, "0.1", "", ""))
	c.waitRolledOut(ctx, t, ns, "shop-stable", 3, "app:2")
	t.Logf("manifest edit (image) to a rolled-out Deployment (3 pods): %.2fs", time.Since(edited).Seconds())
	converged("app:2", 3)
	succeeded(3)
	// Exactly once: a resync (and the watch events of the rollout) later,
	// still three.
	time.Sleep(k.resync + time.Second)
	if n := len(k.events(journal.EventDeploySucceeded)); n != 3 {
		t.Fatalf("%d deploy_succeeded after a resync, want 3 (one per change)", n)
	}
	if n := len(k.events(journal.EventModeSwitched)); n != 0 {
		t.Fatalf("%d mode_switched without a canary", n)
	}

	if p := k.call(ctx, api.PathDown, nil); p.Error != "" {
		t.Fatalf("down: %s", p.Error)
	}
	for _, path := range []string{
		"/apis/apps/v1/namespaces/" + ns + "/deployments/shop-stable",
		"/api/v1/namespaces/" + ns + "/services/shop-stable",
		"/apis/gateway.networking.k8s.io/v1/namespaces/" + ns + "/httproutes/shop",
	} {
		if c.exists(ctx, t, path) {
			t.Errorf("%s still there after down", path)
		}
	}
	// Down holds: a resync does not bring it back.
	time.Sleep(k.resync + time.Second)
	if c.exists(ctx, t, "/apis/apps/v1/namespaces/"+ns+"/deployments/shop-stable") {
		t.Fatal("the daemon brought the Deployment back after down")
	}
}

// TestDaemonCanaryRollbackAndNoDataPromotion: a canary's weights are in
// the HTTPRoute and the status; promotion without Prometheus data is
// denied and changes nothing; rollback sends everything to stable first
// and then deletes the canary's Deployment and Service, journaled once.
func TestDaemonCanaryRollbackAndNoDataPromotion(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "canary")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	k := startDaemon(t, c, ns, manifestYAML("app:1", 2, "0.1", canaryYAML("app:2", 20, 1), ""), daemonOpts{})
	c.waitRolledOut(ctx, t, ns, "shop-canary", 1, "app:2")
	eventually(ctx, t, "canary weights in the HTTPRoute", func() (bool, string) {
		w := c.routeWeights(ctx, t, ns, "shop")
		return w == "shop-canary=20 shop-stable=80", w
	})
	eventually(ctx, t, "status in canary mode", func() (bool, string) {
		s := k.status(ctx)
		ok := s.Mode == "canary" && s.CanaryImage == "app:2" && s.CanaryWeight == 20 && s.StableImage == "app:1" && s.Converged &&
			s.Kubernetes.RouteWeights["shop-canary"] == 20 && len(s.Containers) == 3
		return ok, fmt.Sprintf("%+v", s)
	})
	eventually(ctx, t, "mode switch journaled", func() (bool, string) {
		e := k.events(journal.EventModeSwitched)
		return len(e) == 1 && e[0].Details["mode"] == "canary", fmt.Sprint(e)
	})

	// No Prometheus named: nothing to judge the canary by, so no.
	p := k.call(ctx, api.PathPromote, nil)
	if len(p.Denied) == 0 || !strings.Contains(strings.Join(p.Denied, "; "), "metrics.prometheus is not set") {
		t.Fatalf("promotion without data: %+v, want denied saying metrics.prometheus is not set", p)
	}
	if w := c.routeWeights(ctx, t, ns, "shop"); w != "shop-canary=20 shop-stable=80" {
		t.Fatalf("a denied promotion changed the route: %s", w)
	}
	if d, _ := c.deployment(ctx, t, ns, "shop-stable"); d.Spec.Template.Spec.Containers[0].Image != "app:1" {
		t.Fatalf("a denied promotion changed stable's image to %s", d.Spec.Template.Spec.Containers[0].Image)
	}
	if n := len(k.events(journal.EventPromoteDenied)); n != 1 {
		t.Fatalf("%d promote_denied, want 1", n)
	}

	p = k.call(ctx, api.PathRollback, nil)
	if p.Error != "" {
		t.Fatalf("rollback: %s", p.Error)
	}
	// Committed means observed: by the time the call returns, the route
	// is at stable 100 and the canary is gone.
	if w := c.routeWeights(ctx, t, ns, "shop"); w != "shop-stable=100" {
		t.Fatalf("after rollback the route is %s", w)
	}
	for _, path := range []string{"/apis/apps/v1/namespaces/" + ns + "/deployments/shop-canary", "/api/v1/namespaces/" + ns + "/services/shop-canary"} {
		if c.exists(ctx, t, path) {
			t.Fatalf("%s still there after rollback", path)
		}
	}
	if n := len(k.events(journal.EventRolledBack)); n != 1 {
		t.Fatalf("%d rolled_back, want 1", n)
	}
	// The rollback holds while the manifest names the same canary.
	time.Sleep(k.resync + time.Second)
	if c.exists(ctx, t, "/apis/apps/v1/namespaces/"+ns+"/deployments/shop-canary") {
		t.Fatal("the rolled-back canary came back")
	}
	if n := len(k.events(journal.EventRolledBack)); n != 1 {
		t.Fatalf("%d rolled_back after a resync, want 1", n)
	}
	// A new canary image in the manifest is a new canary.
	k.write(manifestYAML("app:1", 2, "0.1", canaryYAML("app:3", 30, 1), ""))
	c.waitRolledOut(ctx, t, ns, "shop-canary", 1, "app:3")
	eventually(ctx, t, "the new canary routed", func() (bool, string) {
		w := c.routeWeights(ctx, t, ns, "shop")
		return w == "shop-canary=30 shop-stable=70", w
	})
	// Removed from the manifest: the route first, then its objects.
	k.write(manifestYAML("app:1", 2, "0.1", "", ""))
	eventually(ctx, t, "the canary removed", func() (bool, string) {
		w := c.routeWeights(ctx, t, ns, "shop")
		gone := !c.exists(ctx, t, "/apis/apps/v1/namespaces/"+ns+"/deployments/shop-canary") && !c.exists(ctx, t, "/api/v1/namespaces/"+ns+"/services/shop-canary")
		return w == "shop-stable=100" && gone, w
	})
}

// TestDaemonRevertsDrift: someone edits the stable Deployment's image
// (an update by another field manager) and deletes the canary Service;
// the watches wake the daemon, which puts both back and journals the
// revert, naming who changed what.
func TestDaemonRevertsDrift(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "drift")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	k := startDaemon(t, c, ns, manifestYAML("app:1", 2, "0.1", canaryYAML("app:2", 10, 1), ""), daemonOpts{resync: time.Minute})
	c.waitRolledOut(ctx, t, ns, "shop-canary", 1, "app:2")
	eventually(ctx, t, "converged", func() (bool, string) {
		s := k.status(ctx)
		return s.Converged, fmt.Sprint(s.Pending)
	})

	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"evil:6"}]}}}}`
	at := time.Now()
	if _, _, err := c.do(ctx, http.MethodPatch, "/apis/apps/v1/namespaces/"+ns+"/deployments/shop-stable?fieldManager=e2e-hand-edit", []byte(patch), "application/strategic-merge-patch+json"); err != nil {
		t.Fatal(err)
	}
	c.waitRolledOut(ctx, t, ns, "shop-stable", 2, "app:1")
	t.Logf("edited image reverted and rolled out: %.2fs (the timer is 1m: the watch did it)", time.Since(at).Seconds())
	eventually(ctx, t, "drift journaled", func() (bool, string) {
		e := k.events("drift_reverted")
		return len(e) >= 1 && strings.Contains(e[0].Message, "e2e-hand-edit") && strings.Contains(e[0].Message, "evil:6 → app:1"), fmt.Sprint(e)
	})

	at = time.Now()
	if _, _, err := c.do(ctx, http.MethodDelete, "/api/v1/namespaces/"+ns+"/services/shop-canary", nil, ""); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "canary Service back", func() (bool, string) {
		return c.exists(ctx, t, "/api/v1/namespaces/"+ns+"/services/shop-canary"), "missing"
	})
	t.Logf("deleted canary Service back: %.2fs", time.Since(at).Seconds())
}

// TestDaemonRefusesObjectsItDidNotApply: a Deployment of the project's
// name that another field manager applied is not taken over: the
// conflict is the reconcile's error, naming the object, and the object is
// left as it was.
func TestDaemonRefusesObjectsItDidNotApply(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "foreign")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	foreign := fmt.Sprintf(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"shop-stable","namespace":%q,
"labels":{"io.swiftdeploy.project":"shop","app.kubernetes.io/managed-by":"swiftdeploy"}},
"spec":{"replicas":1,"selector":{"matchLabels":{"io.swiftdeploy.project":"shop","io.swiftdeploy.role":"app","io.swiftdeploy.track":"stable"}},
"template":{"metadata":{"labels":{"io.swiftdeploy.project":"shop","io.swiftdeploy.role":"app","io.swiftdeploy.track":"stable"}},
"spec":{"containers":[{"name":"app","image":"theirs:1"}]}}}}`, ns)
	if _, _, err := c.do(ctx, http.MethodPatch, "/apis/apps/v1/namespaces/"+ns+"/deployments/shop-stable?fieldManager=helm", []byte(foreign), "application/apply-patch+yaml"); err != nil {
		t.Fatal(err)
	}
	k := startDaemon(t, c, ns, manifestYAML("app:1", 2, "0.1", "", ""), daemonOpts{})
	eventually(ctx, t, "the conflict reported", func() (bool, string) {
		s := k.status(ctx)
		if s.LastReconcile == nil {
			return false, "no reconcile yet"
		}
		e := s.LastReconcile.Error
		return strings.Contains(e, "Deployment "+ns+"/shop-stable") && strings.Contains(e, "not applied by swiftdeploy") && strings.Contains(e, "helm"), e
	})
	if d, _ := c.deployment(ctx, t, ns, "shop-stable"); d.Spec.Template.Spec.Containers[0].Image != "theirs:1" {
		t.Fatalf("the foreign Deployment was changed: image %s", d.Spec.Template.Spec.Containers[0].Image)
	}
	if n := len(k.events(journal.EventDeployFailed)); n != 1 {
		t.Fatalf("%d deploy_failed, want the conflict journaled once", n)
	}
}

// TestDaemonRunsWithTheRenderedRBAC: the ServiceAccount, Role,
// RoleBinding, ClusterRole and ClusterRoleBinding the renderer writes are
// applied by an admin; the daemon then runs with nothing but a token of
// that ServiceAccount, converges a canary, reads the cluster's facts for
// its gate (nodes: the ClusterRole) and rolls the canary back. The API
// server's RBAC would refuse any call the rendered rules do not grant.
func TestDaemonRunsWithTheRenderedRBAC(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "rbac")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	text := manifestYAML("app:1", 2, "0.1", canaryYAML("app:2", 10, 1), "")
	m, err := manifest.Parse([]byte(text), "shop")
	if err != nil {
		t.Fatal(err)
	}
	sa := c.asServiceAccount(ctx, t, ns, m)
	k := startDaemon(t, sa, ns, text, daemonOpts{})
	c.waitRolledOut(ctx, t, ns, "shop-canary", 1, "app:2")
	eventually(ctx, t, "converged as the ServiceAccount", func() (bool, string) {
		s := k.status(ctx)
		infra := ""
		for _, p := range s.Policies {
			if p.Policy == "cluster" && p.Allowed {
				infra = "allowed"
			}
		}
		return s.Converged && s.Mode == "canary" && infra == "allowed", fmt.Sprintf("converged %v mode %q policies %+v error %q last %+v", s.Converged, s.Mode, s.Policies, s.EngineError, s.LastReconcile)
	})
	if p := k.call(ctx, api.PathRollback, nil); p.Error != "" {
		t.Fatalf("rollback as the ServiceAccount: %s", p.Error)
	}
	if c.exists(ctx, t, "/apis/apps/v1/namespaces/"+ns+"/deployments/shop-canary") {
		t.Fatal("the canary is still there")
	}
}

// asServiceAccount applies the RBAC rendered for m in ns as the admin and
// returns the cluster as seen with a token of the daemon's ServiceAccount.
func (c *cluster) asServiceAccount(ctx context.Context, t *testing.T, ns string, m *manifest.Manifest) *cluster {
	t.Helper()
	objs, err := k8srender.Kubernetes(m, k8srender.Options{Namespace: ns, NamedForm: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch o.GetObjectKind().GroupVersionKind().Kind {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			if _, err := c.apply(ctx, t, o, false); err != nil {
				t.Fatal(err)
			}
			if o.GetNamespace() == "" {
				path := objectPath(t, o)
				t.Cleanup(func() { _, _, _ = c.do(context.Background(), http.MethodDelete, path, nil, "") })
			}
		}
	}
	var tr struct {
		Status struct{ Token string }
	}
	out, _, err := c.do(ctx, http.MethodPost, "/api/v1/namespaces/"+ns+"/serviceaccounts/shop-swiftdeployd/token",
		[]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}}`), "application/json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &tr); err != nil || tr.Status.Token == "" {
		t.Fatalf("token request: %v %s", err, out)
	}
	// The admin's kubeconfig with the ServiceAccount's token instead.
	kc, err := os.ReadFile(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(kc, &cfg); err != nil {
		t.Fatal(err)
	}
	clusters := cfg["clusters"].([]any)
	cl := clusters[0].(map[string]any)["cluster"].(map[string]any)
	if ca, ok := cl["certificate-authority"].(string); ok && !filepath.IsAbs(ca) {
		cl["certificate-authority"] = filepath.Join(filepath.Dir(c.kubeconfig), ca)
	}
	users := cfg["users"].([]any)
	users[0].(map[string]any)["user"] = map[string]any{"token": tr.Status.Token}
	b, _ := yaml.Marshal(cfg)
	saConfig := filepath.Join(t.TempDir(), "sa.kubeconfig")
	if err := os.WriteFile(saConfig, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sa := *c
	sa.kubeconfig = saConfig
	return &sa
}
