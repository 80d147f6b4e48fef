package kubernetes

import (
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// namedRender renders the named golden case and sorts its objects by kind.
type namedObjs struct {
	workloads map[string]corev1.PodTemplateSpec // Deployments and StatefulSets, by name
	selectors map[string]map[string]string      // their selectors
	deps      map[string]*appsv1.Deployment
	sts       map[string]*appsv1.StatefulSet
	svcs      map[string]*corev1.Service
	routes    map[string]*gatewayv1.HTTPRoute
	claims    []string
}

func renderNamed(t *testing.T, text string) namedObjs {
	t.Helper()
	m := parse(t, text)
	objs, err := Kubernetes(m, Options{NamedForm: true})
	if err != nil {
		t.Fatal(err)
	}
	n := namedObjs{workloads: map[string]corev1.PodTemplateSpec{}, selectors: map[string]map[string]string{},
		deps: map[string]*appsv1.Deployment{}, sts: map[string]*appsv1.StatefulSet{}, svcs: map[string]*corev1.Service{}, routes: map[string]*gatewayv1.HTTPRoute{}}
	for _, o := range objs {
		switch x := o.(type) {
		case *appsv1.Deployment:
			n.deps[x.Name], n.workloads[x.Name], n.selectors[x.Name] = x, x.Spec.Template, x.Spec.Selector.MatchLabels
		case *appsv1.StatefulSet:
			n.sts[x.Name], n.workloads[x.Name], n.selectors[x.Name] = x, x.Spec.Template, x.Spec.Selector.MatchLabels
		case *corev1.Service:
			n.svcs[x.Name] = x
		case *gatewayv1.HTTPRoute:
			n.routes[x.Name] = x
		case *corev1.PersistentVolumeClaim:
			n.claims = append(n.claims, x.Name)
		}
	}
	return n
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

const namedManifest = `
project: shop
services:
  web:
    image: web:1
    port: 3000
    route: {host: shop.example.com}
    canary: {image: web:2, weight: 25}
  api:
    image: api:1
    port: 8000
    route: {path_prefix: /api, strip_prefix: true}
  admin:
    image: admin:1
    port: 9000
    route: {host: shop.example.com, path_prefix: /api}
  worker:
    image: worker:1
    env_file: ./worker.env
    volumes: [scratch:/scratch]
  db:
    kind: accessory
    image: pg:16
    port: 5432
    volumes: [pgdata:/var/lib/postgresql/data]
  cache:
    kind: accessory
    image: redis:7
nginx: {image: nginx, port: 8080}
network: {name: shop-net}
`

// TestNamedNames: each service's objects by name and kind: Deployments
// PROJECT-SERVICE (and -canary), accessories as StatefulSets, Services
// named after the services (web and accessories; none for a worker),
// an HTTPRoute per host, claims only for the non-accessory volumes.
func TestNamedNames(t *testing.T) {
	n := renderNamed(t, namedManifest)
	for _, c := range []struct {
		what string
		got  []string
		want string
	}{
		{"Deployments", keys(n.deps), "shop-admin shop-api shop-web shop-web-canary shop-worker"},
		{"StatefulSets", keys(n.sts), "shop-cache shop-db"},
		{"Services", keys(n.svcs), "admin api cache db shop-web-canary web"},
		{"HTTPRoutes", keys(n.routes), "shop shop-shop.example.com"},
		{"claims", n.claims, "shop-scratch"},
	} {
		if got := strings.Join(c.got, " "); got != c.want {
			t.Errorf("%s: %s, want %s", c.what, got, c.want)
		}
	}
	for _, name := range []string{"db", "cache"} {
		if s := n.svcs[name]; s.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service %s: clusterIP %q, want headless (the StatefulSet's governing Service)", name, s.Spec.ClusterIP)
		}
		if sts := n.sts["shop-"+name]; sts.Spec.ServiceName != name {
			t.Errorf("StatefulSet shop-%s: serviceName %q, want %q", name, sts.Spec.ServiceName, name)
		}
	}
	if env := n.deps["shop-worker"].Spec.Template.Spec.Containers[0].EnvFrom; len(env) != 1 || env[0].SecretRef.Name != "shop-worker-env" {
		t.Errorf("worker's envFrom %+v, want the Secret shop-worker-env (its own env files)", env)
	}
}

// TestNamedSelectors: every workload's selector selects its own pods, and
// every Service selects the pods of its service (and track) alone, never
// another service's.
func TestNamedSelectors(t *testing.T) {
	n := renderNamed(t, namedManifest)
	for name, sel := range n.selectors {
		for other, tmpl := range n.workloads {
			if got, want := labels.SelectorFromSet(sel).Matches(labels.Set(tmpl.Labels)), name == other; got != want {
				t.Errorf("workload %s's selector matches %s's pods: %v, want %v", name, other, got, want)
			}
		}
	}
	// The workload whose pods each Service must select, and only those.
	want := map[string]string{"web": "shop-web", "shop-web-canary": "shop-web-canary", "api": "shop-api", "admin": "shop-admin", "db": "shop-db", "cache": "shop-cache"}
	for name, svc := range n.svcs {
		for w, tmpl := range n.workloads {
			if got := labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(tmpl.Labels)); got != (want[name] == w) {
				t.Errorf("Service %s selects %s's pods: %v, want %v", name, w, got, !got)
			}
		}
	}
}

// TestNamedProbes: web services are probed over HTTP, an accessory with a
// port by a TCP connection with the same timings, a worker and an
// accessory without a port not at all (running is healthy, as on Docker).
func TestNamedProbes(t *testing.T) {
	n := renderNamed(t, namedManifest)
	for name, want := range map[string]string{"shop-web": "http", "shop-api": "http", "shop-db": "tcp", "shop-cache": "", "shop-worker": ""} {
		c := n.workloads[name].Spec.Containers[0]
		got := ""
		switch p := c.ReadinessProbe; {
		case p == nil:
		case p.HTTPGet != nil:
			got = "http"
		case p.TCPSocket != nil:
			got = "tcp"
			if p.TCPSocket.Port.StrVal != "tcp" || len(c.Ports) != 1 || c.Ports[0].Name != "tcp" || c.Ports[0].ContainerPort != 5432 {
				t.Errorf("%s: probe on %v, ports %+v, want port tcp, 5432", name, p.TCPSocket.Port, c.Ports)
			}
			if p.PeriodSeconds != 2 || p.TimeoutSeconds != 2 || p.FailureThreshold != 3 {
				t.Errorf("%s: readiness %+v, want the default timings (2 s, 2 s, 3)", name, p)
			}
		}
		if got != want || (c.LivenessProbe == nil) != (want == "") {
			t.Errorf("%s: readiness probe %q (liveness %v), want %q", name, got, c.LivenessProbe != nil, want)
		}
		if want == "" && len(c.Ports) > 0 {
			t.Errorf("%s: ports %+v, want none", name, c.Ports)
		}
	}
}

// TestNamedStatefulSetClaims: an accessory's named volume is a claim
// template (ReadWriteOnce, 1Gi without a size), mounted by its name, and
// no PersistentVolumeClaim object.
func TestNamedStatefulSetClaims(t *testing.T) {
	n := renderNamed(t, namedManifest)
	sts := n.sts["shop-db"]
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("claim templates %+v, want pgdata", sts.Spec.VolumeClaimTemplates)
	}
	c := sts.Spec.VolumeClaimTemplates[0]
	if q := c.Spec.Resources.Requests[corev1.ResourceStorage]; c.Name != "pgdata" || q.String() != "1Gi" || len(c.Spec.AccessModes) != 1 || c.Spec.AccessModes[0] != corev1.ReadWriteOnce {
		t.Errorf("claim template %s %v %v, want pgdata, 1Gi, ReadWriteOnce", c.Name, q.String(), c.Spec.AccessModes)
	}
	if m := sts.Spec.Template.Spec.Containers[0].VolumeMounts; len(m) != 1 || m[0].Name != "pgdata" || m[0].MountPath != "/var/lib/postgresql/data" {
		t.Errorf("mounts %+v, want pgdata at /var/lib/postgresql/data", m)
	}
	if len(sts.Spec.Template.Spec.Volumes) != 0 {
		t.Errorf("pod volumes %+v, want none (the templates are mounted by name)", sts.Spec.Template.Spec.Volumes)
	}
	if sts.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		t.Errorf("update strategy %q", sts.Spec.UpdateStrategy.Type)
	}
}

