package k8s

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// threeServices is the named form's three services: web, routed by host
// and path prefix, a worker, and db, an accessory with a named volume
// (a StatefulSet whose claim template is the volume).
func threeServices(webImage string) string { return threeServicesCanary(webImage, "") }

// threeServicesCanary is threeServices with web's canary (YAML at the
// service's level) when canary is set.
func threeServicesCanary(webImage, canary string) string {
	return `project: shop
services:
  web:
    image: ` + webImage + `
    port: 3000
    replicas: 2
` + canary + `    health_path: /healthz
    route: {host: shop.example.com, path_prefix: /app}
    depends_on: [db]
    resources: {cpus: 0.1, memory: 64m}
  worker:
    image: worker:1
    depends_on: [db]
    resources: {cpus: 0.1, memory: 64m}
  db:
    kind: accessory
    image: db:1
    port: 5432
    volumes: [{source: pgdata, target: /var/lib/db, size: 1g}]
    resources: {cpus: 0.1, memory: 64m}
nginx: {image: nginx:1, port: 8080}
network: {name: shop}
`
}

// TestDaemonConvergesThreeServices: swiftdeployd --target kubernetes
// converges the named form on the real API server, as the ServiceAccount
// the rendered RBAC makes: the accessory's
// StatefulSet with its claim (bound to a volume the test provides: the
// harness has no provisioner), web's and the worker's Deployments, the
// HTTPRoute with web's host and path rule. A change of web's image rolls
// web alone: db's StatefulSet keeps its resourceVersion and its pod its
// UID; nor does a canary of web and its rollback. down removes
// everything but the claim; down --volumes the claim.
//
// depends_on: the volume is provided only after the daemon has applied
// db's StatefulSet, so db's pod cannot be scheduled (its claim is
// unbound) and is not Ready meanwhile: web's and the worker's
// Deployments (both depend on db) are not created, status says they
// wait for db, and they are created once db's pod is Ready.
func TestDaemonConvergesThreeServices(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "named")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const claim = "pgdata-shop-db-0"

	// The daemon runs as the ServiceAccount of the rendered RBAC: the Role
	// must grant what the named form needs (StatefulSets to apply and
	// watch, the claims to delete).
	m, err := manifest.Parse([]byte(threeServices("web:1")), "shop")
	if err != nil {
		t.Fatal(err)
	}
	sa := c.asServiceAccount(ctx, t, ns, m)
	start := time.Now()
	k := startDaemon(t, sa, ns, threeServices("web:1"), daemonOpts{})
	converged := func(webImage string) api.Status {
		t.Helper()
		var s api.Status
		eventually(ctx, t, "status converged with web at "+webImage, func() (bool, string) {
			s = k.status(ctx)
			ok := s.Converged && s.Mode == "stable" && s.StableImage == webImage && s.Kubernetes != nil && len(s.Kubernetes.Deployments) == 3 && len(s.Services) == 3
			for _, w := range s.Kubernetes.Deployments {
				ok = ok && w.RolledOut
			}
			for _, svc := range s.Services {
				ok = ok && svc.Running == svc.Desired
			}
			return ok, fmt.Sprintf("converged %v mode %q stable %q pending %q kube %+v services %+v last %+v engine %q", s.Converged, s.Mode, s.StableImage, s.Pending, s.Kubernetes, s.Services, s.LastReconcile, s.EngineError)
		})
		return s
	}
	eventually(ctx, t, "web and the worker waiting for db", func() (bool, string) {
		p := strings.Join(k.status(ctx).Pending, "\n")
		return strings.Contains(p, "wait: apply Deployment shop-web (create) waits for accessory db (depends_on): StatefulSet shop-db") &&
			strings.Contains(p, "wait: apply Deployment shop-worker (create) waits for accessory db (depends_on)"), p
	})
	// Held through the StatefulSet's and its pod's events (each one
	// re-queues a reconcile), not just the first pass.
	time.Sleep(3 * time.Second)
	for _, dep := range []string{"shop-web", "shop-worker"} {
		if d, ok := c.deployment(ctx, t, ns, dep); ok {
			t.Fatalf("Deployment %s created at %s while db's pod is not Ready", dep, d.CreationTimestamp)
		}
	}
	if p := c.pod(ctx, t, ns, "shop-db-0"); podIsReady(p) {
		t.Fatalf("db's pod is Ready without its volume: the test holds nothing back")
	}
	held := time.Now()
	c.persistentVolume(t, ns, claim)
	converged("web:1")
	t.Logf("three services from nothing to converged: %.2fs (the volume given after %.2fs)", time.Since(start).Seconds(), held.Sub(start).Seconds())
	var dbReady time.Time
	for _, cond := range c.pod(ctx, t, ns, "shop-db-0").Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
			dbReady = cond.LastTransitionTime.Time
		}
	}
	for _, dep := range []string{"shop-web", "shop-worker"} {
		// Both times are whole seconds: created in db's second at the
		// earliest.
		if d, _ := c.deployment(ctx, t, ns, dep); d.CreationTimestamp.Time.Before(dbReady) {
			t.Errorf("Deployment %s created at %s, before db's pod was Ready at %s", dep, d.CreationTimestamp, dbReady)
		}
	}

	c.waitRolledOut(ctx, t, ns, "shop-web", 2, "web:1")
	c.waitRolledOut(ctx, t, ns, "shop-worker", 1, "worker:1")
	sts := c.statefulSet(ctx, t, ns, "shop-db")
	if tmpl := sts.Spec.VolumeClaimTemplates; len(tmpl) != 1 || tmpl[0].Name != "pgdata" {
		t.Fatalf("StatefulSet shop-db's claim templates %+v, want pgdata", tmpl)
	}
	if sts.Status.ReadyReplicas != 1 || sts.Spec.ServiceName != "db" {
		t.Fatalf("StatefulSet shop-db: ready %d, serviceName %q", sts.Status.ReadyReplicas, sts.Spec.ServiceName)
	}
	var pvc corev1.PersistentVolumeClaim
	if err := c.get(ctx, "/api/v1/namespaces/"+ns+"/persistentvolumeclaims/"+claim, &pvc); err != nil || pvc.Status.Phase != corev1.ClaimBound {
		t.Fatalf("claim %s: %v, phase %q, want Bound", claim, err, pvc.Status.Phase)
	}
	var route gatewayv1.HTTPRoute
	if err := c.get(ctx, "/apis/gateway.networking.k8s.io/v1/namespaces/"+ns+"/httproutes/shop-shop.example.com", &route); err != nil {
		t.Fatal(err)
	}
	if h := route.Spec.Hostnames; len(h) != 1 || h[0] != "shop.example.com" {
		t.Errorf("route hostnames %v, want shop.example.com", h)
	}
	if !routesPrefixTo(route, "/app", "web") {
		t.Errorf("route rules %+v: no rule sending /app to the Service web", route.Spec.Rules)
	}
	for _, svc := range []string{"web", "db"} {
		if !c.exists(ctx, t, "/api/v1/namespaces/"+ns+"/services/"+svc) {
			t.Errorf("no Service %s", svc)
		}
	}
	succeeded := func(n int) {
		t.Helper()
		eventually(ctx, t, fmt.Sprintf("%d deploy_succeeded", n), func() (bool, string) {
			got := len(k.events(journal.EventDeploySucceeded))
			return got == n, fmt.Sprint(got)
		})
	}
	succeeded(1)

	// web's image: web rolls, db is not touched.
	dbPod := c.pod(ctx, t, ns, "shop-db-0")
	k.write(threeServices("web:2"))
	c.waitRolledOut(ctx, t, ns, "shop-web", 2, "web:2")
	converged("web:2")
	after := c.statefulSet(ctx, t, ns, "shop-db")
	if after.ResourceVersion != sts.ResourceVersion || after.Generation != sts.Generation {
		t.Errorf("web's change touched db's StatefulSet: resourceVersion %s → %s, generation %d → %d", sts.ResourceVersion, after.ResourceVersion, sts.Generation, after.Generation)
	}
	if p := c.pod(ctx, t, ns, "shop-db-0"); p.UID != dbPod.UID {
		t.Errorf("web's change replaced db's pod: UID %s → %s", dbPod.UID, p.UID)
	}
	succeeded(2)
	if d, _ := c.deployment(ctx, t, ns, "shop-worker"); d.Generation != 1 {
		t.Errorf("web's change touched the worker's Deployment: generation %d", d.Generation)
	}

	// A canary of web, the primary service: its Deployment and Service
	// beside web's, its share on web's rule; status reads the mode from
	// that rule. A rollback withdraws it; db is never touched.
	k.write(threeServicesCanary("web:2", "    canary: {image: web:3, weight: 20}\n"))
	c.waitRolledOut(ctx, t, ns, "shop-web-canary", 1, "web:3")
	eventually(ctx, t, "web's canary routed", func() (bool, string) {
		w := c.routeWeights(ctx, t, ns, "shop-shop.example.com")
		s := k.status(ctx)
		return w == "shop-web-canary=20 web=80" && s.Mode == "canary" && s.CanaryImage == "web:3" && s.CanaryWeight == 20 && s.StableImage == "web:2" && s.Converged,
			fmt.Sprintf("weights %s mode %q canary %q@%d stable %q converged %v pending %q", w, s.Mode, s.CanaryImage, s.CanaryWeight, s.StableImage, s.Converged, s.Pending)
	})
	if p := k.call(ctx, api.PathRollback, nil); p.Error != "" {
		t.Fatalf("rollback of web's canary: %s", p.Error)
	}
	if w := c.routeWeights(ctx, t, ns, "shop-shop.example.com"); w != "web=100" {
		t.Fatalf("after the rollback the route is %s", w)
	}
	for _, path := range []string{"/apis/apps/v1/namespaces/" + ns + "/deployments/shop-web-canary", "/api/v1/namespaces/" + ns + "/services/shop-web-canary"} {
		if c.exists(ctx, t, path) {
			t.Fatalf("%s still there after the rollback", path)
		}
	}
	if after := c.statefulSet(ctx, t, ns, "shop-db"); after.ResourceVersion != sts.ResourceVersion {
		t.Errorf("web's canary touched db's StatefulSet: resourceVersion %s → %s", sts.ResourceVersion, after.ResourceVersion)
	}
	if p := c.pod(ctx, t, ns, "shop-db-0"); p.UID != dbPod.UID {
		t.Errorf("web's canary replaced db's pod: UID %s → %s", dbPod.UID, p.UID)
	}

	// down: everything but the claim.
	if p := k.call(ctx, api.PathDown, nil); p.Error != "" {
		t.Fatalf("down: %s", p.Error)
	}
	for _, path := range []string{
		"/apis/gateway.networking.k8s.io/v1/namespaces/" + ns + "/httproutes/shop-shop.example.com",
		"/api/v1/namespaces/" + ns + "/services/web",
		"/api/v1/namespaces/" + ns + "/services/db",
		"/apis/apps/v1/namespaces/" + ns + "/deployments/shop-web",
		"/apis/apps/v1/namespaces/" + ns + "/deployments/shop-worker",
		"/apis/apps/v1/namespaces/" + ns + "/statefulsets/shop-db",
	} {
		if c.exists(ctx, t, path) {
			t.Errorf("%s still there after down", path)
		}
	}
	claimPath := "/api/v1/namespaces/" + ns + "/persistentvolumeclaims/" + claim
	if !c.exists(ctx, t, claimPath) {
		t.Fatal("down deleted the accessory's claim")
	}
	// down --volumes: the claim too (once db's pod is gone: the claim's
	// protection holds it while a pod mounts it).
	if p := k.call(ctx, api.PathDown+"?volumes=true", nil); p.Error != "" {
		t.Fatalf("down --volumes: %s", p.Error)
	}
	eventually(ctx, t, "claim deleted by down --volumes", func() (bool, string) {
		var pvc corev1.PersistentVolumeClaim
		err := c.get(ctx, claimPath, &pvc)
		if isAPIError(err, http.StatusNotFound) {
			return true, ""
		}
		return false, fmt.Sprintf("err %v, deletionTimestamp %v, finalizers %v", err, pvc.DeletionTimestamp, pvc.Finalizers)
	})
}

