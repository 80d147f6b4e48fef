package kubetarget

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// Observe reads the informers' cache: the project's own objects (both
// labels), its pods, and which Deployment an HPA targets; an object with
// the project label alone, or of another project, is not there. Events
// reach OnChange.
func TestLiveObservesFromTheInformersCache(t *testing.T) {
	owned := map[string]string{k8srender.LabelProject: "shop", k8srender.LabelManagedBy: k8srender.ManagedBy}
	podLabels := map[string]string{k8srender.LabelProject: "shop", k8srender.LabelRole: "app"}
	cs := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop-stable", Namespace: "ns", Labels: owned}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: "ns", Labels: map[string]string{k8srender.LabelProject: "shop"}}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "other-ns", Namespace: "elsewhere", Labels: owned}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop-stable", Namespace: "ns", Labels: owned}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shop-stable-abc", Namespace: "ns", Labels: podLabels}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "ns", Labels: map[string]string{"app": "db"}}},
		&autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "shop-stable", APIVersion: "apps/v1"}}},
	)
	gw := gatewayfake.NewSimpleClientset(&gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "ns", Labels: owned}})
	l := NewLive(kube.NewFromClients(cs, gw, dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())), "ns")
	defer l.Close()
	changed := make(chan struct{}, 16)
	l.OnChange(func() { changed <- struct{}{} })
	obs, err := l.Observe(context.Background(), "shop", Extras{})
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Deployments) != 1 || obs.Deployments["shop-stable"].Name == "" {
		t.Fatalf("deployments %v, want shop-stable alone", keys(obs.Deployments))
	}
	if len(obs.Services) != 1 || len(obs.Routes) != 1 || len(obs.Pods) != 1 || obs.Pods[0].Name != "shop-stable-abc" {
		t.Fatalf("services %d routes %d pods %v", len(obs.Services), len(obs.Routes), obs.Pods)
	}
	if obs.Scaled["shop-stable"] != "web" {
		t.Fatalf("scaled %v, want shop-stable by HPA web", obs.Scaled)
	}
	// A change made after the cache started reaches it and OnChange.
	drain(changed)
	if _, err := cs.CoreV1().Services("ns").Create(context.Background(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop-canary", Namespace: "ns", Labels: owned}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		<-changed
		obs, _ = l.Observe(context.Background(), "shop", Extras{})
		if len(obs.Services) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("services %v after the create, want 2", keys(obs.Services))
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func drain(c chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// An API server that does not answer leaves the informers unsynced: an
// Observe returns when its ctx ends, naming why, instead of waiting for
// the informers' own timeout.
func TestLiveObserveReturnsWithItsContextWhileTheServerIsAway(t *testing.T) {
	c, err := kube.NewForConfig(&rest.Config{Host: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLive(c, "ns")
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = l.Observe(ctx, "shop", Extras{})
	if err == nil || !strings.Contains(err.Error(), "have not listed yet") {
		t.Fatalf("err = %v, want the informers not listed yet", err)
	}
}

// A restarted daemon observes the project's StatefulSets when asked (the
// named form, accessory or not) from its own informer; a Role that does
// not grant them leaves them Unseen, saying so, instead of failing the
// observe or seeing nothing silently.
func TestLiveObservesStatefulSetsOrSaysItCannot(t *testing.T) {
	owned := map[string]string{k8srender.LabelProject: "shop", k8srender.LabelManagedBy: k8srender.ManagedBy}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "shop-db", Namespace: "ns", Labels: owned}}
	forbid := func(a k8stesting.Action) (bool, runtime.Object, error) {
		if r := a.GetResource().Resource; r == "statefulsets" || r == "persistentvolumeclaims" {
			return true, nil, apierrors.NewForbidden(a.GetResource().GroupResource(), "", errors.New("RBAC: no rule"))
		}
		return false, nil, nil
	}
	live := func(cs *fake.Clientset, forbidden bool) *Live {
		dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{kube.Claims.GVR(): "PersistentVolumeClaimList"})
		if forbidden {
			cs.PrependReactor("list", "*", forbid)
			dyn.PrependReactor("list", "*", forbid)
		}
		l := NewLive(kube.NewFromClients(cs, gatewayfake.NewSimpleClientset(), dyn), "ns")
		l.SyncTimeout = 10 * time.Second
		t.Cleanup(l.Close)
		return l
	}
	obs, err := live(fake.NewClientset(sts), false).Observe(context.Background(), "shop", Extras{StatefulSets: true, Claims: true})
	if err != nil || len(obs.StatefulSets) != 1 || len(obs.Unseen) != 0 {
		t.Fatalf("observe: %v, StatefulSets %v, unseen %v", err, keys(obs.StatefulSets), obs.Unseen)
	}
	start := time.Now()
	obs, err = live(fake.NewClientset(sts), true).Observe(context.Background(), "shop", Extras{StatefulSets: true, Claims: true})
	if err != nil {
		t.Fatalf("observe under a Role without statefulsets: %v", err)
	}
	if !strings.Contains(obs.Unseen[UnseenStatefulSets], "cannot see") || !strings.Contains(obs.Unseen[UnseenClaims], "cannot see") {
		t.Fatalf("unseen %v, want StatefulSets and claims", obs.Unseen)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a forbidden list took %s", d)
	}
}
