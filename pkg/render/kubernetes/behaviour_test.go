package kubernetes

import (
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

func parse(t *testing.T, text string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(text), "test")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const base = `
project: web
services:
  image: app:1
  port: 3000
%s
nginx: {image: nginx, port: 8080}
network: {name: web-net}
`

func withServices(extra string) string { return strings.Replace(base, "%s", extra, 1) }

func render(t *testing.T, m *manifest.Manifest) (deps map[string]*appsv1.Deployment, svcs map[string]*corev1.Service, route *gatewayv1.HTTPRoute) {
	t.Helper()
	objs, err := Kubernetes(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	deps, svcs = map[string]*appsv1.Deployment{}, map[string]*corev1.Service{}
	for _, o := range objs {
		switch x := o.(type) {
		case *appsv1.Deployment:
			deps[x.Name] = x
		case *corev1.Service:
			svcs[x.Name] = x
		case *gatewayv1.HTTPRoute:
			route = x
		}
		kind := o.GetObjectKind().GroupVersionKind().Kind
		clusterScoped := kind == "ClusterRole" || kind == "ClusterRoleBinding"
		if clusterScoped && o.GetNamespace() != "" {
			t.Errorf("%s %s in namespace %q: it is cluster-scoped", kind, o.GetName(), o.GetNamespace())
		}
		if !clusterScoped && o.GetNamespace() != DefaultNamespace {
			t.Errorf("%s %s in namespace %q, want %q", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), o.GetNamespace(), DefaultNamespace)
		}
	}
	return deps, svcs, route
}

// TestEnvAsWritten: every env value reaches the container spec as the
// manifest holds it (the manifest keeps the scalar's text), plus PORT and
// MODE.
func TestEnvAsWritten(t *testing.T) {
	m := loadManifest(t, "testdata/canary")
	deps, _, _ := render(t, m)
	for name, track := range map[string]string{"shop-stable": "stable", "shop-canary": "canary"} {
		got := map[string]string{}
		for _, e := range deps[name].Spec.Template.Spec.Containers[0].Env {
			if e.ValueFrom != nil {
				t.Errorf("%s: %s comes from %v, want a literal", name, e.Name, e.ValueFrom)
			}
			got[e.Name] = e.Value
		}
		want := map[string]string{"PORT": "3000", "MODE": track}
		for k, v := range m.Services.Env {
			want[k] = v
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d env vars, want %d", name, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: env %s = %q, want %q", name, k, got[k], v)
			}
		}
	}
	if v := m.Services.Env["VERSION"]; v != "1.10" {
		t.Fatalf("the test manifest's VERSION reads %q: the manifest no longer keeps text as written", v)
	}
}

// TestWeights: the HTTPRoute sends 100-w to stable and w to canary, and
// without a canary everything to stable.
func TestWeights(t *testing.T) {
	for _, c := range []struct {
		name   string
		canary string
		want   map[string]int32
	}{
		{"no canary", "", map[string]int32{"web-stable": 100}},
		{"weight 0", "  canary: {image: app:2, weight: 0}", map[string]int32{"web-stable": 100, "web-canary": 0}},
		{"weight 25", "  canary: {image: app:2, weight: 25}", map[string]int32{"web-stable": 75, "web-canary": 25}},
		{"weight 100", "  canary: {image: app:2, weight: 100}", map[string]int32{"web-stable": 0, "web-canary": 100}},
	} {
		t.Run(c.name, func(t *testing.T) {
			deps, svcs, route := render(t, parse(t, withServices(c.canary)))
			got := map[string]int32{}
			var app *gatewayv1.HTTPRouteRule
			for i := range route.Spec.Rules {
				if r := &route.Spec.Rules[i]; r.Name != nil && *r.Name == "app" {
					app = r
				}
			}
			for _, ref := range app.BackendRefs {
				got[string(ref.Name)] = *ref.Weight
				if svcs[string(ref.Name)] == nil || deps[string(ref.Name)] == nil {
					t.Errorf("backendRef %s has no Service or Deployment of that name", ref.Name)
				}
				if *ref.Port != 3000 {
					t.Errorf("backendRef %s port %d, want 3000", ref.Name, *ref.Port)
				}
			}
			if len(got) != len(c.want) {
				t.Errorf("weights %v, want %v", got, c.want)
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("weights %v, want %v", got, c.want)
				}
			}
			if len(deps) != len(c.want) {
				t.Errorf("%d Deployments, want %d", len(deps), len(c.want))
			}
		})
	}
}

