package kubetarget

import (
	"fmt"
	"maps"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Workloads of the named form: a route's backends are Services, and a
// Service's name is not always its Deployment's (the single-service form
// names both PROJECT-TRACK; the named form names a web service's stable
// Service after the service, web, and its Deployment PROJECT-web). What a
// Service sends traffic to is the workload whose pod selector is the
// Service's selector.

// workloadOf names the desired Deployment the desired Service named
// service selects; the name itself when there is none (a Service and its
// Deployment sharing the name).
func workloadOf(desired Desired, service string) string {
	var sel map[string]string
	for _, o := range desired.Objects {
		if s, ok := o.(*corev1.Service); ok && s.Name == service {
			sel = s.Spec.Selector
		}
	}
	if sel == nil {
		return service
	}
	for _, o := range desired.Objects {
		if d, ok := o.(*appsv1.Deployment); ok && d.Spec.Selector != nil && maps.Equal(d.Spec.Selector.MatchLabels, sel) {
			return d.Name
		}
	}
	return service
}

// routedVia names a live route that sends traffic to a live Service,
// one the manifest no longer names (want), selecting dep's pods: the
// Deployment must stay until that route no longer does.
func routedVia(obs Observed, dep appsv1.Deployment, want map[string]bool) string {
	if dep.Spec.Selector == nil {
		return ""
	}
	names := make([]string, 0, len(obs.Services))
	for n := range obs.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		svc := obs.Services[n]
		if want["Service/"+n] || !maps.Equal(svc.Spec.Selector, dep.Spec.Selector.MatchLabels) {
			continue
		}
		if r := routedBy(obs, n); r != "" {
			return r
		}
	}
	return ""
}

// StatefulSetRolledOut reports whether a StatefulSet's controller has
// seen its latest spec and every replica runs it and is ready, with no
// pod of the previous revision left; otherwise why not.
func StatefulSetRolledOut(s appsv1.StatefulSet) (bool, string) {
	want := int32(1)
	if s.Spec.Replicas != nil {
		want = *s.Spec.Replicas
	}
	st := s.Status
	switch {
	case st.ObservedGeneration < s.Generation:
		return false, fmt.Sprintf("generation %d not yet observed (at %d)", s.Generation, st.ObservedGeneration)
	case st.UpdateRevision != "" && st.CurrentRevision != st.UpdateRevision:
		return false, fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want)
	case st.UpdatedReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want)
	case st.Replicas > want:
		return false, fmt.Sprintf("%d replicas still running, want %d", st.Replicas, want)
	case st.ReadyReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas ready", st.ReadyReplicas, want)
	}
	return true, ""
}

// StatefulSetImage is the app container's image of a StatefulSet.
func StatefulSetImage(s appsv1.StatefulSet) string {
	return templateImage(s.Spec.Template.Spec)
}

func templateImage(p corev1.PodSpec) string {
	for _, c := range p.Containers {
		if c.Name == k8srender.AppContainer {
			return c.Image
		}
	}
	if len(p.Containers) > 0 {
		return p.Containers[0].Image
	}
	return ""
}

// Names are the objects of the primary service's tracks (the one a
// canary, promotion and rollback are about, manifest.Primary): the
// Deployments and the Services the route sends them traffic by, and in
// the named form the route rule that holds the service's split.
type Names struct {
	StableDeployment, CanaryDeployment string
	StableService, CanaryService       string
	// Rule is the route rule of the service's split ("" in the
	// single-service form: the route's every rule).
	Rule string
	// Route is the single-service form's HTTPRoute ("" in the named
	// form: the routes holding Rule).
	Route string
}

// PrimaryNames are the primary service's object names for m.
func PrimaryNames(m *manifest.Manifest) Names {
	name, _ := m.Primary()
	return namesFor(m.Project, name)
}

// NamesOf are the object names of m's web service service ("" the
// primary's).
func NamesOf(m *manifest.Manifest, service string) Names {
	if service == "" {
		return PrimaryNames(m)
	}
	return namesFor(m.Project, service)
}

// namesFor: primary "" is the single-service form.
func namesFor(p, primary string) Names {
	if primary == "" {
		st, ca := p+"-"+stack.TrackStable, p+"-"+stack.TrackCanary
		return Names{StableDeployment: st, CanaryDeployment: ca, StableService: st, CanaryService: ca, Route: p}
	}
	return Names{StableDeployment: k8srender.WorkloadName(p, primary), CanaryDeployment: k8srender.CanaryName(p, primary),
		StableService: primary, CanaryService: k8srender.CanaryName(p, primary), Rule: k8srender.ServiceRule(primary)}
}

// PrimaryWeights are the weights of the live route in force for the
// primary service, by Service name, and that route's name; ok false when
// no live route holds it. In the named form every route holding the
// service's rule carries the same split; the first by name is read.
func PrimaryWeights(obs Observed, n Names) (route string, w map[string]int, ok bool) {
	if n.Rule == "" {
		r, ok := obs.Routes[n.Route]
		if !ok {
			return "", nil, false
		}
		return r.Name, Weights(r), true
	}
	names := make([]string, 0, len(obs.Routes))
	for name := range obs.Routes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if w, ok := ruleWeights(obs.Routes[name], n.Rule); ok {
			return name, w, true
		}
	}
	return "", nil, false
}

// ruleWeights are the backend weights of a route's rule named rule.
func ruleWeights(r gatewayv1.HTTPRoute, rule string) (map[string]int, bool) {
	for _, ru := range r.Spec.Rules {
		if ru.Name == nil || string(*ru.Name) != rule {
			continue
		}
		w := map[string]int{}
		for _, b := range ru.BackendRefs {
			n := 1
			if b.Weight != nil {
				n = int(*b.Weight)
			}
			w[string(b.Name)] += n
		}
		return w, true
	}
	return nil, false
}
