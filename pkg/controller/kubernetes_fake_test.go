package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets/kubernetes"
)

// fakeKube is an in-memory API server for the Kubernetes target: applies
// store the object; a Deployment rolls out at once (its pods Ready with
// its image) unless stalled; faults are injected per op.
type fakeKube struct {
	mu      sync.Mutex
	objs    map[string][]byte // "Kind/name" → JSON
	gen     map[string]int64
	rv      int
	pods    map[string][]corev1.Pod // by Deployment
	nodeCPU string                  // allocatable CPU of the one node
	// stall: Deployments whose new pods never become available (the old
	// ones keep running).
	stall map[string]bool
	// failApply / failDelete: the real (not dry-run) op on "Kind/name"
	// fails.
	failApply, failDelete map[string]error
	// slow: Deployments whose rollout does not finish (nor fail) until
	// cleared. conflict: someone else changed a field of "Kind/name":
	// a dry run without force conflicts.
	slow, conflict map[string]bool
	// pullFail: Deployments whose new pod waits for its image with this
	// kubelet message (ErrImagePull); the old pods keep running.
	pullFail map[string]string
	nodeDown bool // the one node is NotReady: the cluster policy denies
	// forbid: kinds whose list the daemon's Role does not grant (403).
	forbid  map[string]bool
	dryRuns int
	ops     []string // real ops, in order
}

func newFakeKube() *fakeKube {
	return &fakeKube{objs: map[string][]byte{}, gen: map[string]int64{}, pods: map[string][]corev1.Pod{}, nodeCPU: "64",
		stall: map[string]bool{}, slow: map[string]bool{}, forbid: map[string]bool{}, conflict: map[string]bool{}, failApply: map[string]error{}, failDelete: map[string]error{},
		pullFail: map[string]string{}}
}

func key(ref kube.Ref) string { return ref.Resource.Kind + "/" + ref.Name }

func (f *fakeKube) Apply(_ context.Context, ref kube.Ref, body []byte, o kube.ApplyOptions) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := key(ref)
	if o.DryRun {
		f.dryRuns++
		if f.conflict[k] && !o.Force {
			return nil, &kube.Error{Code: 409, Reason: "Conflict", Message: "conflict with \"kubectl-edit\"", What: "apply " + k}
		}
		if live, ok := f.objs[k]; ok && ref.Resource.Kind == "Deployment" {
			// The server keeps the annotation the Deployment controller set.
			var l, d appsv1.Deployment
			_ = json.Unmarshal(live, &l)
			_ = json.Unmarshal(body, &d)
			if rev, ok := l.Annotations["deployment.kubernetes.io/revision"]; ok {
				if d.Annotations == nil {
					d.Annotations = map[string]string{}
				}
				d.Annotations["deployment.kubernetes.io/revision"] = rev
			}
			return json.Marshal(d)
		}
		return body, nil
	}
	if err := f.failApply[k]; err != nil {
		return nil, err
	}
	f.ops = append(f.ops, "apply "+k)
	delete(f.conflict, k)
	f.rv++
	f.gen[k]++
	if ref.Resource.Kind == "StatefulSet" {
		return f.applyStatefulSet(k, body)
	}
	if ref.Resource.Kind != "Deployment" {
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		md, _ := m["metadata"].(map[string]any)
		md["resourceVersion"] = fmt.Sprint(f.rv)
		md["managedFields"] = []map[string]any{{"manager": kube.FieldManager, "operation": "Apply"}}
		f.objs[k], _ = json.Marshal(m)
		return f.objs[k], nil
	}
	var d appsv1.Deployment
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, err
	}
	d.Generation, d.ResourceVersion = f.gen[k], fmt.Sprint(f.rv)
	d.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: kube.FieldManager, Operation: "Apply"}}
	d.UID = types.UID("uid-" + d.Name)
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations["deployment.kubernetes.io/revision"] = fmt.Sprint(f.gen[k])
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	image, track := kubetarget.ImageOf(d), d.Spec.Template.Labels[k8srender.LabelTrack]
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: want, UpdatedReplicas: want, AvailableReplicas: want, ReadyReplicas: want}
	if f.slow[d.Name] {
		d.Status.UpdatedReplicas, d.Status.AvailableReplicas = 0, want
	} else if f.stall[d.Name] {
		// The new ReplicaSet's pod never becomes available; the old pods
		// keep running (maxSurge 1).
		d.Status.Replicas, d.Status.UpdatedReplicas = want+1, 1
		d.Status.AvailableReplicas = want
		d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
			Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet has timed out progressing"}}
	} else if msg, ok := f.pullFail[d.Name]; ok {
		// The surge pod of the new ReplicaSet waits for its image; the
		// old pods keep running (maxSurge 1); no deadline yet.
		d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.AvailableReplicas = want+1, 1, want
		name := fmt.Sprintf("%s-%d-0", d.Name, f.gen[k])
		f.pods[d.Name] = append(f.pods[d.Name], corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(name), ResourceVersion: fmt.Sprint(f.rv),
				Labels: map[string]string{k8srender.LabelProject: d.Labels[k8srender.LabelProject], k8srender.LabelRole: stack.RoleApp, k8srender.LabelTrack: track,
					k8srender.LabelService: d.Spec.Template.Labels[k8srender.LabelService], "pod-template-hash": fmt.Sprint("h", f.gen[k])}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Image: image,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: msg}}}}},
		})
	} else {
		var pods []corev1.Pod
		for i := range want {
			pods = append(pods, corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d-%d", d.Name, f.gen[k], i), ResourceVersion: fmt.Sprint(f.rv),
					Labels: map[string]string{k8srender.LabelProject: d.Labels[k8srender.LabelProject], k8srender.LabelRole: stack.RoleApp, k8srender.LabelTrack: track,
						k8srender.LabelService: d.Spec.Template.Labels[k8srender.LabelService], "pod-template-hash": fmt.Sprint("h", f.gen[k])}},
				Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
			})
		}
		f.pods[d.Name] = pods
	}
	f.objs[k], _ = json.Marshal(d)
	return f.objs[k], nil
}