// TestRefusedPaths: the front door's refused prefixes are rules without
// backends (a Gateway answers them 500) and never reach the app.
func TestRefusedPaths(t *testing.T) {
	_, _, route := render(t, parse(t, withServices("")))
	var refused []string
	for _, r := range route.Spec.Rules {
		if len(r.BackendRefs) == 0 {
			for _, m := range r.Matches {
				refused = append(refused, *m.Path.Value)
			}
		}
	}
	for _, p := range manifest.RefusedPrefixes(manifest.DefaultDenyPaths) {
		found := false
		for _, r := range refused {
			found = found || r == strings.TrimSuffix(p, "/")
		}
		if !found {
			t.Errorf("%s is not refused by the HTTPRoute (refused: %v)", p, refused)
		}
	}
}

func TestProbesAndResources(t *testing.T) {
	for _, c := range []struct {
		resources, cpu, memory string
	}{
		{"", "", ""},
		{"  resources: {cpus: 0.25}", "250m", ""},
		{"  resources: {cpus: 2, memory: 512Mi}", "2", "512Mi"},
		{"  resources: {memory: 1g}", "", "1Gi"},
		{"  resources: {memory: 1.5g}", "", "1536Mi"},
		{"  resources: {cpus: 0.0015, memory: 100000000}", "2m", "100000000"},
	} {
		deps, _, _ := render(t, parse(t, withServices("  health_path: /up\n"+c.resources)))
		ctr := deps["web-stable"].Spec.Template.Spec.Containers[0]
		for _, p := range []*corev1.Probe{ctr.ReadinessProbe, ctr.LivenessProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/up" || p.HTTPGet.Port.StrVal != httpPort {
				t.Errorf("probe %+v, want an HTTP GET of /up on port %q", p, httpPort)
			}
		}
		for name, want := range map[corev1.ResourceName]string{corev1.ResourceCPU: c.cpu, corev1.ResourceMemory: c.memory} {
			lim, hasLim := ctr.Resources.Limits[name]
			req, hasReq := ctr.Resources.Requests[name]
			switch {
			case want == "" && (hasLim || hasReq):
				t.Errorf("%q: %s limit %v request %v, want none", c.resources, name, lim.String(), req.String())
			case want != "" && (lim.String() != want || req.String() != want):
				t.Errorf("%q: %s limit %v request %v, want %s", c.resources, name, lim.String(), req.String(), want)
			}
		}
	}
}

