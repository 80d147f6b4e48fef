package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/kubernetes"
)

// applyStatefulSet stores a StatefulSet as its controller would leave it
// rolled out: its pods Ready with its image, a claim per template and
// pod (labelled as the template is), which outlive it. Called locked.
func (f *fakeKube) applyStatefulSet(k string, body []byte) ([]byte, error) {
	var s appsv1.StatefulSet
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, err
	}
	s.Generation, s.ResourceVersion = f.gen[k], fmt.Sprint(f.rv)
	s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: kube.FieldManager, Operation: "Apply"}}
	want := int32(1)
	if s.Spec.Replicas != nil {
		want = *s.Spec.Replicas
	}
	rev := fmt.Sprintf("%s-%d", s.Name, f.gen[k])
	s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: want, UpdatedReplicas: want, ReadyReplicas: want,
		AvailableReplicas: want, CurrentRevision: rev, UpdateRevision: rev}
	if f.slow[s.Name] {
		// No pod at the update revision yet (rollOut finishes it).
		s.Status.UpdatedReplicas, s.Status.CurrentRevision = 0, fmt.Sprintf("%s-%d", s.Name, f.gen[k]-1)
	}
	var pods []corev1.Pod
	for i := range want {
		pods = append(pods, corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", s.Name, i), UID: k8stypes.UID(fmt.Sprintf("uid-%s-%d", rev, i)), Labels: s.Spec.Template.Labels},
			Spec:       s.Spec.Template.Spec,
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		})
		for _, ct := range s.Spec.VolumeClaimTemplates {
			c := ct.DeepCopy()
			c.Name = fmt.Sprintf("%s-%s-%d", ct.Name, s.Name, i)
			c.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"}
			if _, ok := f.objs["PersistentVolumeClaim/"+c.Name]; !ok {
				f.objs["PersistentVolumeClaim/"+c.Name], _ = json.Marshal(c)
			}
		}
	}
	f.pods[s.Name] = pods
	f.objs[k], _ = json.Marshal(s)
	return f.objs[k], nil
}

// namedKubeManifest: web (routed by host), a worker and db, an
// accessory with a named volume.
func namedKubeManifest(webImage string) string {
	return `project: demo
services:
  web:
    image: ` + webImage + `
    port: 3000
    route: {host: demo.example.com}
    depends_on: [db]
  worker:
    image: app:1
  db:
    kind: accessory
    image: app:3
    port: 5432
    volumes: [{source: pgdata, target: /data}]
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
`
}