func ruleNames(r *gatewayv1.HTTPRoute) string {
	var out []string
	for _, rule := range r.Spec.Rules {
		out = append(out, string(*rule.Name))
	}
	return strings.Join(out, " ")
}

// TestNamedRoutes: an HTTPRoute per host; the host's route also holds the
// rules without a host whose prefix it does not route itself (as nginx's
// server for the host); the refused rules on every route; strip_prefix as
// a URLRewrite replacing the prefix; the canary's weights on its rule.
func TestNamedRoutes(t *testing.T) {
	n := renderNamed(t, namedManifest)
	anyHost, host := n.routes["shop"], n.routes["shop-shop.example.com"]
	if len(anyHost.Spec.Hostnames) != 0 || len(host.Spec.Hostnames) != 1 || host.Spec.Hostnames[0] != "shop.example.com" {
		t.Errorf("hostnames %v and %v, want none and shop.example.com", anyHost.Spec.Hostnames, host.Spec.Hostnames)
	}
	// admin routes /api on the host itself: api's /api is not copied there.
	if got, want := ruleNames(anyHost), "refused refused-any-case app-api"; got != want {
		t.Errorf("route shop: rules %s, want %s", got, want)
	}
	if got, want := ruleNames(host), "refused refused-any-case app-admin app-web"; got != want {
		t.Errorf("route shop-shop.example.com: rules %s, want %s", got, want)
	}
	for _, rule := range anyHost.Spec.Rules {
		if *rule.Name != "app-api" {
			continue
		}
		if len(rule.Filters) != 1 || rule.Filters[0].URLRewrite == nil || *rule.Filters[0].URLRewrite.Path.ReplacePrefixMatch != "/" || *rule.Matches[0].Path.Value != "/api" {
			t.Errorf("api's rule %+v, want /api with a URLRewrite replacing it by /", rule)
		}
	}
	for _, rule := range host.Spec.Rules {
		switch *rule.Name {
		case "app-web":
			b := rule.BackendRefs
			if len(b) != 2 || b[0].Name != "web" || *b[0].Weight != 75 || b[1].Name != "shop-web-canary" || *b[1].Weight != 25 {
				t.Errorf("web's backends %+v, want web 75, shop-web-canary 25", b)
			}
			if len(rule.Filters) != 0 {
				t.Errorf("web's rule has filters %+v, want none (no strip_prefix)", rule.Filters)
			}
		case "app-admin":
			if len(rule.Filters) != 0 || rule.BackendRefs[0].Name != "admin" {
				t.Errorf("admin's rule %+v, want backend admin, the path unchanged", rule)
			}
		}
	}
}

