package kubetarget

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// fakeAPI is an in-memory API server for the planner's logic: an apply
// stores the object as sent (a real server's defaults are not needed to
// judge order and ownership), a dry run answers the object as sent unless
// a conflict is set. The real server's answers are the e2e/k8s tests'.
type fakeAPI struct {
	objs      map[string]map[string]any // kind/name → object
	conflicts map[string]bool           // kind/name whose apply conflicts without force
	calls     []string
}

func newFake() *fakeAPI {
	return &fakeAPI{objs: map[string]map[string]any{}, conflicts: map[string]bool{}}
}

func (f *fakeAPI) Apply(_ context.Context, ref kube.Ref, body []byte, o kube.ApplyOptions) ([]byte, error) {
	key := ref.Resource.Kind + "/" + ref.Name
	if f.conflicts[key] && !o.Force {
		return nil, &kube.Error{Code: http.StatusConflict, Reason: "Conflict", What: "apply " + ref.String(),
			Causes: []kube.Cause{{Reason: "FieldManagerConflict", Message: `conflict with "kubectl-edit"`, Field: ".spec.template.spec.containers[name=\"app\"].image"}}}
	}
	if o.DryRun {
		return body, nil
	}
	f.calls = append(f.calls, "apply "+key)
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	md := v["metadata"].(map[string]any)
	md["managedFields"] = []any{map[string]any{"manager": kube.FieldManager, "operation": "Apply"}}
	if old, ok := f.objs[key]; ok {
		v["status"] = old["status"]
	}
	f.objs[key] = v
	delete(f.conflicts, key)
	return body, nil
}

func (f *fakeAPI) Delete(_ context.Context, ref kube.Ref) error {
	key := ref.Resource.Kind + "/" + ref.Name
	f.calls = append(f.calls, "delete "+key)
	delete(f.objs, key)
	return nil
}

func (f *fakeAPI) List(_ context.Context, r kube.Resource, ns, selector string, v any) error {
	var items []any
	for key, o := range f.objs {
		if strings.HasPrefix(key, r.Kind+"/") {
			items = append(items, o)
		}
	}
	b, _ := json.Marshal(map[string]any{"items": items})
	return json.Unmarshal(b, v)
}

// rollOut marks a Deployment rolled out at its spec.
func (f *fakeAPI) rollOut(name string) {
	d := f.objs["Deployment/"+name]
	spec := d["spec"].(map[string]any)
	n := spec["replicas"]
	d["status"] = map[string]any{"observedGeneration": 0, "replicas": n, "updatedReplicas": n, "availableReplicas": n, "readyReplicas": n}
}

