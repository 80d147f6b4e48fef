package kubetarget

import (
	"context"
	"encoding/json"
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
		return nil, &kube.Error{Code: 409, Reason: "Conflict", What: "apply " + ref.String(),
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
	obs, err := ListObserve(context.Background(), f, "ns", m.Project)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compute(d, obs)
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
	obs, _ := ListObserve(ctx, f, "ns", "shop")
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

}

// A promotion of the canary never puts a pod of the promoted image in
// the stable Service while the route sends it traffic: the canary scales
// to the stable's size, takes every request (the commit), and only then
// does the stable Deployment roll; the route returns to it, the canary
// goes.
func TestPromotionMovesTrafficToTheFullCanaryBeforeStableRolls(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	m := testManifest(t, withCanary)
	for range 3 { // deploy the canary: Deployments, roll out, route
		_, p := plan(t, f, m, stack.Options{})
		if err := Apply(ctx, f, p, nil); err != nil {
			t.Fatal(err)
		}
		f.rollOut("shop-stable")
		f.rollOut("shop-canary")
	}
	promo := stack.Options{StableImage: "app:2", NoCanary: true}
	step := func(want string) (Desired, Plan) {
		t.Helper()
		d, p := plan(t, f, m, promo)
		if got := strings.Join(kinds(p), ","); got != want {
			t.Fatalf("plan = %s (%q), want %s", got, p.Lines(), want)
		}
		if err := Apply(ctx, f, p, nil); err != nil {
			t.Fatal(err)
		}
		return d, p
	}
	stableImage := func() string {
		return f.objs["Deployment/shop-stable"]["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"].(string)
	}
	d, p := step("apply Deployment/shop-canary")
	if !strings.Contains(p.Ops[0].Why, "replicas 1 → 2") || len(p.Waiting) != 1 || !p.Gated() {
		t.Fatalf("first stage: %q waiting %q gated %v, want the canary scaled to 2, gated, the route waiting", p.Lines(), p.Waiting, p.Gated())
	}
	obs, _ := ListObserve(ctx, f, "ns", "shop")
	if Serves(d, obs) {
		t.Fatal("served before any request moved")
	}
	f.rollOut("shop-canary")
	step("apply HTTPRoute/shop")
	obs, _ = ListObserve(ctx, f, "ns", "shop")
	if w := WeightsText(Weights(obs.Routes["shop"])); w != "shop-canary=100 shop-stable=0" || stableImage() != "app:1" {
		t.Fatalf("after the switch: weights %s stable %s, want every request on the canary, stable untouched", w, stableImage())
	}
	if !Serves(d, obs) {
		t.Fatal("the route serves the promoted image: that is the commit")
	}
	_, p = step("apply Deployment/shop-stable")
	if !strings.Contains(p.Ops[0].Why, "image app:1 → app:2") || len(p.Waiting) != 3 {
		t.Fatalf("third stage %q waiting %q: want the stable rolled, the route and the canary's deletes waiting", p.Lines(), p.Waiting)
	}
	f.rollOut("shop-stable")
	step("apply HTTPRoute/shop,delete Deployment/shop-canary,delete Service/shop-canary")
	d, p = plan(t, f, m, promo)
	obs, _ = ListObserve(ctx, f, "ns", "shop")
	if done, why := Converged(d, obs, p); !done || WeightsText(Weights(obs.Routes["shop"])) != "shop-stable=100" {
		t.Fatalf("not converged: %s", why)
	}
}

func TestDriftIsRevertedAndObjectsOthersAppliedAreRefused(t *testing.T) {
	f := newFake()
	m := testManifest(t, "")
	_, p := plan(t, f, m, stack.Options{})
	if err := Apply(context.Background(), f, p, nil); err != nil {
		t.Fatal(err)
	}
	f.rollOut("shop-stable")
	if _, p = plan(t, f, m, stack.Options{}); len(p.Ops) != 1 || p.Ops[0].Ref.Resource.Kind != "HTTPRoute" {
		t.Fatalf("plan after the Deployment rolled out = %q, want the route alone", p.Lines())
	}
	// What the server adds (defaults, the controller's annotation, a
	// status) is not drift: nothing to apply.
	dep := f.objs["Deployment/shop-stable"]
	dep["metadata"].(map[string]any)["annotations"].(map[string]any)["deployment.kubernetes.io/revision"] = "1"
	dep["spec"].(map[string]any)["revisionHistoryLimit"] = 10.0
	ct := dep["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	ct["terminationMessagePath"] = "/dev/termination-log"
	ct["readinessProbe"].(map[string]any)["successThreshold"] = 1.0
	// Another manager's env var beside swiftdeploy's is theirs: not drift.
	ct["env"] = append(ct["env"].([]any), map[string]any{"name": "SIDECAR", "value": "x"})
	svc := f.objs["Service/shop-stable"]
	svc["spec"].(map[string]any)["clusterIP"] = "10.0.0.7"
	svc["spec"].(map[string]any)["ports"].([]any)[0].(map[string]any)["targetPort"] = "http"
	if err := Apply(context.Background(), f, p, nil); err != nil {
		t.Fatal(err)
	}
	f.objs["HTTPRoute/shop"]["spec"].(map[string]any)["rules"].([]any)[2].(map[string]any)["backendRefs"].([]any)[0].(map[string]any)["kind"] = "Service"
	if _, p = plan(t, f, m, stack.Options{}); !p.Empty() {
		t.Fatalf("server defaults planned as changes: %q", p.Lines())
	}
	// Drift on an object swiftdeploy applied: a forced apply, named.
	ct["image"] = "evil:1"
	f.objs["Deployment/shop-stable"]["metadata"].(map[string]any)["managedFields"] = []any{
		map[string]any{"manager": "swiftdeploy", "operation": "Apply"},
		map[string]any{"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": map[string]any{"f:metadata": map[string]any{"f:annotations": map[string]any{"f:deployment.kubernetes.io/revision": map[string]any{}}}}},
		map[string]any{"manager": "kubectl-edit", "operation": "Update", "fieldsV1": map[string]any{"f:spec": map[string]any{}}},
	}
	_, p = plan(t, f, m, stack.Options{})
	if len(p.Ops) != 1 || !p.Ops[0].Force || !strings.Contains(p.Ops[0].Why, "revert drift") || !strings.Contains(p.Ops[0].Why, "changed by kubectl-edit;") && !strings.HasSuffix(p.Ops[0].Why, "changed by kubectl-edit") || !strings.Contains(p.Ops[0].Why, "image evil:1 → app:1") {
		t.Fatalf("drift plan = %q, want one forced apply naming the field manager (not the Deployment controller) and the image", p.Lines())
	}
	// An object someone else applied: refused, whatever it holds.
	f.objs["Deployment/shop-stable"]["metadata"].(map[string]any)["managedFields"] = []any{map[string]any{"manager": "helm", "operation": "Apply"}}
	obs, _ := ListObserve(context.Background(), f, "ns", "shop")
	d, _ := DesiredFor(m, stack.Options{}, "ns", "", 0, nil)
	_, err := Compute(d, obs)
	if err == nil || !strings.Contains(err.Error(), "not applied by swiftdeploy") || !strings.Contains(err.Error(), "Deployment ns/shop-stable") || !strings.Contains(err.Error(), "helm") {
		t.Fatalf("err = %v, want the object and its manager named, not taken over", err)
	}
}

// A manifest edit is a change even where the server's copy would pass
// the drift comparison (a removed env var): the applied hash says so.
func TestRemovedFieldIsAChange(t *testing.T) {
	f := newFake()
	m := testManifest(t, "")
	m.Services.Env = map[string]string{"A": "1", "B": "2"}
	_, p := plan(t, f, m, stack.Options{})
	if err := Apply(context.Background(), f, p, nil); err != nil {
		t.Fatal(err)
	}
	delete(m.Services.Env, "B")
	_, p = plan(t, f, m, stack.Options{})
	if got := strings.Join(kinds(p), ","); got != "apply Deployment/shop-stable" {
		t.Fatalf("plan after removing an env var = %s, want the Deployment applied", got)
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

// A manifest change is applied as a change, not called drift; if someone
// took a field it sets meanwhile, the apply conflicts and is forced,
// naming the field and the manager from the conflict.
func TestChangedObjectThatConflictsIsForcedAndNamed(t *testing.T) {
	f := newFake()
	m := testManifest(t, "")
	_, p := plan(t, f, m, stack.Options{})
	if err := Apply(context.Background(), f, p, nil); err != nil {
		t.Fatal(err)
	}
	m.Services.Replicas = 3
	_, p = plan(t, f, m, stack.Options{})
	if len(p.Ops) != 1 || p.Ops[0].Force || strings.Contains(p.Ops[0].Why, "drift") {
		t.Fatalf("plan %q: want a plain apply of the change", p.Lines())
	}
	f.conflicts["Deployment/shop-stable"] = true
	op, err := RunOp(context.Background(), f, p.Ops[0])
	if err != nil || !op.Force || !strings.Contains(op.Why, `revert drift: .spec.template.spec.containers[name="app"].image conflict with "kubectl-edit"`) {
		t.Fatalf("ran %+v err %v, want forced naming the conflict", op, err)
	}
}

// A Deployment an HPA targets keeps the HPA's replicas: no drift revert,
// no apply once it converged; before the HPA owns the field, it is
// applied at the live count (dropping it would reset it to 1).
func TestHPAOwnsReplicas(t *testing.T) {
	f := newFake()
	m := testManifest(t, "")
	_, p := plan(t, f, m, stack.Options{})
	if err := Apply(context.Background(), f, p, nil); err != nil {
		t.Fatal(err)
	}
	f.rollOut("shop-stable")
	_, p = plan(t, f, m, stack.Options{})
	if err := Apply(context.Background(), f, p, nil); err != nil { // the route
		t.Fatal(err)
	}
	d, _ := DesiredFor(m, stack.Options{}, "ns", "", 0, nil)
	observe := func() Observed {
		obs, _ := ListObserve(context.Background(), f, "ns", "shop")
		obs.Scaled["shop-stable"] = "web"
		return obs
	}
	spec := func() map[string]any { return f.objs["Deployment/shop-stable"]["spec"].(map[string]any) }
	// The HPA exists and has not scaled yet: replicas stay at the live 2,
	// whatever the manifest says now (nothing to apply).
	m.Services.Replicas = 4
	d, _ = DesiredFor(m, stack.Options{}, "ns", "", 0, nil)
	if p, err := Compute(d, observe()); err != nil || !p.Empty() {
		t.Fatalf("plan %q err %v: want nothing, the replicas are the HPA's", p.Lines(), err)
	}
	// The HPA scales to 5 through the scale subresource: its field now.
	hpaScales := func() {
		spec()["replicas"] = 5.0
		md := f.objs["Deployment/shop-stable"]["metadata"].(map[string]any)
		md["managedFields"] = append(md["managedFields"].([]any), map[string]any{"manager": "horizontal-pod-autoscaler", "operation": "Update", "subresource": "scale",
			"fieldsV1": map[string]any{"f:spec": map[string]any{"f:replicas": map[string]any{}}}})
	}
	hpaScales()
	p, err := Compute(d, observe())
	if err != nil || len(p.Ops) != 1 || p.Ops[0].Force || strings.Contains(p.Ops[0].Why, "drift") {
		t.Fatalf("plan %q err %v: want one plain apply without replicas, never a drift revert", p.Lines(), err)
	}
	if err := Apply(context.Background(), f, p, nil); err != nil {
		t.Fatal(err)
	}
	if _, set := spec()["replicas"]; set {
		t.Fatalf("applied replicas %v: the HPA owns them", spec()["replicas"])
	}
	hpaScales() // the server keeps the HPA's value and its ownership
	if p, _ = Compute(d, observe()); !p.Empty() {
		t.Fatalf("plan %q after the hand-over: want nothing", p.Lines())
	}
}

// Under an HPA, a promotion's canary takes the stable's live count (what
// carries its traffic now), not the manifest's.
func TestPromotionCanaryFollowsTheHPAsCount(t *testing.T) {
	f := newFake()
	ctx := context.Background()
	m := testManifest(t, withCanary)
	for range 3 {
		_, p := plan(t, f, m, stack.Options{})
		if err := Apply(ctx, f, p, nil); err != nil {
			t.Fatal(err)
		}
		f.rollOut("shop-stable")
		f.rollOut("shop-canary")
	}
	f.objs["Deployment/shop-stable"]["spec"].(map[string]any)["replicas"] = 4.0
	d, _ := DesiredFor(m, stack.Options{StableImage: "app:2", NoCanary: true}, "ns", "", 0, nil)
	obs, _ := ListObserve(ctx, f, "ns", "shop")
	obs.Scaled["shop-stable"] = "web"
	p, err := Compute(d, obs)
	if err != nil || len(p.Ops) != 1 || !strings.Contains(p.Ops[0].Why, "replicas 1 → 4") {
		t.Fatalf("plan %q err %v: want the canary scaled to the HPA's 4", p.Lines(), err)
	}
}
