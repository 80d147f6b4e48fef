package composeimport

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

var serviceName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// convertNamed makes the named form: every compose service a service of
// the manifest, its kind told from how the file uses it.
//   - accessory: a database or cache image (accessoryImages), or a
//     service another depends_on that publishes no host port;
//   - web: it publishes a port (or, when none does, exposes one). The front door's (no route: every host and
//     path; its published port is nginx.port) is one no other service
//     depends on, the first by name; the others are routed at /NAME, the
//     prefix stripped, since nginx publishes one port for all;
//   - worker: neither.
func convertNamed(p *types.Project, services map[string]any, used map[string]map[string]bool, r *Result) error {
	dependedOn := map[string]bool{}
	for _, s := range p.Services {
		for dep := range s.DependsOn {
			dependedOn[dep] = true
		}
	}
	published := func(s types.ServiceConfig) bool {
		return slices.ContainsFunc(s.Ports, func(p types.ServicePortConfig) bool { return p.Published != "" })
	}
	kinds := map[string]string{}
	var webs, exposing []string
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		switch {
		case accessoryImage(s.Image) || dependedOn[name] && !published(s):
			kinds[name] = manifest.KindAccessory
		case len(s.Ports) > 0:
			kinds[name] = manifest.KindWeb
			webs = append(webs, name)
		default:
			kinds[name] = manifest.KindWorker
			if len(s.Expose) > 0 {
				exposing = append(exposing, name)
			}
		}
	}
	if len(webs) == 0 {
		// No port published: the services that expose one are the web
		// services (compose files behind a proxy of their own).
		webs = exposing
		for _, w := range webs {
			kinds[w] = manifest.KindWeb
		}
	}
	if len(webs) == 0 {
		return fmt.Errorf("no service publishes or exposes a port: nginx would have nothing to route to (a database or cache image is an accessory); name the one to import alone with --service")
	}
	front := webs[0]
	for _, w := range webs {
		if !dependedOn[w] {
			front = w
			break
		}
	}
	r.Service = front
	r.Manifest.Named = map[string]*Service{}
	var convs []*conv
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		c := newConv(p, name)
		if name == front {
			c.nginx = &r.Manifest.Nginx
		}
		c.volumes, c.secrets = used["volumes"], used["secrets"]
		c.kinds = kinds
		c.run(services[name])
		convs = append(convs, c)
		if len(name) > manifest.MaxServiceNameLen || !serviceName.MatchString(name) {
			c.notes = []Note{{Path: c.at, Msg: fmt.Sprintf("image %q: not imported: the manifest's service names are lower-case letters, digits and '-', starting with a letter, at most %d characters (rename it, and what refers to it)", c.svc.Image, manifest.MaxServiceNameLen)}}
			r.NotExpressed = append(r.NotExpressed, c.notes...)
			continue
		}
		r.Manifest.Named[name] = c.out
	}
	for _, c := range convs {
		if _, ok := r.Manifest.Named[c.name]; !ok {
			continue
		}
		c.settle(kinds[c.name], c.name == front, r.Manifest.Named)
		r.NotExpressed = append(r.NotExpressed, c.notes...)
	}
	return nil
}

// settle fits a converted service to its kind: what the kind cannot hold
// is listed.
func (c *conv) settle(kind string, front bool, named map[string]*Service) {
	out := c.out
	switch kind {
	case manifest.KindAccessory:
		out.Kind = kind
		for i, p := range c.svc.Ports {
			if p.Published != "" {
				c.note(fmt.Sprintf("%s.ports[%d]", c.at, i), "%s published (nginx is the only container publishing a port; others reach %s at %s:%d)", portString(p), c.name, c.name, p.Target)
			}
		}
		c.dropHealthPath(kind)
	case manifest.KindWorker:
		if out.Port != 0 {
			c.note(c.at+".expose", "port %d (a worker is not routed; other services still reach it at %s:%d)", out.Port, c.name, out.Port)
			out.Port = 0
		}
		c.dropHealthPath(kind)
	case manifest.KindWeb:
		if !front {
			out.Route = &Route{PathPrefix: "/" + c.name, StripPrefix: true}
			for i, p := range c.svc.Ports {
				if p.Published != "" && int(p.Target) == out.Port {
					c.note(fmt.Sprintf("%s.ports[%d]", c.at, i), "%s (nginx publishes one port: %s is routed at /%s on it, the prefix stripped)", portString(p), c.name, c.name)
				}
			}
		}
	}
	var deps []string
	for dep, d := range c.svc.DependsOn {
		at := c.at + ".depends_on." + dep
		switch {
		case named[dep] == nil:
			c.note(at, "%s is not imported", dep)
		case c.kinds[dep] != manifest.KindAccessory:
			c.note(at, "%s is a %s (depends_on names accessories only: services started first and kept running)", dep, c.kinds[dep])
		case d.Condition == types.ServiceConditionCompletedSuccessfully:
			c.note(at, "%s (an accessory runs; it does not complete)", d.Condition)
		default:
			deps = append(deps, dep)
		}
	}
	sort.Strings(deps)
	out.DependsOn = deps
}

// note is notef on a path the walk already passed (settle runs after it):
// the path's earlier note, if any, is replaced.
func (c *conv) note(path, format string, args ...any) {
	c.notes = slices.DeleteFunc(c.notes, func(n Note) bool { return n.Path == path })
	c.notef(path, format, args...)
}

// dropHealthPath: a worker or an accessory is not probed over HTTP nor by
// a command; its health check's test is listed saying how it is judged.
func (c *conv) dropHealthPath(kind string) {
	h := c.svc.HealthCheck
	if h == nil || len(h.Test) == 0 || h.Test[0] == "NONE" {
		return
	}
	how := "running"
	if kind == manifest.KindAccessory && c.out.Port != 0 {
		how = fmt.Sprintf("running and accepting connections on port %d", c.out.Port)
	}
	article := "a"
	if kind == manifest.KindAccessory {
		article = "an"
	}
	c.note(c.at+".healthcheck.test", "%s (%s %s is judged healthy by %s)", summaryList(h.Test), article, kind, how)
	c.out.HealthPath = ""
	if c.out.Health != nil {
		c.out.Health.Path = ""
	}
}

// accessoryImages are images of databases and caches: always accessories
// (started first, replaced stop-first, never routed).
var accessoryImages = []string{"postgres", "postgis", "mysql", "mariadb", "mongo", "redis", "valkey", "memcached",
	"rabbitmq", "elasticsearch", "opensearch", "cassandra", "couchdb", "nats", "zookeeper", "kafka", "etcd", "clickhouse"}

// accessoryImage: the image's repository (its last path element, before
// any tag) is one of accessoryImages ("postgres:16", "bitnami/redis").
func accessoryImage(ref string) bool {
	name := ref
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	return slices.Contains(accessoryImages, name)
}