// routesPrefixTo: a rule of r matches the path prefix and sends every
// request to the Service backend.
func routesPrefixTo(r gatewayv1.HTTPRoute, prefix, backend string) bool {
	for _, rule := range r.Spec.Rules {
		for _, m := range rule.Matches {
			if m.Path == nil || m.Path.Value == nil || *m.Path.Value != prefix || m.Path.Type == nil || *m.Path.Type != gatewayv1.PathMatchPathPrefix {
				continue
			}
			if len(rule.BackendRefs) == 1 && string(rule.BackendRefs[0].Name) == backend {
				return true
			}
		}
	}
	return false
}

func podIsReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (c *cluster) statefulSet(ctx context.Context, t *testing.T, ns, name string) appsv1.StatefulSet {
	t.Helper()
	var s appsv1.StatefulSet
	if err := c.get(ctx, "/apis/apps/v1/namespaces/"+ns+"/statefulsets/"+name, &s); err != nil {
		t.Fatalf("StatefulSet %s: %v", name, err)
	}
	return s
}

func (c *cluster) pod(ctx context.Context, t *testing.T, ns, name string) corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := c.get(ctx, "/api/v1/namespaces/"+ns+"/pods/"+name, &p); err != nil {
		t.Fatalf("pod %s: %v", name, err)
	}
	return p
}

