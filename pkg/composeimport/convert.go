package composeimport

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// Options tune Convert.
type Options struct {
	// Service is the compose service the manifest's one service is made
	// from; "" picks the one that publishes a port (else exposes one).
	Service string
}

// Convert maps p onto a manifest. Each attribute of each service goes
// through serviceFields (fields.go); whatever no entry expressed, at any
// depth, is listed by its path, as is every top-level section the
// manifest has no place for. A compose file of several services becomes
// the named form (named.go) unless o.Service picks one, which becomes
// the single service (the others are then listed whole).
func Convert(p *types.Project, o Options) (*Result, error) {
	if len(p.Services) == 0 {
		return nil, errors.New("the compose file has no services")
	}
	model, err := modelOf(p)
	if err != nil {
		return nil, err
	}
	project := manifest.SanitizeProject(p.Name)
	r := &Result{Manifest: Manifest{
		Project: project,
		Nginx:   Nginx{Image: DefaultNginxImage, Port: DefaultNginxPort},
		Network: Network{Name: project + "-net"},
	}}
	services, _ := model["services"].(map[string]any)
	// The top-level volumes and secrets the imported services express.
	used := map[string]map[string]bool{"volumes": {}, "secrets": {}}
	if len(p.Services) > 1 && o.Service == "" {
		if err := convertNamed(p, services, used, r); err != nil {
			return nil, err
		}
	} else if err := convertOne(p, services, o.Service, used, r); err != nil {
		return nil, err
	}
	for _, key := range slices.Sorted(maps.Keys(model)) {
		switch key {
		case "name", "services":
			continue
		}
		r.NotExpressed = append(r.NotExpressed, topLevel(key, model[key], used[key])...)
	}
	sort.SliceStable(r.NotExpressed, func(i, j int) bool { return r.NotExpressed[i].Path < r.NotExpressed[j].Path })
	return r, nil
}

// convertOne makes the single service of the one compose service picked.
func convertOne(p *types.Project, services map[string]any, pick string, used map[string]map[string]bool, r *Result) error {
	primary, err := pickService(p, pick)
	if err != nil {
		return err
	}
	r.Service = primary
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		c := newConv(p, name)
		if name == primary {
			c.out, c.nginx = &r.Manifest.Services, &r.Manifest.Nginx
			c.volumes, c.secrets = used["volumes"], used["secrets"]
		} else {
			c.notef(c.at, "image %q: not imported (--service %s imports that one service; without --service every service is)", c.svc.Image, primary)
		}
		c.run(services[name])
		if name == primary && c.out.Port == 0 {
			return fmt.Errorf("services.%s: no port: SwiftDeploy routes HTTP to one port of the service (ports or expose)", name)
		}
		r.NotExpressed = append(r.NotExpressed, c.notes...)
	}
	return nil
}

// newConv starts the conversion of one service, into throwaway outputs
// until the caller points them at the manifest.
func newConv(p *types.Project, name string) *conv {
	svc := p.Services[name]
	return &conv{project: p.Name, name: name, at: "services." + name, svc: &svc, consumed: map[string]bool{},
		out: &Service{}, nginx: &Nginx{}, projectSecrets: p.Secrets, volumes: map[string]bool{}, secrets: map[string]bool{}}
}

