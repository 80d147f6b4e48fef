package k8s

import (
	"context"
	"fmt"
	"sync"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// clientset is a client-go client of the harness's API server.
func (c *cluster) clientset(t *testing.T) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// stableEndpoints watches the EndpointSlices of a Service and, at every
// change, records each Ready endpoint's pod image, until the route gives
// the Service no share (the promotion's switch) or stop is called.
// Violations are endpoints whose image is not want while the route still
// sends the Service traffic.
type stableEndpoints struct {
	mu         sync.Mutex
	changes    int
	violations []string
	switched   bool
	seen       []string // each change: the route's weights and the Ready endpoints' images
	cancel     context.CancelFunc
	done       chan struct{}
}

func watchStableEndpoints(ctx context.Context, t *testing.T, c *cluster, ns, service, route, want string) *stableEndpoints {
	t.Helper()
	cs := c.clientset(t)
	ctx, cancel := context.WithCancel(ctx)
	s := &stableEndpoints{cancel: cancel, done: make(chan struct{})}
	w, err := cs.DiscoveryV1().EndpointSlices(ns).Watch(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		defer w.Stop()
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				if ctx.Err() != nil {
					return // stopped
				}
				s.mu.Lock()
				s.violations = append(s.violations, fmt.Sprintf("watch error: %v", ev.Object))
				s.mu.Unlock()
				return
			}
			es, ok := ev.Object.(*discoveryv1.EndpointSlice)
			if !ok {
				continue
			}
			weights := c.routeWeightsOf(ctx, ns, route)
			var bad, images []string
			for _, e := range es.Endpoints {
				if e.Conditions.Ready == nil || !*e.Conditions.Ready || e.TargetRef == nil {
					continue
				}
				p, err := cs.CoreV1().Pods(ns).Get(ctx, e.TargetRef.Name, metav1.GetOptions{})
				if err != nil {
					continue // deleted meanwhile: not serving
				}
				for _, ct := range p.Spec.Containers {
					if ct.Name == "app" {
						images = append(images, ct.Image)
					}
					if ct.Name == "app" && ct.Image != want {
						bad = append(bad, fmt.Sprintf("%s runs %s (route %v)", p.Name, ct.Image, weights))
					}
				}
			}
			s.mu.Lock()
			s.seen = append(s.seen, fmt.Sprintf("%s %s: route %v, ready %v", ev.Type, es.Name, weights, images))
			s.changes++
			if weights[service] == 0 {
				s.switched = true
			}
			if !s.switched {
				s.violations = append(s.violations, bad...)
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// stop ends the watch and returns what it saw.
func (s *stableEndpoints) stop() (changes int, violations []string, switched bool) {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changes, s.violations, s.switched
}

// readyImages are the images of the Ready endpoints of a Service's
// EndpointSlices, each with its count ("app:1" → 2).
func (c *cluster) readyImages(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, service string) map[string]int {
	t.Helper()
	slices, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + service})
	if err != nil {
		t.Fatalf("list the EndpointSlices of %s: %v", service, err)
	}
	out := map[string]int{}
	for _, es := range slices.Items {
		for _, e := range es.Endpoints {
			if e.Conditions.Ready == nil || !*e.Conditions.Ready || e.TargetRef == nil {
				continue
			}
			p, err := cs.CoreV1().Pods(ns).Get(ctx, e.TargetRef.Name, metav1.GetOptions{})
			if err != nil {
				continue // deleted meanwhile: not serving
			}
			for _, ct := range p.Spec.Containers {
				if ct.Name == "app" {
					out[ct.Image]++
				}
			}
		}
	}
	return out
}

// changesSeen is each change the watch saw, for a failure's message.
func (s *stableEndpoints) changesSeen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// routeWeightsOf reads a route's weights by backend (nil when missing).
func (c *cluster) routeWeightsOf(ctx context.Context, ns, name string) map[string]int {
	var r struct {
		Spec struct {
			Rules []struct {
				Name        *string `json:"name"`
				BackendRefs []struct {
					Name   string `json:"name"`
					Weight *int   `json:"weight"`
				} `json:"backendRefs"`
			} `json:"rules"`
		} `json:"spec"`
	}
	if err := c.get(ctx, "/apis/gateway.networking.k8s.io/v1/namespaces/"+ns+"/httproutes/"+name, &r); err != nil {
		return nil
	}
	w := map[string]int{}
	for _, rule := range r.Spec.Rules {
		if rule.Name != nil && *rule.Name == "canary-match" {
			continue
		}
		for _, b := range rule.BackendRefs {
			n := 1
			if b.Weight != nil {
				n = *b.Weight
			}
			w[b.Name] += n
		}
	}
	return w
}
