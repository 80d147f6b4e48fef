package kubetarget

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	gatewayfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// What a reconcile and a status call read beyond the project's cache, the
// project's Secrets, its volume claims, its image pull Secret and the
// cluster policy's nodes and pods, comes from informers once they have
// listed: a round of observe + gate facts asks the API server nothing,
// however many rounds run. Before, each round listed claims, Secrets,
// nodes and pods and read the pull Secret: 5 requests per observe +
// facts, every reconcile and every status call (and status --watch each
// interval). The objects read are the same, and a change reaches them.
func TestExtrasAndClusterFactsComeFromInformers(t *testing.T) {
	owned := map[string]string{k8srender.LabelProject: "shop", k8srender.LabelManagedBy: k8srender.ManagedBy}
	objs := []runtime.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shop-env", Namespace: "ns", Labels: owned}, Data: map[string][]byte{"k": []byte("v")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shop-registry", Namespace: "ns", Labels: owned}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: "ns"}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "shop-data", Namespace: "ns", Labels: owned}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Images:      []corev1.ContainerImage{{Names: []string{"big"}, SizeBytes: 1 << 30}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "elsewhere"},
			Spec: corev1.PodSpec{NodeName: "a", Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}},
	}
	cs := fake.NewClientset(objs...)
	// The same objects behind the dynamic client: the direct reads, until
	// the informers have listed.
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{
		kube.Secrets.GVR(): "SecretList", kube.Claims.GVR(): "PersistentVolumeClaimList",
		kube.Nodes.GVR(): "NodeList", kube.Pods.GVR(): "PodList",
	}, objs...)
	l := NewLive(kube.NewFromClients(cs, gatewayfake.NewSimpleClientset(), dyn), "ns")
	defer l.Close()
	desired, err := DesiredFor(testManifest(t, withCanary), stack.Options{}, "ns", "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	requests := func() int { return len(cs.Actions()) + len(dyn.Actions()) }
	ctx := context.Background()
	round := func() Observed {
		t.Helper()
		obs, err := l.Observe(ctx, "shop", Extras{Secrets: true, Claims: true})
		if err != nil {
			t.Fatal(err)
		}
		in := ClusterFacts(ctx, l, desired)
		if in.Error != "" || len(in.Nodes) != 1 || in.Nodes[0].RequestedCPUMillis != 1000 || in.Nodes[0].AllocatableCPUMillis != 4000 || !in.Nodes[0].Ready {
			t.Fatalf("cluster facts %+v", in)
		}
		if len(obs.Secrets) != 2 || obs.Secrets["shop-env"].Name == "" || len(obs.Claims) != 1 || obs.PullSecret == nil || obs.PullSecret.Name != "shop-registry" {
			t.Fatalf("secrets %v claims %v pull secret %v", keys(obs.Secrets), keys(obs.Claims), obs.PullSecret)
		}
		return obs
	}
	// The first rounds start the informers (one list and one watch each)
	// and read the API meanwhile; wait until a round asks nothing.
	var perRound []int
	for deadline := time.Now().Add(10 * time.Second); ; {
		before := requests()
		round()
		n := requests() - before
		perRound = append(perRound, n)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a round of observe + cluster facts still asks the API server after 10s: %d rounds, the first made %d requests, the last %d", len(perRound), perRound[0], n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := requests()
	const rounds = 20
	for range rounds {
		round()
	}
	if n := requests() - start; n != 0 {
		t.Fatalf("%d rounds of observe + cluster facts made %d requests, want 0 (all from the informers)", rounds, n)
	}
	t.Logf("requests per round until the informers listed: %v; then 0 in %d rounds; %d requests in all", perRound, rounds, requests())

	// A Secret created now reaches the next observes.
	if _, err := cs.CoreV1().Secrets("ns").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shop-more", Namespace: "ns", Labels: owned}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		obs, err := l.Observe(ctx, "shop", Extras{Secrets: true, Claims: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := obs.Secrets["shop-more"]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("secrets %v: the created one never reached the cache", keys(obs.Secrets))
		}
	}
}

// Until the extras' informers have listed (here: never, the daemon may
// not list Secrets, as with a Role that predates them), observe reads the
// API directly and finds the same objects.
func TestExtrasAreReadDirectlyUntilTheirInformerHasListed(t *testing.T) {
	owned := map[string]string{k8srender.LabelProject: "shop", k8srender.LabelManagedBy: k8srender.ManagedBy}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shop-registry", Namespace: "ns", Labels: owned}}
	cs := fake.NewClientset()
	forbidden := func(verb string) {
		cs.PrependReactor(verb, "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, fmt.Errorf("secrets is forbidden")
		})
	}
	forbidden("list")
	forbidden("watch")
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{kube.Secrets.GVR(): "SecretList"}, sec)
	l := NewLive(kube.NewFromClients(cs, gatewayfake.NewSimpleClientset(), dyn), "ns")
	defer l.Close()
	for i := range 3 {
		obs, err := l.Observe(context.Background(), "shop", Extras{})
		if err != nil {
			t.Fatal(err)
		}
		if obs.PullSecret == nil {
			t.Fatalf("round %d: no pull secret", i)
		}
	}
	if n := len(dyn.Actions()); n != 3 {
		t.Fatalf("%d direct reads in 3 observes, want 3 (one get of the pull Secret each)", n)
	}
}