// persistentVolume provides the volume the claim binds to (the harness
// runs no provisioner), bound in advance to that claim so that no other
// test's claim takes it; deleted when the test ends.
func (c *cluster) persistentVolume(t *testing.T, ns, claim string) {
	t.Helper()
	name := ns + "-" + claim
	body := fmt.Sprintf(`{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":%q},
"spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"],"persistentVolumeReclaimPolicy":"Retain","storageClassName":"",
"hostPath":{"path":"/tmp/%s"},"claimRef":{"namespace":%q,"name":%q}}}`, name, name, ns, claim)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := c.do(ctx, http.MethodPost, "/api/v1/persistentvolumes", []byte(strings.ReplaceAll(body, "\n", "")), "application/json"); err != nil {
		t.Fatalf("create PersistentVolume %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, _, err := c.do(ctx, http.MethodDelete, "/api/v1/persistentvolumes/"+name, nil, ""); err != nil && !isAPIError(err, http.StatusNotFound) {
			t.Errorf("delete PersistentVolume %s: %v", name, err)
		}
	})
}

// TestRemovedAccessoryAfterARestart: db taken out of the manifest while
// no daemon runs, and the Role applied again from the new manifest (as an
// admin re-applying `swiftctl render`'s RBAC would): the daemon started
// then deletes db's StatefulSet (its claim kept) and down --volumes
// deletes the claim, though the manifest names no accessory and no volume
// any more.
func TestRemovedAccessoryAfterARestart(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "named-restart")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const claim = "pgdata-shop-db-0"
	c.persistentVolume(t, ns, claim)
	m, err := manifest.Parse([]byte(threeServices("web:1")), "shop")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("first daemon", func(t *testing.T) {
		k := startDaemon(t, c.asServiceAccount(ctx, t, ns, m), ns, threeServices("web:1"), daemonOpts{})
		eventually(ctx, t, "db's StatefulSet ready", func() (bool, string) {
			var s appsv1.StatefulSet
			err := c.get(ctx, "/apis/apps/v1/namespaces/"+ns+"/statefulsets/shop-db", &s)
			st := k.status(ctx)
			return err == nil && s.Status.ReadyReplicas == 1 && st.Converged, fmt.Sprintf("err %v ready %d converged %v pending %q", err, s.Status.ReadyReplicas, st.Converged, st.Pending)
		})
	}) // the daemon stops with the subtest
	withoutDB := strings.Replace(strings.Replace(threeServices("web:1"), `  db:
    kind: accessory
    image: db:1
    port: 5432
    volumes: [{source: pgdata, target: /var/lib/db, size: 1g}]
    resources: {cpus: 0.1, memory: 64m}
`, "", 1), "    depends_on: [db]\n", "", 2)
	m2, err := manifest.Parse([]byte(withoutDB), "shop")
	if err != nil {
		t.Fatal(err)
	}
	k := startDaemon(t, c.asServiceAccount(ctx, t, ns, m2), ns, withoutDB, daemonOpts{})
	stsPath := "/apis/apps/v1/namespaces/" + ns + "/statefulsets/shop-db"
	eventually(ctx, t, "db's StatefulSet deleted by the restarted daemon", func() (bool, string) {
		s := k.status(ctx)
		return !c.exists(ctx, t, stsPath) && s.Converged, fmt.Sprintf("converged %v pending %q last %+v kube %+v", s.Converged, s.Pending, s.LastReconcile, s.Kubernetes)
	})
	claimPath := "/api/v1/namespaces/" + ns + "/persistentvolumeclaims/" + claim
	if !c.exists(ctx, t, claimPath) {
		t.Fatal("the removed accessory's claim was deleted by a plan")
	}
	if p := k.call(ctx, api.PathDown+"?volumes=true", nil); p.Error != "" {
		t.Fatalf("down --volumes: %s", p.Error)
	}
	eventually(ctx, t, "claim deleted by down --volumes", func() (bool, string) {
		var pvc corev1.PersistentVolumeClaim
		err := c.get(ctx, claimPath, &pvc)
		if isAPIError(err, http.StatusNotFound) {
			return true, ""
		}
		return false, fmt.Sprintf("err %v, deletionTimestamp %v, finalizers %v", err, pvc.DeletionTimestamp, pvc.Finalizers)
	})
}