// TestNamedCopiedRoute: a route without a host reaches a host's route
// when that host does not route its prefix.
func TestNamedCopiedRoute(t *testing.T) {
	n := renderNamed(t, `
project: shop
services:
  web: {image: web:1, port: 3000, route: {host: shop.example.com}}
  api: {image: api:1, port: 8000, route: {path_prefix: /api}}
nginx: {image: nginx, port: 8080}
network: {name: shop-net}
`)
	if got, want := ruleNames(n.routes["shop-shop.example.com"]), "refused refused-any-case app-api app-web"; got != want {
		t.Errorf("host route rules %s, want %s", got, want)
	}
}

// TestNamedRefusals: what the named form cannot become on Kubernetes is
// refused, naming the manifest field.
func TestNamedRefusals(t *testing.T) {
	for _, c := range []struct{ name, services, want string }{
		{"service name ends in -", `
  web: {image: web:1, port: 3000}
  db-: {image: pg:16, kind: accessory}`, "services.db-: "},
		{"accessory's volume shared", `
  web: {image: web:1, port: 3000, volumes: [data:/data]}
  db: {image: pg:16, kind: accessory, volumes: [data:/var/lib/data]}`, "services.web.volumes[0].source: volume \"data\" is accessory db's"},
		{"names meet", `
  web: {image: web:1, port: 3000, canary: {image: web:2}}
  web-canary: {image: wc:1, port: 3001, route: {path_prefix: /wc}}`, "two services render the Deployment shop-web-canary"},
		{"bind mount", `
  web: {image: web:1, port: 3000}
  worker: {image: w:1, volumes: ["./data:/data"]}`, "services.worker.volumes[0]: a bind mount"},
		{"user by name", `
  web: {image: web:1, port: 3000}
  db: {image: pg:16, kind: accessory, user: postgres}`, "services.db.user: Kubernetes takes a numeric user"},
		{"too long", `
  web: {image: web:1, port: 3000}
  a-very-long-accessory-name-xx: {image: pg:16, kind: accessory}`, "services.a-very-long-accessory-name-xx: project and service name together are too long"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := parse(t, "project: shop-with-a-long-project-name\nservices:"+c.services+"\nnginx: {image: nginx, port: 8080}\nnetwork: {name: n}\n")
			if c.name != "too long" {
				m.Project = "shop"
			}
			_, err := Kubernetes(m, Options{NamedForm: true})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want one containing %q", err, c.want)
			}
		})
	}
}

// The named form's Role grants statefulsets and persistentvolumeclaims
// with no accessory and no volume left: the daemon still observes them,
// to delete what a removed accessory left and, on down --volumes, the
// claims of a removed volume. The single service's Role does not.
func TestNamedRoleKeepsStatefulSetsAndClaims(t *testing.T) {
	grants := func(text string, named bool) map[string]bool {
		t.Helper()
		objs, err := Kubernetes(parse(t, text), Options{NamedForm: named})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, o := range objs {
			if r, ok := o.(*rbacv1.Role); ok {
				for _, rule := range r.Rules {
					for _, res := range rule.Resources {
						out[res] = out[res] || len(rule.ResourceNames) == 0 && strings.Contains(strings.Join(rule.Verbs, ","), "delete")
					}
				}
			}
		}
		return out
	}
	named := grants("project: shop\nservices:\n  web:\n    image: web:1\n    port: 3000\n  worker:\n    image: worker:1\nnginx: {image: nginx:1, port: 8080}\nnetwork: {name: shop}\n", true)
	for _, res := range []string{"statefulsets", "persistentvolumeclaims"} {
		if !named[res] {
			t.Errorf("the named form without accessories or volumes: the Role does not grant %s (list, watch, delete)", res)
		}
	}
	single := grants("project: shop\nservices:\n  image: web:1\n  port: 3000\nnginx: {image: nginx:1, port: 8080}\nnetwork: {name: shop}\n", false)
	if single["statefulsets"] || single["persistentvolumeclaims"] {
		t.Errorf("the single service without volumes: the Role grants %v", single)
	}
}