// The named form converges on the Kubernetes target: the accessory's
// StatefulSet, two Deployments, the route by host; status reports each
// service and workload; a change of web's image applies web's Deployment
// alone (the StatefulSet is not applied again); down deletes the route
// first and keeps the claim, down --volumes deletes it.
func TestKubeNamedFormConverges(t *testing.T) {
	h, fk := kubeHarness(t, namedKubeManifest("app:1"))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"StatefulSet/demo-db", "Service/db", "Deployment/demo-web", "Service/web", "Deployment/demo-worker", "HTTPRoute/demo-demo.example.com", "PersistentVolumeClaim/pgdata-demo-db-0"} {
		if !fk.has(o) {
			t.Errorf("no %s after the deploy", o)
		}
	}
	if w := fk.weights("demo-demo.example.com"); w["web"] != 100 {
		t.Errorf("route weights %v, want web=100", w)
	}
	if ev := h.events(); count(ev, journal.EventDeploySucceeded) != 1 {
		t.Fatalf("events %v: want one deploy_succeeded", ev)
	}
	s := h.status()
	if !s.Converged || s.Mode != stack.TrackStable || s.StableImage != "app:1" || s.Kubernetes == nil || s.Kubernetes.Route != "demo-demo.example.com" {
		t.Fatalf("status: converged %v mode %q stable %q pending %q kube %+v", s.Converged, s.Mode, s.StableImage, s.Pending, s.Kubernetes)
	}
	var workloads []string
	for _, d := range s.Kubernetes.Deployments {
		workloads = append(workloads, fmt.Sprintf("%s %s %v", d.Kind, d.Name, d.RolledOut))
	}
	if got := strings.Join(workloads, ","); got != "StatefulSet demo-db true, demo-web true, demo-worker true" {
		t.Errorf("status workloads %q", got)
	}
	var services []string
	for _, ss := range s.Services {
		services = append(services, fmt.Sprintf("%s %s %s %d/%d", ss.Name, ss.Kind, ss.Route, ss.Running, ss.Desired))
	}
	if got := strings.Join(services, ","); got != "db accessory  1/1,web web demo.example.com/ 1/1,worker worker  1/1" {
		t.Errorf("status services %q", got)
	}

	fk.mu.Lock()
	fk.ops = nil
	fk.mu.Unlock()
	h.write(namedKubeManifest("app:2"))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(fk.ops, ","); got != "apply Deployment/demo-web" {
		t.Fatalf("web's image changed: ops %s, want web's Deployment alone", got)
	}
	if s := h.status(); !s.Converged || s.StableImage != "app:2" {
		t.Fatalf("after web's change: converged %v stable %q pending %q", s.Converged, s.StableImage, s.Pending)
	}

	fk.ops = nil
	if err := h.d.down(context.Background(), "alice", false, func(string) {}); err != nil {
		t.Fatal(err)
	}
	want := "delete HTTPRoute/demo-demo.example.com,delete Service/db,delete Service/web,delete Deployment/demo-web,delete Deployment/demo-worker,delete StatefulSet/demo-db"
	if got := strings.Join(fk.ops, ","); got != want {
		t.Fatalf("down: %s, want %s", got, want)
	}
	if !fk.has("PersistentVolumeClaim/pgdata-demo-db-0") {
		t.Fatal("down deleted the accessory's claim")
	}
	if err := h.d.down(context.Background(), "alice", true, func(string) {}); err != nil {
		t.Fatal(err)
	}
	if fk.has("PersistentVolumeClaim/pgdata-demo-db-0") {
		t.Fatal("down --volumes left the accessory's claim")
	}
}

// Rolled (the deploy's wait) counts StatefulSets: an accessory whose new
// pod is not ready yet keeps the rollout waiting, naming it.
func TestKubeRolledWaitsForStatefulSets(t *testing.T) {
	h, fk := kubeHarness(t, namedKubeManifest("app:1"))
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	fk.mu.Lock()
	var s appsv1.StatefulSet
	_ = json.Unmarshal(fk.objs["StatefulSet/demo-db"], &s)
	s.Status.ReadyReplicas = 0
	fk.objs["StatefulSet/demo-db"], _ = json.Marshal(s)
	fk.mu.Unlock()
	m, err := manifest.Parse([]byte(namedKubeManifest("app:1")), "demo")
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.d.kt.Rolled(context.Background(), m, h.state())
	if err != nil {
		t.Fatal(err)
	}
	if st.Done || !strings.Contains(st.Waiting, "StatefulSet demo-db") {
		t.Fatalf("Rolled = %+v, want waiting on StatefulSet demo-db", st)
	}
}

// The named form's Secrets: every service's secret files in
// <project>-secrets (the name the pods refer to), each service's env
// files in its own <project>-<service>-env; two services naming one
// secret with different content are refused, naming both.
func TestKubeNamedFormSecrets(t *testing.T) {
	withSecrets := strings.Replace(namedKubeManifest("app:1"), "    depends_on: [db]\n",
		"    depends_on: [db]\n    secrets:\n      db_password: {file: ./secrets/db}\n", 1)
	withSecrets = strings.Replace(withSecrets, "  worker:\n    image: app:1\n", "  worker:\n    image: app:1\n    env_file: ./worker.env\n", 1)
	h, fk := kubeHarness(t, withSecrets)
	writeFile(t, filepath.Join(h.dir, "secrets", "db"), "NAMED-PW-1")
	writeFile(t, filepath.Join(h.dir, "worker.env"), "QUEUE=NAMED-ENV-2\n")
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	secret := func(name string) corev1.Secret {
		fk.mu.Lock()
		defer fk.mu.Unlock()
		var s corev1.Secret
		if err := json.Unmarshal(fk.objs["Secret/"+name], &s); err != nil {
			t.Fatalf("Secret %s: %v", name, err)
		}
		return s
	}
	if s := secret("demo-secrets"); string(s.Data["db_password"]) != "NAMED-PW-1" {
		t.Errorf("Secret demo-secrets holds %q", s.Data)
	}
	if s := secret("demo-worker-env"); string(s.Data["QUEUE"]) != "NAMED-ENV-2" || s.Labels[k8srender.LabelProject] != "demo" {
		t.Errorf("Secret demo-worker-env holds %q, labels %v", s.Data, s.Labels)
	}

	clash := strings.Replace(withSecrets, "    env_file: ./worker.env\n", "    secrets:\n      db_password: {file: ./secrets/other}\n", 1)
	writeFile(t, filepath.Join(h.dir, "secrets", "other"), "NAMED-PW-3")
	h.write(clash)
	err := h.deploy()
	if err == nil || !strings.Contains(err.Error(), "services.worker.secrets.db_password") || !strings.Contains(err.Error(), "services.web.secrets.db_password") {
		t.Fatalf("two services, one secret name, two contents: %v, want a refusal naming both", err)
	}
}