// setWaiting is the kubelet's next report on dep's pods waiting for
// their image.
func (f *fakeKube) setWaiting(dep, reason, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range f.pods[dep] {
		for j, cs := range p.Status.ContainerStatuses {
			if cs.State.Waiting != nil {
				f.pods[dep][i].Status.ContainerStatuses[j].State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
			}
		}
	}
}

func (f *fakeKube) Delete(_ context.Context, ref kube.Ref) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := key(ref)
	if err := f.failDelete[k]; err != nil {
		return err
	}
	f.ops = append(f.ops, "delete "+k)
	delete(f.objs, k)
	delete(f.pods, ref.Name)
	return nil
}

func (f *fakeKube) List(_ context.Context, r kube.Resource, _, selector string, v any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.forbid[r.Kind] {
		return &kube.Error{Code: 403, Reason: "Forbidden", What: "list " + r.Plural, Message: r.Plural + " is forbidden"}
	}
	var items []json.RawMessage
	switch r.Kind {
	case "Pod":
		var names []string
		for n := range f.pods {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			for _, p := range f.pods[n] {
				b, _ := json.Marshal(p)
				items = append(items, b)
			}
		}
	case "ReplicaSet":
		// One ReplicaSet per Deployment, at its revision.
		for k, b := range f.objs {
			if len(k) < 11 || k[:11] != "Deployment/" {
				continue
			}
			var d appsv1.Deployment
			_ = json.Unmarshal(b, &d)
			rev := d.Annotations["deployment.kubernetes.io/revision"]
			rs := appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-" + rev,
				Labels:          map[string]string{"pod-template-hash": "h" + rev, k8srender.LabelTrack: d.Spec.Template.Labels[k8srender.LabelTrack]},
				Annotations:     map[string]string{"deployment.kubernetes.io/revision": rev},
				OwnerReferences: []metav1.OwnerReference{{UID: d.UID, Name: d.Name, Kind: "Deployment"}}}}
			rb, _ := json.Marshal(rs)
			items = append(items, rb)
		}
	case "Node":
		ready := corev1.ConditionTrue
		if f.nodeDown {
			ready = corev1.ConditionFalse
		}
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(f.nodeCPU), corev1.ResourceMemory: resource.MustParse("64Gi")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
		b, _ := json.Marshal(n)
		items = append(items, b)
	default:
		// The objects the selector selects: two projects in one
		// namespace each see their own.
		sel, err := labels.Parse(selector)
		if err != nil {
			return err
		}
		for k, b := range f.objs {
			if len(k) > len(r.Kind) && k[:len(r.Kind)+1] == r.Kind+"/" {
				var o metav1.PartialObjectMetadata
				_ = json.Unmarshal(b, &o)
				if sel.Matches(labels.Set(o.Labels)) {
					items = append(items, b)
				}
			}
		}
	}
	b, _ := json.Marshal(map[string]any{"items": items})
	return json.Unmarshal(b, v)
}

// Get reads one object by name (the pull Secret is read so, apart from
// the project's labelled lists).
func (f *fakeKube) Get(_ context.Context, ref kube.Ref, v any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objs[key(ref)]
	if !ok {
		return &kube.Error{Code: 404, Reason: "NotFound", Message: key(ref) + " not found", What: "get " + key(ref)}
	}
	return json.Unmarshal(b, v)
}

// Observe lists, as the informers' cache would hold it.
func (f *fakeKube) Observe(ctx context.Context, project string, x kubetarget.Extras) (kubetarget.Observed, error) {
	return kubetarget.ListObserveExtras(ctx, f, "ns", project, x)
}