func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		name, manifest string
		o              Options
		argo           bool
		want           string
	}{
		{"underscore in project", strings.Replace(withServices(""), "project: web", "project: my_app", 1), Options{}, false, `project: "my_app"`},
		{"digit first", strings.Replace(withServices(""), "project: web", "project: 1web", 1), Options{}, false, `project: "1web"`},
		{"bad namespace", withServices(""), Options{Namespace: "Apps"}, false, `namespace "Apps"`},
		{"bad gateway", withServices(""), Options{Gateway: "pub lic"}, false, `gateway "pub lic"`},
		{"cpu below a millicore", withServices("  resources: {cpus: 0.0004}"), Options{}, false, "services.resources.cpus"},
		{"argo without prometheus", withServices(""), Options{}, true, "Prometheus"},
		{"argo with a bad prometheus", withServices(""), Options{PrometheusURL: "prometheus:9090"}, true, `prometheus URL "prometheus:9090"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			render := Kubernetes
			if c.argo {
				render = ArgoRollouts
			}
			_, err := render(parse(t, c.manifest), c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one naming %s", err, c.want)
			}
		})
	}
}

// TestAnalysisThresholds: the AnalysisTemplate's conditions carry the
// manifest's policy figures, and "no data" (no series, NaN) meets neither
// condition.
func TestAnalysisThresholds(t *testing.T) {
	m := loadManifest(t, "testdata/canary")
	objs, err := ArgoRollouts(m, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	var at *AnalysisTemplate
	for _, o := range objs {
		if x, ok := o.(*AnalysisTemplate); ok {
			at = x
		}
	}
	want := map[string][2]string{
		"requests":   {"result[0] >= 50", ""},
		"error-rate": {"result[0] <= 0.02", "result[0] > 0.02"},
		"p99-ms":     {"result[0] <= 250", "result[0] > 250"},
	}
	for _, mt := range at.Spec.Metrics {
		w, ok := want[mt.Name]
		if !ok {
			t.Errorf("unexpected metric %s", mt.Name)
			continue
		}
		delete(want, mt.Name)
		for _, cond := range []string{mt.SuccessCondition, mt.FailureCondition} {
			if !strings.HasPrefix(cond, "len(result) == 1 && !isNaN(result[0]) && ") {
				t.Errorf("%s: condition %q does not exclude missing data and NaN", mt.Name, cond)
			}
		}
		if !strings.HasSuffix(mt.SuccessCondition, w[0]) || w[1] != "" && !strings.HasSuffix(mt.FailureCondition, w[1]) {
			t.Errorf("%s: success %q failure %q, want ...%s / ...%s", mt.Name, mt.SuccessCondition, mt.FailureCondition, w[0], w[1])
		}
		if !strings.Contains(mt.Provider.Prometheus.Query, "[120s]") || mt.Provider.Prometheus.Address != testOptions.PrometheusURL {
			t.Errorf("%s: query %q at %s, want a 120s window at %s", mt.Name, mt.Provider.Prometheus.Query, mt.Provider.Prometheus.Address, testOptions.PrometheusURL)
		}
	}
	if len(want) > 0 {
		t.Errorf("metrics missing: %v", want)
	}
}

// TestRefusedAnyCase: the HTTPRoute's regular expression refuses exactly
// what the nginx front door refuses (manifest.IsRefusedPath), in any
// letter case, whether an implementation matches it against part of the
// path or all of it.
func TestRefusedAnyCase(t *testing.T) {
	prefixes := manifest.RefusedPrefixes([]string{"/debug/", "/internal/", "/admin"})
	re := regexp.MustCompile(RefusedPathRegex(prefixes))
	for _, p := range []string{
		"/", "/chaos", "/CHAOS", "/Chaos/x", "/chaosmonkey", "/x/chaos", "/chao",
		"/swiftdeploy", "/SwiftDeploy/config", "/swiftdeployer",
		"/debug", "/DEBUG/", "/debug/pprof", "/debugger",
		"/internal", "/Internal/x", "/internals", "/admin", "/ADMINISTRATOR", "/metrics",
	} {
		_, want := manifest.IsRefusedPath(prefixes, p)
		if got := re.MatchString(p); got != want {
			t.Errorf("%s: HTTPRoute regex refuses = %v, nginx's rule = %v", p, got, want)
		}
	}
}

// TestCanaryMatchRule: services.canary.match is a header match sending
// matching requests to the canary alone, outside the weighted split.
func TestCanaryMatchRule(t *testing.T) {
	for _, c := range []struct {
		match, name, value string
	}{
		{"{header: X-Canary, value: always}", "X-Canary", "always"},
		{"{cookie: beta, value: \"yes\"}", "Cookie", `(^|.*;\s*)beta=yes(;.*|$)`},
	} {
		_, _, route := render(t, parse(t, withServices("  canary: {image: \"app:2\", weight: 0, match: "+c.match+"}")))
		var rule *gatewayv1.HTTPRouteRule
		for i, r := range route.Spec.Rules {
			if r.Name != nil && *r.Name == MatchRule {
				rule = &route.Spec.Rules[i]
			}
		}
		if rule == nil {
			t.Fatalf("%s: no %s rule", c.match, MatchRule)
		}
		h := rule.Matches[0].Headers[0]
		if string(h.Name) != c.name || h.Value != c.value || len(rule.BackendRefs) != 1 || !strings.HasSuffix(string(rule.BackendRefs[0].Name), "-canary") {
			t.Errorf("%s: rule %+v, want header %s = %s to the canary", c.match, rule, c.name, c.value)
		}
	}
}

// TestNetworkPolicy: only pods of the project's own namespace reach the
// app's pods (its one port serves /chaos and the metrics path).
func TestNetworkPolicy(t *testing.T) {
	m := parse(t, withServices(""))
	np, err := NetworkPolicy(m, Options{Namespace: "apps"})
	if err != nil {
		t.Fatal(err)
	}
	sel := np.Spec.PodSelector.MatchLabels
	if np.Namespace != "apps" || sel[LabelProject] != m.Project || sel[LabelRole] != "app" {
		t.Errorf("policy %s/%s selects %v, want the project's app pods in apps", np.Namespace, np.Name, sel)
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 {
		t.Fatalf("ingress %+v, want one rule with one peer", np.Spec.Ingress)
	}
	peer := np.Spec.Ingress[0].From[0]
	if peer.NamespaceSelector != nil || peer.IPBlock != nil || peer.PodSelector == nil || len(peer.PodSelector.MatchLabels)+len(peer.PodSelector.MatchExpressions) != 0 {
		t.Errorf("peer %+v, want every pod of the policy's namespace and nothing else", peer)
	}
}