// namedKubeWithoutDB is namedKubeManifest with db taken out: no
// accessory and no named volume left.
func namedKubeWithoutDB(webImage string) string {
	return `project: demo
services:
  web:
    image: ` + webImage + `
    port: 3000
    route: {host: demo.example.com}
  worker:
    image: app:1
nginx: {image: nginx:latest, port: 8080}
network: {name: demo-net}
`
}

// restartKube gives the harness a new Kubernetes target on the same API
// (a restarted daemon, or a new leader): what it knows comes from the
// manifest on disk and the API alone.
func restartKube(h *harness, fk *fakeKube) {
	kt := kubernetes.NewOn(kubernetes.Config{Namespace: "ns", ProgressDeadline: 2 * time.Second, Poll: 5 * time.Millisecond}, fk, h.d.kubeDeps())
	h.d.kt, h.d.target = kt, kt
}

// An accessory taken out of the manifest, seen by a daemon started after
// it was: the next reconcile deletes its StatefulSet (its claim kept);
// taken out and then down: down deletes the StatefulSet; down --volumes
// deletes the claims though the manifest has no volume left.
func TestKubeRemovedAccessoryAfterARestart(t *testing.T) {
	t.Run("reconcile", func(t *testing.T) {
		h, fk := kubeHarness(t, namedKubeManifest("app:1"))
		if err := h.deploy(); err != nil {
			t.Fatal(err)
		}
		restartKube(h, fk)
		h.write(namedKubeWithoutDB("app:1"))
		if err := h.deploy(); err != nil {
			t.Fatal(err)
		}
		if fk.has("StatefulSet/demo-db") {
			t.Fatalf("db taken out of the manifest: its StatefulSet still runs (ops %v)", fk.ops)
		}
		if !fk.has("PersistentVolumeClaim/pgdata-demo-db-0") {
			t.Fatal("the removed accessory's claim was deleted by a plan")
		}
		if s := h.status(); !s.Converged || len(s.Pending) != 0 {
			t.Fatalf("status: converged %v pending %q", s.Converged, s.Pending)
		}
	})
	t.Run("down", func(t *testing.T) {
		h, fk := kubeHarness(t, namedKubeManifest("app:1"))
		if err := h.deploy(); err != nil {
			t.Fatal(err)
		}
		h.write(namedKubeWithoutDB("app:1"))
		restartKube(h, fk)
		if err := h.d.down(context.Background(), "alice", false, func(string) {}); err != nil {
			t.Fatal(err)
		}
		if fk.has("StatefulSet/demo-db") {
			t.Fatalf("down left the removed accessory's StatefulSet (ops %v)", fk.ops)
		}
		if !fk.has("PersistentVolumeClaim/pgdata-demo-db-0") {
			t.Fatal("down without --volumes deleted a claim")
		}
		restartKube(h, fk)
		if err := h.d.down(context.Background(), "alice", true, func(string) {}); err != nil {
			t.Fatal(err)
		}
		if fk.has("PersistentVolumeClaim/pgdata-demo-db-0") {
			t.Fatal("down --volumes left the claim of a volume no longer in the manifest")
		}
	})
}