// run maps every attribute of the service (model is its compose model)
// through the table, then lists what is left.
func (c *conv) run(model any) {
	attrs, _ := model.(map[string]any)
	for _, f := range serviceFields {
		if _, ok := attrs[f.key]; ok {
			f.set(c)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(attrs)) {
		c.leftovers(attrs[key], c.at+"."+key)
	}
}

// modelOf is p as compose writes it back (`docker compose config`):
// nested maps and lists, keyed as in a compose file, for the walk that
// finds what was not expressed.
func modelOf(p *types.Project) (map[string]any, error) {
	b, err := p.MarshalYAML()
	if err != nil {
		return nil, fmt.Errorf("read the compose model back: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read the compose model back: %w", err)
	}
	return m, nil
}

// pickService is the service named, else the one publishing a port (the
// first by name if several do; they are all listed), else the one
// exposing one, else the only one.
func pickService(p *types.Project, name string) (string, error) {
	names := slices.Sorted(maps.Keys(p.Services))
	if name != "" {
		if _, ok := p.Services[name]; !ok {
			return "", fmt.Errorf("--service: the compose file has no service %q; it has %s", name, strings.Join(names, ", "))
		}
		return name, nil
	}
	for _, has := range []func(types.ServiceConfig) bool{
		func(s types.ServiceConfig) bool { return len(s.Ports) > 0 },
		func(s types.ServiceConfig) bool { return len(s.Expose) > 0 },
	} {
		for _, n := range names {
			if has(p.Services[n]) {
				return n, nil
			}
		}
	}
	if len(names) == 1 {
		return names[0], nil
	}
	return "", fmt.Errorf("no service publishes or exposes a port: name the one to import with --service (one of %s)", strings.Join(names, ", "))
}

// conv is the conversion of one compose service.
type conv struct {
	project string // the compose project's name
	name    string
	at      string // "services.<name>"
	svc     *types.ServiceConfig
	out     *Service
	nginx   *Nginx
	// consumed are the paths expressed or already listed with a precise
	// note; the walk lists what is left.
	consumed map[string]bool
	notes    []Note
	// projectSecrets are the compose file's top-level secrets; volumes
	// and secrets collect the top-level ones the service expresses.
	projectSecrets   types.Secrets
	volumes, secrets map[string]bool
	// kinds are the named form's services' kinds; nil for the single
	// service.
	kinds map[string]string
}

// done marks path as expressed in the manifest.
func (c *conv) done(path string) { c.consumed[path] = true }

// notef lists path as not expressed, saying precisely what it is.
func (c *conv) notef(path, format string, args ...any) {
	c.consumed[path] = true
	c.notes = append(c.notes, Note{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// leftovers lists what is under path and was neither expressed nor noted,
// as high up as possible: a subtree none of whose paths was consumed is
// one note.
func (c *conv) leftovers(v any, path string) {
	if c.consumed[path] {
		return
	}
	if !c.consumedUnder(path) {
		if m, ok := v.(map[string]any); (ok && len(m) == 0 || v == nil) && c.consumedUnder(parentOf(path)) {
			return // compose's empty "volume: {}" beside what was expressed
		}
		c.notes = append(c.notes, Note{Path: path, Msg: genericMsg(path, v)})
		return
	}
	switch t := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(t)) {
			c.leftovers(t[k], path+"."+k)
		}
	case []any:
		for i, e := range t {
			c.leftovers(e, fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

func (c *conv) consumedUnder(path string) bool {
	for p := range c.consumed {
		if strings.HasPrefix(p, path+".") || strings.HasPrefix(p, path+"[") {
			return true
		}
	}
	return false
}

// genericMsg describes an attribute no entry of the table knows.
func genericMsg(path string, v any) string {
	last := path[strings.LastIndexAny(path, ".]")+1:]
	if strings.HasPrefix(last, "x-") {
		return "an extension, not carried over"
	}
	return summary(v) + " (no such setting in the manifest)"
}

// summary is a short rendering of a value for a note. Values of maps are
// left out: they may hold secrets (build args, labels with tokens).
func summary(v any) string {
	switch t := v.(type) {
	case map[string]any:
		return "{" + strings.Join(slices.Sorted(maps.Keys(t)), ", ") + "}"
	case []any:
		parts := make([]string, 0, len(t))
		for _, e := range t {
			parts = append(parts, summary(e))
		}
		return cut("[" + strings.Join(parts, ", ") + "]")
	case string:
		return cut(strconv.Quote(t))
	case nil:
		return "null"
	}
	b, _ := json.Marshal(v)
	return cut(string(b))
}

func cut(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// topLevel lists a top-level section of the compose file, one note per
// item where it is a map of named items. An item the imported service
// expresses (used) is left out when it says nothing more: a volume with a
// driver or external is listed.
func topLevel(key string, v any, used map[string]bool) []Note {
	what := map[string]string{
		"volumes":  "a named volume the imported service does not use",
		"networks": "a network (SwiftDeploy puts the stack on one network of its own, network.name)",
		"secrets":  "a secret the imported service does not use as a file",
		"configs":  "a config (no such thing in the manifest)",
		"models":   "a model (no such thing in the manifest)",
	}[key]
	items, isMap := v.(map[string]any)
	if strings.HasPrefix(key, "x-") {
		return []Note{{Path: key, Msg: "an extension, not carried over"}}
	}
	if what == "" || !isMap {
		return []Note{{Path: key, Msg: summary(v) + " (no such setting in the manifest)"}}
	}
	var out []Note
	for _, name := range slices.Sorted(maps.Keys(items)) {
		item, _ := items[name].(map[string]any)
		msg := what
		switch {
		case used[name] && key == "volumes" && len(item) == 0:
			continue
		case used[name] && key == "volumes":
			msg = summary(item) + " (the manifest's named volumes are the project's own, on the default driver)"
		case used[name] && key == "secrets":
			continue
		}
		out = append(out, Note{Path: key + "." + name, Msg: msg})
	}
	return out
}

func parentOf(path string) string {
	if i := strings.LastIndexAny(path, ".["); i > 0 {
		return path[:i]
	}
	return ""
}
