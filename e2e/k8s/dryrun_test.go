package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// testManifests are the renderer's golden-file manifests.
func testManifests(t *testing.T) map[string]*manifest.Manifest {
	t.Helper()
	files, err := filepath.Glob("../../pkg/render/kubernetes/testdata/*/manifest.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in the renderer's testdata: %v", err)
	}
	out := map[string]*manifest.Manifest{}
	for _, f := range files {
		m, err := manifest.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(filepath.Dir(f))] = m
	}
	return out
}

var targets = map[string]func(*manifest.Manifest, k8srender.Options) ([]k8srender.Object, error){
	"kubernetes":    k8srender.Kubernetes,
	"argo-rollouts": k8srender.ArgoRollouts,
	// What swiftctl render writes besides: the front door's NetworkPolicy.
	"networkpolicy": func(m *manifest.Manifest, o k8srender.Options) ([]k8srender.Object, error) {
		np, err := k8srender.NetworkPolicy(m, o)
		return []k8srender.Object{np}, err
	},
}

// TestRenderedObjectsPassServerDryRun sends every object both targets
// render for every test manifest to the API server as a server-side apply
// with dryRun=All and fieldValidation=Strict: the server's own schema
// (built-in types, and the installed Gateway API and Argo Rollouts CRDs)
// must accept each one, without an unknown or duplicate field and
// without a warning.
func TestRenderedObjectsPassServerDryRun(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "dryrun")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	checked := map[string]int{}
	for name, m := range testManifests(t) {
		for target, render := range targets {
			// With pull credentials: the Secret and the pods' imagePullSecrets.
			objs, err := render(m, k8srender.Options{Namespace: ns, Gateway: "public", PrometheusURL: "http://prometheus.monitoring:9090",
				PullSecret: []byte(`{"auths":{"registry.example.com:5000":{"username":"u","password":"p","auth":"dTpw"}}}`), NamedForm: true})
			if m.IsNamed() && target == "argo-rollouts" {
				if err == nil {
					t.Errorf("%s/%s: the named form rendered, want it refused", name, target)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s/%s: %v", name, target, err)
			}
			for _, o := range objs {
				kind := o.GetObjectKind().GroupVersionKind().Kind
				warnings, err := c.apply(ctx, t, o, true)
				if err != nil {
					t.Errorf("%s/%s: %s %s refused: %v", name, target, kind, o.GetName(), err)
				}
				if len(warnings) > 0 {
					t.Errorf("%s/%s: %s %s: warnings %q", name, target, kind, o.GetName(), warnings)
				}
				checked[kind]++
			}
		}
	}
	for _, kind := range []string{"Deployment", "Service", "Secret", "HTTPRoute", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "Rollout", "AnalysisTemplate", "NetworkPolicy", "PersistentVolumeClaim", "StatefulSet"} {
		if checked[kind] == 0 {
			t.Errorf("no %s was checked", kind)
		}
	}
	t.Logf("dry-run applied: %v", checked)

	// Nothing was created.
	var list struct{ Items []json.RawMessage }
	if err := c.get(ctx, "/apis/apps/v1/namespaces/"+ns+"/deployments", &list); err != nil || len(list.Items) > 0 {
		t.Errorf("dry-run left %d Deployments (err %v)", len(list.Items), err)
	}
}

// TestDryRunRefusesUnknownFields is the control: the same request with a
// misspelt field (in a built-in type and in a CRD) is refused, so the
// test above would catch one.
func TestDryRunRefusesUnknownFields(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "dryrun-bad")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := testManifests(t)["canary"]
	tried := 0
	for target, render := range targets {
		objs, err := render(m, k8srender.Options{Namespace: ns, PrometheusURL: "http://prometheus:9090"})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs[:1] { // the Deployment, the Rollout
			body, _ := k8srender.JSON(o)
			if !strings.Contains(string(body), `"replicas":`) {
				continue // a target without a workload (the NetworkPolicy)
			}
			tried++
			bad := strings.Replace(string(body), `"replicas":`, `"replica":`, 1)
			_, _, err := c.do(ctx, http.MethodPatch, objectPath(t, o)+"?fieldManager=swiftdeploy&fieldValidation=Strict&dryRun=All", []byte(bad), "application/apply-patch+yaml")
			if err == nil || !strings.Contains(err.Error(), "replica") {
				t.Errorf("%s: %s with a misspelt field: err %v, want a strict-validation error naming it", target, o.GetObjectKind().GroupVersionKind().Kind, err)
			}
		}
	}
	if tried < 2 { // the Deployment and the Rollout at least
		t.Errorf("misspelt a field in %d workloads, want the Deployment and the Rollout", tried)
	}
	// The named form's StatefulSet, in its claim templates.
	objs, err := k8srender.Kubernetes(testManifests(t)["services"], k8srender.Options{Namespace: ns, NamedForm: true})
	if err != nil {
		t.Fatal(err)
	}
	sts := 0
	for _, o := range objs {
		if o.GetObjectKind().GroupVersionKind().Kind != "StatefulSet" {
			continue
		}
		body, _ := k8srender.JSON(o)
		if !strings.Contains(string(body), `"accessModes":`) {
			continue // an accessory without a volume
		}
		sts++
		bad := strings.Replace(string(body), `"accessModes":`, `"accessMode":`, 1)
		_, _, err := c.do(ctx, http.MethodPatch, objectPath(t, o)+"?fieldManager=swiftdeploy&fieldValidation=Strict&dryRun=All", []byte(bad), "application/apply-patch+yaml")
		if err == nil || !strings.Contains(err.Error(), "accessMode") {
			t.Errorf("StatefulSet %s with a misspelt claim template field: err %v, want a strict-validation error naming it", o.GetName(), err)
		}
	}
	if sts == 0 {
		t.Errorf("no StatefulSet with a claim template in the services case")
	}
}

// TestRefusedProjectNamesAreRefusedByTheServer: a project the renderer
// refuses to name objects after is one the API server refuses too (the
// renderer says so up front, naming the manifest field, instead of
// failing half-way through an apply).
func TestRefusedProjectNamesAreRefusedByTheServer(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t, "names")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, project := range []string{"my_app", "1shop"} {
		m := *testManifests(t)["minimal"]
		m.Project = project
		if _, err := k8srender.Kubernetes(&m, k8srender.Options{Namespace: ns}); err == nil || !strings.Contains(err.Error(), "project:") {
			t.Errorf("project %q: renderer error %v, want one naming project", project, err)
		}
		svc := fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":%q},"spec":{"ports":[{"port":3000}]}}`, project+"-stable")
		_, _, err := c.do(ctx, http.MethodPost, "/api/v1/namespaces/"+ns+"/services?dryRun=All&fieldValidation=Strict", []byte(svc), "application/json")
		if !isAPIError(err, http.StatusUnprocessableEntity) {
			t.Errorf("Service %s-stable: server said %v, want 422 Invalid", project, err)
		}
	}
}
