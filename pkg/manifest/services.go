package manifest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
)

// Service is the spec of one service. It is the type of the seed's single
// `services:` block and of each entry of the named form.
type Service = Services

// Kinds of service (services.NAME.kind).
const (
	// KindWeb has a port and a route: nginx sends it requests.
	KindWeb = "web"
	// KindWorker has no port and is not routed; it is rolled start-first
	// and judged healthy by running.
	KindWorker = "worker"
	// KindAccessory is a database or a cache beside the app: never
	// canaried, rolled stop-first, started (and running) before the
	// services that depend on it.
	KindAccessory = "accessory"
)

// Kinds lists the kinds a service may be.
var Kinds = []string{KindWeb, KindWorker, KindAccessory}

// Route is how nginx finds a web service: requests for Host (any host when
// empty) whose path starts with PathPrefix ("/" when empty).
type Route struct {
	Host       string `json:"host,omitempty"`
	PathPrefix string `json:"path_prefix,omitempty"`
	// StripPrefix removes PathPrefix before the request reaches the
	// service (/api/users -> /users); false passes the path unchanged.
	StripPrefix bool `json:"strip_prefix,omitempty"`
}

// Prefix is the route's path prefix, "/" when none is written.
func (r *Route) Prefix() string {
	if r == nil || r.PathPrefix == "" {
		return "/"
	}
	return r.PathPrefix
}

// HostName is the route's host, "" (any) when none is written.
func (r *Route) HostName() string {
	if r == nil {
		return ""
	}
	return r.Host
}

// MaxServices bounds the named form.
const MaxServices = 20

// MaxServiceNameLen keeps container names (project-service-track-hash-n)
// and Kubernetes object names short.
const MaxServiceNameLen = 30

var serviceNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// EffectiveKind is the service's kind: written, or inferred (a port makes
// a web service, no port a worker; an accessory is always written).
func (s *Services) EffectiveKind() string {
	switch {
	case s.Kind != "":
		return s.Kind
	case s.Port > 0:
		return KindWeb
	default:
		return KindWorker
	}
}

// Primary is the service whose canary, promotion and rollback the
// controller records in its single fields (and the one a command without
// SERVICE acts on): the single service of the seed form; in the named
// form the first web service by name with a canary (each web service may
// run one; the others' are keyed by name), or else the first web service
// by name. Its name is "" in the seed form. It is nil only for a
// named form without a web service, which is invalid.
func (m *Manifest) Primary() (string, *Services) {
	if !m.IsNamed() {
		return "", &m.Services
	}
	first := ""
	for _, n := range m.ServiceNames() {
		s := m.Named[n]
		if s.EffectiveKind() != KindWeb {
			continue
		}
		if s.Canary != nil {
			return n, s
		}
		if first == "" {
			first = n
		}
	}
	if first == "" {
		return "", nil
	}
	return first, m.Named[first]
}

// Main is Primary's service (see there); an empty one when there is none,
// so that readers of its fields need no nil check.
func (m *Manifest) Main() *Services {
	if _, s := m.Primary(); s != nil {
		return s
	}
	return &Services{}
}

// IsNamed reports whether the manifest uses the named form (several
// services) rather than the seed's single `services: {image, port}`.
func (m *Manifest) IsNamed() bool { return len(m.Named) > 0 }