// A Role that does not grant statefulsets and persistentvolumeclaims (one
// rendered before the named form observed them always): a manifest
// without accessories still converges, status warns that the daemon
// cannot see them, and down ends with an error naming them instead of
// leaving a StatefulSet silently.
func TestKubeUnseenStatefulSetsAreWarnedOf(t *testing.T) {
	h, fk := kubeHarness(t, namedKubeWithoutDB("app:1"))
	fk.forbid["StatefulSet"], fk.forbid["PersistentVolumeClaim"] = true, true
	if err := h.deploy(); err != nil {
		t.Fatalf("a named form without accessories under an older Role: %v", err)
	}
	s := h.status()
	if s.Kubernetes == nil || len(s.Kubernetes.Warnings) != 2 || !strings.Contains(strings.Join(s.Kubernetes.Warnings, "\n"), "cannot see the project's StatefulSets") {
		t.Fatalf("status warnings %+v, want StatefulSets and claims unseen", s.Kubernetes)
	}
	err := h.d.down(context.Background(), "alice", false, func(string) {})
	if err == nil || !strings.Contains(err.Error(), "StatefulSet") || !strings.Contains(err.Error(), "RBAC") {
		t.Fatalf("down under an older Role: %v, want an error naming the StatefulSets it cannot see", err)
	}
	if fk.has("Deployment/demo-web") {
		t.Fatal("down stopped before what it can see")
	}
	// With an accessory, its StatefulSet is needed: an error, as before.
	fk.forbid["PersistentVolumeClaim"] = false
	h.write(strings.Replace(namedKubeManifest("app:1"), "    volumes: [{source: pgdata, target: /data}]\n", "", 1))
	if err := h.deploy(); err == nil || !strings.Contains(err.Error(), "StatefulSet") {
		t.Fatalf("an accessory under a Role without statefulsets: %v, want an error", err)
	}
}