func testManifest(t *testing.T, canary string) *manifest.Manifest {
	t.Helper()
	src := `project: shop
services:
  image: app:1
  port: 3000
  replicas: 2
  resources:
    cpus: 0.5
    memory: 256m
` + canary + `nginx:
  image: nginx:1
  port: 8080
network:
  name: shop
`
	m, err := manifest.Parse([]byte(src), "shop")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const withCanary = "  canary:\n    image: app:2\n    weight: 10\n    replicas: 1\n"

func plan(t *testing.T, f *fakeAPI, m *manifest.Manifest, o stack.Options) (Desired, Plan) {
	t.Helper()
	d, err := DesiredFor(m, o, "ns", "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := Observe(context.Background(), f, "ns", m.Project)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compute(context.Background(), f, d, obs)
	if err != nil {
		t.Fatal(err)
	}
	return d, p
}

func kinds(p Plan) []string {
	var out []string
	for _, op := range p.Ops {
		out = append(out, op.Kind+" "+op.Ref.Resource.Kind+"/"+op.Ref.Name)
	}
	return out
}

func TestRouteWaitsForItsDeploymentsThenDeletesWaitForTheRoute(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	m := testManifest(t, withCanary)

	// From nothing: Deployments and Services first; the route waits, it
	// would send traffic to pods that do not exist yet.
	_, p := plan(t, f, m, stack.Options{})
	if got, want := strings.Join(kinds(p), ","), "apply Deployment/shop-stable,apply Service/shop-stable,apply Deployment/shop-canary,apply Service/shop-canary"; got != want {
		t.Fatalf("first plan = %s, want %s", got, want)
	}
	if len(p.Waiting) != 2 || !p.Gated() {
		t.Fatalf("first plan: waiting %q gated %v, want the route waiting on both Deployments, gated", p.Waiting, p.Gated())
	}
	if err := Apply(ctx, f, p, nil); err != nil {
		t.Fatal(err)
	}
	// Not rolled out yet: still waiting, nothing to apply.
	_, p = plan(t, f, m, stack.Options{})
	if !p.Empty() || len(p.Waiting) != 2 {
		t.Fatalf("before rollout: ops %v waiting %q", p.Lines(), p.Waiting)
	}
	f.rollOut("shop-stable")
	_, p = plan(t, f, m, stack.Options{})
	if !p.Empty() || len(p.Waiting) != 1 || !strings.Contains(p.Waiting[0], "shop-canary") {
		t.Fatalf("stable rolled out, canary not: ops %v waiting %q", p.Lines(), p.Waiting)
	}
	f.rollOut("shop-canary")
	d, p := plan(t, f, m, stack.Options{})
	if got := strings.Join(kinds(p), ","); got != "apply HTTPRoute/shop" || p.Gated() {
		t.Fatalf("both rolled out: plan %s gated %v, want the route alone, ungated", got, p.Gated())
	}
	if err := Apply(ctx, f, p, nil); err != nil {
		t.Fatal(err)
	}
	obs, _ := Observe(ctx, f, "ns", "shop")
	_, p = plan(t, f, m, stack.Options{})
	if done, why := Converged(d, obs, p); !done {
		t.Fatalf("not converged: %s", why)
	}
	if w := WeightsText(Weights(obs.Routes["shop"])); w != "shop-canary=10 shop-stable=90" {
		t.Fatalf("weights %s", w)
	}

	// Rollback: the route goes back to stable 100 and, in the same plan
	// after it, the canary's Service and Deployment are deleted.
	_, p = plan(t, f, m, stack.Options{NoCanary: true})
	if got, want := strings.Join(kinds(p), ","), "apply HTTPRoute/shop,delete Deployment/shop-canary,delete Service/shop-canary"; got != want {
		t.Fatalf("rollback plan = %s, want %s", got, want)
	}
	if p.Gated() {
		t.Fatal("a rollback only withdraws traffic: it must not be gated")
	}

	// Promotion: stable takes the canary's image; until it has rolled out
	// the route keeps the split and the canary is not deleted.
	_, p = plan(t, f, m, stack.Options{StableImage: "app:2", NoCanary: true})
	if got, want := strings.Join(kinds(p), ","), "apply Deployment/shop-stable"; got != want {
		t.Fatalf("promotion plan = %s, want %s (route and deletes waiting)", got, want)
	}
	if !strings.Contains(p.Ops[0].Why, "image app:1 → app:2") {
		t.Fatalf("why = %q", p.Ops[0].Why)
	}
	if len(p.Waiting) != 3 {
		t.Fatalf("waiting = %q, want the route and both canary deletes", p.Waiting)
	}
}

func TestConflictOnAnObjectSwiftdeployDidNotApplyIsAnError(t *testing.T) {
	f := newFake()
	m := testManifest(t, "")
	_, p := plan(t, f, m, stack.Options{})
	if err := Apply(context.Background(), f, p, nil); err != nil {
		t.Fatal(err)
	}
	// Drift on an object swiftdeploy applied: a forced apply, named.
	f.conflicts["Deployment/shop-stable"] = true
	f.objs["Deployment/shop-stable"]["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"] = "evil:1"
	_, p = plan(t, f, m, stack.Options{})
	if len(p.Ops) != 1 || !p.Ops[0].Force || !strings.Contains(p.Ops[0].Why, "revert drift") || !strings.Contains(p.Ops[0].Why, "kubectl-edit") || !strings.Contains(p.Ops[0].Why, "image evil:1 → app:1") {
		t.Fatalf("drift plan = %q, want one forced apply naming the field manager and the image", p.Lines())
	}
	// The same conflict on an object someone else applied: refused.
	f.objs["Deployment/shop-stable"]["metadata"].(map[string]any)["managedFields"] = []any{map[string]any{"manager": "helm", "operation": "Apply"}}
	obs, _ := Observe(context.Background(), f, "ns", "shop")
	d, _ := DesiredFor(m, stack.Options{}, "ns", "", 0, nil)
	_, err := Compute(context.Background(), f, d, obs)
	if err == nil || !kube.IsConflict(err) || !strings.Contains(err.Error(), "not applied by swiftdeploy") || !strings.Contains(err.Error(), "Deployment ns/shop-stable") {
		t.Fatalf("err = %v, want a conflict naming the object, not taken over", err)
	}
}

func TestRolledOut(t *testing.T) {
	three := int32(3)
	base := appsv1.Deployment{}
	base.Generation = 2
	base.Spec.Replicas = &three
	for _, tc := range []struct {
		name string
		st   appsv1.DeploymentStatus
		want string
	}{
		{"done", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}, ""},
		{"old generation", appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}, "generation 2 not yet observed"},
		{"updating", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 4, UpdatedReplicas: 1, AvailableReplicas: 3}, "1 of 3 replicas updated"},
		{"old pod left", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 4, UpdatedReplicas: 3, AvailableReplicas: 3}, "1 old replicas still running"},
		{"unavailable", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 2}, "2 of 3 replicas available"},
		{"deadline", appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 4, UpdatedReplicas: 1, AvailableReplicas: 3, Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentProgressing, Status: "False", Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "x" has timed out progressing.`}}}, "progress deadline exceeded"},
		// The condition of an earlier rollout, before the controller has
		// seen the new spec, is not this rollout's failure.
		{"stale deadline", appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 4, UpdatedReplicas: 1, AvailableReplicas: 3, Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentProgressing, Status: "False", Reason: "ProgressDeadlineExceeded"}}}, "generation 2 not yet observed"},
	} {
		d := base
		d.Status = tc.st
		done, why := RolledOut(d)
		if done != (tc.want == "") || !strings.Contains(why, tc.want) {
			t.Errorf("%s: RolledOut = %v %q, want %q", tc.name, done, why, tc.want)
		}
	}
}