func (f *fakeKube) OnChange(func()) {}
func (f *fakeKube) Close()          {}

func (f *fakeKube) has(kindName string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.objs[kindName]
	return ok
}

func (f *fakeKube) image(dep string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var d appsv1.Deployment
	_ = json.Unmarshal(f.objs["Deployment/"+dep], &d)
	return kubetarget.ImageOf(d)
}

func (f *fakeKube) replicas(dep string) int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var d appsv1.Deployment
	_ = json.Unmarshal(f.objs["Deployment/"+dep], &d)
	if d.Spec.Replicas == nil {
		return 0
	}
	return *d.Spec.Replicas
}

func (f *fakeKube) weights(route string) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var r gatewayv1.HTTPRoute
	_ = json.Unmarshal(f.objs["HTTPRoute/"+route], &r)
	return kubetarget.Weights(r)
}

// kubeHarness is the harness with the Kubernetes target on fakeKube in
// place of Docker; with, when given, tunes its configuration.
func kubeHarness(t *testing.T, manifest string, with ...func(*kubernetes.Config)) (*harness, *fakeKube) {
	t.Helper()
	h := newHarness(t, manifest)
	fk := newFakeKube()
	cfg := kubernetes.Config{Namespace: "ns", ProgressDeadline: 2 * time.Second, Poll: 5 * time.Millisecond}
	for _, f := range with {
		f(&cfg)
	}
	kt := kubernetes.NewOn(cfg, fk, h.d.kubeDeps())
	h.d.kt, h.d.target = kt, kt
	return h, fk
}

var errBoom = errors.New("boom")

type reconcilerDecision = reconciler.Decision

func allow() reconciler.Decision { return reconciler.Decision{Allowed: true} }

// drift is someone else's edit of a Deployment's image: the live object
// differs, and applying without force conflicts.
func (f *fakeKube) drift(dep, image string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := "Deployment/" + dep
	var d appsv1.Deployment
	_ = json.Unmarshal(f.objs[k], &d)
	d.Spec.Template.Spec.Containers[0].Image = image
	d.ManagedFields = append(d.ManagedFields, metav1.ManagedFieldsEntry{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate,
		FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)}})
	f.rv++
	d.ResourceVersion = fmt.Sprint(f.rv)
	f.objs[k], _ = json.Marshal(d)
	f.conflict[k] = true
}

// fakeProm answers canary-safety queries: 1000 requests at 5/s, p99 50 ms,
// the error rate errRate.
type fakeProm struct {
	mu        sync.Mutex
	errRate   float64 // the canary's
	stableErr float64
	queries   int
	// svcErr is the canary's error rate of a named service, by its
	// service label in the query; seen the services queries selected.
	svcErr map[string]float64
	seen   map[string]bool
}

// setService sets named service svc's canary error rate.
func (p *fakeProm) setService(svc string, errRate float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.svcErr == nil {
		p.svcErr = map[string]float64{}
	}
	p.svcErr[svc] = errRate
}

// askedFor: a query selected named service svc's series.
func (p *fakeProm) askedFor(svc string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[svc]
}

// serviceOf is the service a query selects by its label ("" for none).
func serviceOf(q string) string {
	_, rest, ok := strings.Cut(q, `io_swiftdeploy_service="`)
	if !ok {
		return ""
	}
	svc, _, _ := strings.Cut(rest, `"`)
	return svc
}

func (p *fakeProm) set(errRate float64) {
	p.mu.Lock()
	p.errRate = errRate
	p.mu.Unlock()
}

func (p *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queries++
	q := r.URL.Query().Get("query")
	svc := serviceOf(q)
	if svc != "" {
		if p.seen == nil {
			p.seen = map[string]bool{}
		}
		p.seen[svc] = true
	}
	v := 5.0
	svcErr, hasSvcErr := p.svcErr[svc]
	switch {
	case strings.Contains(q, `status=~`) && hasSvcErr && strings.Contains(q, `io_swiftdeploy_track="canary"`):
		v = svcErr
	case strings.Contains(q, `status=~`) && strings.Contains(q, `io_swiftdeploy_track="stable"`):
		v = p.stableErr
	case strings.Contains(q, `status=~`):
		v = p.errRate
	case strings.HasPrefix(q, "histogram_quantile"):
		v = 50
	case strings.Contains(q, "increase("):
		v = 1000
	}
	fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[0,"%g"]}]}}`, v)
}

// withProm names a fake Prometheus in a manifest.
func withProm(t *testing.T, manifest string) (string, *fakeProm) {
	p := &fakeProm{}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return strings.Replace(manifest, "metrics:\n", "metrics:\n  prometheus: "+srv.URL+"\n", 1), p
}