// Two projects in one namespace: `shop-web` (one service with a canary,
// Deployment and Service shop-web-canary) and `shop`, whose service web's
// canary takes the same names. shop's plan sees only its own objects, so
// those look missing: the deploy is refused, naming the object and its
// project, nothing is applied and shop-web's objects keep their content
// and labels; diff and status say why. A Service made by hand with the
// name of a service is refused the same way.
func TestKubeRefusesAnotherProjectsObject(t *testing.T) {
	canary := "  canary:\n    image: app:2\n    weight: 10\n    replicas: 1\n"
	h1, fk := kubeHarness(t, strings.Replace(fakeManifest("app:1", 1, canary), "project: demo", "project: shop-web", 1))
	if err := h1.deploy(); err != nil {
		t.Fatal(err)
	}
	theirs := map[string]string{}
	for _, o := range []string{"Deployment/shop-web-canary", "Service/shop-web-canary"} {
		if !fk.has(o) {
			t.Fatalf("project shop-web has no %s", o)
		}
		theirs[o] = string(fk.objs[o])
	}
	fk.ops = nil

	const shop = `project: shop
services:
  web:
    image: app:1
    port: 3000
    canary: {image: app:2, weight: 10}
nginx: {image: nginx:latest, port: 8080}
network: {name: shop-net}
`
	h2 := newHarness(t, shop)
	kt := kubernetes.NewOn(kubernetes.Config{Namespace: "ns", ProgressDeadline: 2 * time.Second, Poll: 5 * time.Millisecond}, fk, h2.d.kubeDeps())
	h2.d.kt, h2.d.target = kt, kt
	err := h2.deploy()
	if err == nil || !strings.Contains(err.Error(), "shop-web-canary") || !strings.Contains(err.Error(), "belongs to project shop-web") {
		t.Fatalf("shop's deploy over shop-web's canary: %v, want a refusal naming the object and its project", err)
	}
	if len(fk.ops) != 0 {
		t.Fatalf("a refused plan ran ops %v", fk.ops)
	}
	for o, was := range theirs {
		if string(fk.objs[o]) != was {
			t.Errorf("%s of project shop-web changed:\n%s\nwas\n%s", o, fk.objs[o], was)
		}
	}
	if d := h2.diff(""); !strings.Contains(d.Blocked, "belongs to project shop-web") {
		t.Errorf("diff blocked %q", d.Blocked)
	}
	if s := h2.status(); s.LastReconcile == nil || !strings.Contains(s.LastReconcile.Error, "belongs to project shop-web") {
		t.Errorf("status last reconcile %+v, want the refusal", s.LastReconcile)
	}

	// A Service web made by hand, in a namespace of its own.
	fk2 := newFakeKube()
	fk2.objs["Service/web"] = []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"ns","labels":{"app":"web"}}}`)
	h3 := newHarness(t, strings.Replace(shop, "    canary: {image: app:2, weight: 10}\n", "", 1))
	kt3 := kubernetes.NewOn(kubernetes.Config{Namespace: "ns", ProgressDeadline: 2 * time.Second, Poll: 5 * time.Millisecond}, fk2, h3.d.kubeDeps())
	h3.d.kt, h3.d.target = kt3, kt3
	if err := h3.deploy(); err == nil || !strings.Contains(err.Error(), "Service ns/web exists and was not made by swiftdeploy") {
		t.Fatalf("deploy over a hand-made Service web: %v, want a refusal", err)
	}
	if string(fk2.objs["Service/web"]) != `{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"ns","labels":{"app":"web"}}}` {
		t.Fatalf("the hand-made Service changed: %s", fk2.objs["Service/web"])
	}
}

// setStatefulSetReady sets how many of a StatefulSet's pods are Ready.
func (f *fakeKube) setStatefulSetReady(name string, ready int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s appsv1.StatefulSet
	_ = json.Unmarshal(f.objs["StatefulSet/"+name], &s)
	s.Status.ReadyReplicas, s.Status.AvailableReplicas = ready, ready
	f.objs["StatefulSet/"+name], _ = json.Marshal(s)
}

// depends_on through the daemon: web (depends_on db) is not applied
// while db's pod is not Ready, status shows it waiting for db, the
// rollout is not done (no deploy_succeeded) meanwhile; once db is Ready
// web is applied and the deploy succeeds once. db restarting later
// touches nothing.
func TestKubeDependentWaitsForItsAccessory(t *testing.T) {
	h, fk := kubeHarness(t, namedKubeManifest("app:1"))
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	fk.setStatefulSetReady("demo-db", 0)
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	for _, op := range fk.ops {
		if strings.Contains(op, "demo-web") && strings.HasPrefix(op, "apply Deployment") {
			t.Fatalf("ops %q: web's Deployment applied before db is Ready", fk.ops)
		}
	}
	if !fk.has("Deployment/demo-worker") {
		t.Fatal("the worker, which depends on nothing, waits too")
	}
	s := h.status()
	if p := strings.Join(s.Pending, "\n"); s.Converged || !strings.Contains(p, "wait: apply Deployment demo-web (create) waits for accessory db (depends_on): StatefulSet demo-db: 0 of 1 replicas ready") {
		t.Fatalf("status converged %v pending %q, want web waiting for db", s.Converged, s.Pending)
	}
	m, err := manifest.Parse([]byte(namedKubeManifest("app:1")), "demo")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := h.d.kt.Rolled(context.Background(), m, h.state()); err != nil || st.Done {
		t.Fatalf("Rolled = %+v, %v: done while web waits", st, err)
	}
	if ev := h.events(); count(ev, journal.EventDeploySucceeded) != 0 {
		t.Fatalf("events %v: deploy_succeeded while web waits for db", ev)
	}

	fk.setStatefulSetReady("demo-db", 1)
	if err := h.deploy(); err != nil {
		t.Fatal(err)
	}
	if !fk.has("Deployment/demo-web") || !fk.has("HTTPRoute/demo-demo.example.com") {
		t.Fatalf("db Ready: ops %q, want web's Deployment and the route", fk.ops)
	}
	if ev := h.events(); count(ev, journal.EventDeploySucceeded) != 1 {
		t.Fatalf("events %v: want one deploy_succeeded", ev)
	}

	// db restarts: nothing is applied, web is left running.
	fk.mu.Lock()
	fk.ops = nil
	fk.mu.Unlock()
	fk.setStatefulSetReady("demo-db", 0)
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if len(fk.ops) != 0 || !fk.has("Deployment/demo-web") {
		t.Fatalf("db restarting: ops %q, want nothing (web keeps running)", fk.ops)
	}
}