// ServiceNames returns the names of the named form's services in order.
func (m *Manifest) ServiceNames() []string {
	names := make([]string, 0, len(m.Named))
	for n := range m.Named {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// AllEnv returns every services env value of the manifest, both forms:
// what must be kept out of the journal and logs.
func (m *Manifest) AllEnv() []string {
	var out []string
	for _, v := range m.Services.Env {
		out = append(out, v)
	}
	for _, s := range m.Named {
		for _, v := range s.Env {
			out = append(out, v)
		}
	}
	return out
}

// MarshalJSON writes services as the seed's block, or as a mapping of
// names to services in the named form. The seed form's bytes (and so its
// Hash) are exactly what they were before the named form existed.
func (m Manifest) MarshalJSON() ([]byte, error) {
	type plain Manifest // no methods: no recursion
	if !m.IsNamed() {
		return json.Marshal(plain(m))
	}
	return json.Marshal(struct {
		plain
		Services map[string]*Services `json:"services"`
	}{plain(m), m.Named})
}

// namedForm reports whether a services node is the named form: no image
// (nor any other field of the single service) directly under it, and every
// value a mapping (a service). A seed block with image misspelt keeps the
// seed form, so its problems name the seed's fields ("did you mean
// image?"); a service may not be named like one of those fields.
func namedForm(n *yaml3.Node) bool {
	n = resolve(n)
	if n.Kind != yaml3.MappingNode || len(n.Content) == 0 {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if _, field := serviceFields[resolve(n.Content[i]).Value]; field {
			return false
		}
		if v := resolve(n.Content[i+1]); v.Kind != yaml3.MappingNode && !isNull(v) {
			return false
		}
	}
	return true
}

// serviceFields are the single service's fields that tell the seed form.
// metrics is left out: it was a valid service name before a worker could
// have metrics of its own (the single service never has), and stays one.
var serviceFields = func() map[string]int {
	f := jsonFields(reflect.TypeFor[Services]())
	delete(f, "metrics")
	return f
}()

// namedServices decodes the named form: each service onto the defaults
// of one service.
func (d *decoder) namedServices(field string, n *yaml3.Node, m *Manifest) {
	m.Services = Services{}
	m.Named = map[string]*Services{}
	d.pairs(field, resolve(n), func(name string, keyNode, val *yaml3.Node) {
		s := &Services{Replicas: 1, HealthPath: DefaultHealthPath}
		if isNull(resolve(val)) {
			d.add(join(field, name), keyNode, "is empty: a service needs at least an image")
		}
		d.value(join(field, name), val, valueOf(s))
		m.Named[name] = s
	})
}

// DefaultHealthPath is services.health_path when absent (web services).
const DefaultHealthPath = "/healthz"

// defaultNamed clears what does not apply to a service's kind: the
// default health path of a service that has no port to probe.
func defaultNamed(root *yaml3.Node, m *Manifest) []Problem {
	var ps []Problem
	for _, name := range m.ServiceNames() {
		s := m.Named[name]
		at := "services." + name
		defaultCanary(root, at, s.Canary)
		if s.EffectiveKind() != KindWeb && lookup(root, at+".health_path") == nil {
			s.HealthPath = ""
		}
		defaultServiceMetrics(root, at, s.Metrics)
		ps = append(ps, defaultHealth(root, at, s)...)
	}
	return ps
}

// namedServices validates the named form: each service for its kind, the
// routes against each other, depends_on against the services there are.
func (ps *problemList) namedServices(m *Manifest, deny []string) {
	if m.Services.Image != "" || m.Services.Port != 0 {
		ps.addf("services", "holds both the single service (image, port) and named services; use one form")
	}
	if len(m.Named) > MaxServices {
		ps.addf("services", "must hold at most %d services, got %d", MaxServices, len(m.Named))
	}
	names := m.ServiceNames()
	routes := map[string]string{} // host + prefix -> the service routed there
	webs := 0
	for _, name := range names {
		s := m.Named[name]
		at := "services." + name
		switch {
		case len(name) > MaxServiceNameLen:
			ps.addf(at, "service name must be at most %d characters, got %d", MaxServiceNameLen, len(name))
		case !serviceNameRE.MatchString(name):
			ps.addf(at, "service name must be lower-case letters, digits or '-', starting with a letter, got %q", name)
		}
		if s.Kind != "" && !slices.Contains(Kinds, s.Kind) {
			ps.addf(at+".kind", "must be one of %s, got %q", strings.Join(Kinds, ", "), s.Kind)
			continue
		}
		ps.image(at+".image", s.Image)
		ps.intRange(at+".replicas", s.Replicas, 1, MaxReplicas)
		ps.envAt(at+".env", s.Env, reservedFor(s.EffectiveKind()))
		ps.resourcesAt(at+".resources", &s.Resources)
		ps.container(at, s)
		ps.secrets(at, s)
		switch kind := s.EffectiveKind(); kind {
		case KindWeb:
			webs++
			ps.port(at+".port", s.Port)
			ps.urlPath(at+".health_path", s.HealthPath)
			for _, p := range deny {
				if _, refused := IsRefusedPath([]string{p}, s.HealthPath); refused && s.HealthPath != "" {
					ps.addf(at+".health_path", "%q is refused by the front door: it lies under %s; pick another path or remove it from nginx.deny_paths", s.HealthPath, strings.TrimSuffix(p, "/"))
				}
			}
			key := ps.route(at+".route", s.Route, deny)
			if other, dup := routes[key]; dup {
				ps.addf(at+".route", "routes the same host and path prefix as services.%s.route (%s); give one a host or a path_prefix of its own", other, routeString(s.Route))
			}
			routes[key] = name
		default:
			if s.Port != 0 && kind == KindWorker {
				ps.addf(at+".port", "a worker has no port (it is not routed); remove port or write kind: web")
			}
			if s.Port != 0 && kind == KindAccessory {
				ps.intRange(at+".port", s.Port, 1, 65535)
			}
			if s.Route != nil {
				ps.addf(at+".route", "only a web service is routed, this one is a %s", kind)
			}
			if s.HealthPath != "" {
				ps.addf(at+".health_path", "only a web service is probed over HTTP; a %s is judged healthy by running", kind)
			}
		}
		ps.serviceMetrics(at, s)
		if s.Canary != nil {
			switch s.EffectiveKind() {
			case KindAccessory:
				ps.addf(at+".canary", "an accessory is never canaried: it is replaced stop-first")
			case KindWorker:
				// A worker has no route to split and no figures of its own
				// yet to judge a canary on.
				ps.addf(at+".canary", "a worker is not canaried (it has no route to split); deploy the new image")
			default:
				ps.canaryAt(at, s.Canary, s.Image)
				ps.stepsAt(at+".canary", s.Canary, m.Metrics.ScrapeInterval.D())
			}
		}
		for i, dep := range s.DependsOn {
			f := fmt.Sprintf("%s.depends_on[%d]", at, i)
			switch o, ok := m.Named[dep]; {
			case dep == name:
				ps.addf(f, "a service cannot depend on itself")
			case !ok:
				ps.addf(f, "names no service of this manifest: %q", dep)
			case o.EffectiveKind() != KindAccessory:
				ps.addf(f, "must name an accessory (a service started before and kept running), %q is a %s", dep, o.EffectiveKind())
			case slices.Index(s.DependsOn, dep) < i:
				ps.addf(f, "names %q twice", dep)
			}
		}
	}
	if webs == 0 && len(m.Named) > 0 {
		ps.addf("services", "needs at least one web service (one with a port): nginx has nothing to route to")
	}
	if cycle := dependencyCycle(m); cycle != nil {
		ps.addf("services."+cycle[0]+".depends_on", "dependency cycle: %s", strings.Join(cycle, " -> "))
	}
}

var routeHostRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// route checks a web service's route and returns its key (host and prefix).
func (ps *problemList) route(at string, r *Route, deny []string) string {
	if r == nil {
		return " /"
	}
	if r.Host != "" && (len(r.Host) > 253 || !routeHostRE.MatchString(r.Host)) {
		ps.addf(at+".host", "must be a lower-case DNS name such as api.example.com, got %q", r.Host)
	}
	if r.PathPrefix != "" {
		before := len(*ps)
		ps.urlPath(at+".path_prefix", r.PathPrefix)
		switch {
		case len(*ps) > before:
		case r.PathPrefix != "/" && strings.HasSuffix(r.PathPrefix, "/"):
			ps.addf(at+".path_prefix", "must not end in '/' (%q routes %s and everything under it), got %q", strings.TrimSuffix(r.PathPrefix, "/"), strings.TrimSuffix(r.PathPrefix, "/"), r.PathPrefix)
		case strings.ContainsAny(r.PathPrefix, "?*~^$()[]|+"):
			ps.addf(at+".path_prefix", "must be a plain path, got %q", r.PathPrefix)
		default:
			if p, refused := IsRefusedPath(deny, r.PathPrefix); refused {
				ps.addf(at+".path_prefix", "%q is refused by the front door: it lies under %s", r.PathPrefix, p)
			}
		}
	}
	if r.StripPrefix && r.Prefix() == "/" {
		ps.addf(at+".strip_prefix", "needs a path_prefix other than /: there is nothing to strip")
	}
	return r.Host + " " + r.Prefix()
}

func routeString(r *Route) string {
	h := r.HostName()
	if h == "" {
		h = "any host"
	}
	return h + " " + r.Prefix()
}

// reservedFor is the environment SwiftDeploy sets on a service of kind.
func reservedFor(kind string) map[string]string {
	switch kind {
	case KindWeb:
		return reservedEnv
	case KindWorker:
		return map[string]string{"MODE": reservedEnv["MODE"]}
	}
	return nil // an accessory's image is someone else's: nothing is set
}

// dependencyCycle returns a depends_on cycle (first name repeated last),
// or nil.
func dependencyCycle(m *Manifest) []string {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var stack []string
	var found []string
	var visit func(n string) bool
	visit = func(n string) bool {
		switch state[n] {
		case visiting:
			i := slices.Index(stack, n)
			found = append(append([]string(nil), stack[i:]...), n)
			return true
		case done:
			return false
		}
		state[n] = visiting
		stack = append(stack, n)
		if s := m.Named[n]; s != nil {
			for _, dep := range s.DependsOn {
				// Depending on itself is reported on its own.
				if _, ok := m.Named[dep]; ok && dep != n && visit(dep) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return false
	}
	for _, n := range m.ServiceNames() {
		if visit(n) {
			return found
		}
	}
	return nil
}

// StartOrder returns the named services in the order they start: every
// service after the accessories it depends on, names in order otherwise.
// A valid manifest has no cycle.
func (m *Manifest) StartOrder() []string {
	var out []string
	seen := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		if s := m.Named[n]; s != nil {
			for _, dep := range s.DependsOn {
				visit(dep)
			}
		}
		out = append(out, n)
	}
	for _, n := range m.ServiceNames() {
		visit(n)
	}
	return out
}
