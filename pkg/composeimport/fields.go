package composeimport

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// serviceFields is the mapping: for each attribute of a compose service
// (its key in the file), what sets the manifest's fields from compose-go's
// typed value. An entry marks what it expressed (done) and says precisely
// what it could not (notef); anything under the key it did neither is
// listed by the walk (convert.go), as is every key not in the table.
// Adding a manifest field is one entry: a notYet becomes a mapping.
// Entries run in this order (ports before expose: a published port is the
// service's port).
var serviceFields = []field{
	{"image", image},
	{"build", build},
	{"ports", ports},
	{"expose", expose},
	{"environment", environment},
	{"healthcheck", healthcheck},
	{"deploy", deploy},
	{"scale", scale},
	{"cpus", cpus},
	{"mem_limit", memLimit},
	{"restart", restart},

	{"command", func(c *conv) { c.out.Command = c.svc.Command; c.done(c.at + ".command") }},
	{"entrypoint", func(c *conv) { c.out.Entrypoint = c.svc.Entrypoint; c.done(c.at + ".entrypoint") }},
	{"user", func(c *conv) { c.out.User = c.svc.User; c.done(c.at + ".user") }},
	{"working_dir", workingDir},
	{"stop_grace_period", stopGrace},
	{"env_file", envFile},
	{"volumes", volumes},
	{"secrets", secrets},

	{"depends_on", dependsOn},
}

// field maps one attribute of a service.
type field struct {
	key string
	set func(*conv)
}

func summaryList(l []string) string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = strconv.Quote(e)
	}
	return cut("[" + strings.Join(parts, ", ") + "]")
}

func image(c *conv) {
	c.out.Image = c.svc.Image
	c.done(c.at + ".image")
}

// build: SwiftDeploy deploys images; a service with only build gets the
// image name compose would give it.
func build(c *conv) {
	ctx := "."
	if c.svc.Build != nil && c.svc.Build.Context != "" {
		ctx = c.svc.Build.Context
	}
	if c.svc.Image == "" {
		c.out.Image = c.project + "-" + c.name
		c.notef(c.at+".build", "build context %s (SwiftDeploy deploys images, it does not build them: build and push one, then set services.image; set to compose's default name %q for now)", ctx, c.out.Image)
		return
	}
	c.notef(c.at+".build", "build context %s (SwiftDeploy deploys images, it does not build them; the image %s is used)", ctx, c.svc.Image)
}

// ports: the first TCP port's target is the service's port; where it is
// published becomes the front door's (nginx.port, nginx.bind). nginx is
// the only container publishing a port, so the others are listed.
func ports(c *conv) {
	for i, p := range c.svc.Ports {
		at := fmt.Sprintf("%s.ports[%d]", c.at, i)
		switch {
		case p.Protocol != "" && p.Protocol != "tcp":
			c.notef(at, "%s (SwiftDeploy routes HTTP over TCP only)", portString(p))
		case c.out.Port == 0:
			c.out.Port = int(p.Target)
			if p.Published != "" {
				n, err := strconv.Atoi(p.Published)
				if err != nil || n < 1 || n > 65535 {
					c.notef(at, "%s: published %q (the front door publishes one port, nginx.port; %d is used)", portString(p), p.Published, c.nginx.Port)
					continue
				}
				c.nginx.Port = n
			}
			if p.HostIP != "" && p.HostIP != "0.0.0.0" {
				c.nginx.Bind = p.HostIP
			}
			c.done(at)
		case int(p.Target) == c.out.Port:
			c.notef(at, "%s (the front door publishes one port, nginx.port %d)", portString(p), c.nginx.Port)
		default:
			c.notef(at, "%s (SwiftDeploy routes to one port per service, %d)", portString(p), c.out.Port)
		}
	}
}

func portString(p types.ServicePortConfig) string {
	s := strconv.Itoa(int(p.Target))
	if p.Published != "" {
		s = p.Published + ":" + s
	}
	if p.HostIP != "" {
		s = p.HostIP + ":" + s
	}
	if p.Protocol != "" && p.Protocol != "tcp" {
		s += "/" + p.Protocol
	}
	return s
}

// expose: a port other services reach; the service's port when ports
// names none.
func expose(c *conv) {
	for i, e := range c.svc.Expose {
		at := fmt.Sprintf("%s.expose[%d]", c.at, i)
		n, err := strconv.Atoi(strings.TrimSuffix(e, "/tcp"))
		switch {
		case err == nil && c.out.Port == 0 && n > 0 && n < 65536:
			c.out.Port = n
			c.done(at)
		case err == nil && n == c.out.Port:
			c.done(at)
		default:
			c.notef(at, "%q (SwiftDeploy routes to one port per service, %d)", e, c.out.Port)
		}
	}
}

// reserved are set by SwiftDeploy on every app container.
var reserved = []string{"PORT", "MODE"}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// environment: every variable with a value. Values are never repeated in
// a note: they may be secrets.
func environment(c *conv) {
	for _, k := range slices.Sorted(maps.Keys(c.svc.Environment)) {
		v := c.svc.Environment[k]
		at := c.at + ".environment." + k
		switch {
		case v == nil:
			c.notef(at, "no value (compose takes it from the shell when it runs; set it in services.env)")
		case slices.Contains(reserved, k):
			c.notef(at, "SwiftDeploy sets %s itself (the value is not shown)", k)
		case !envName.MatchString(k):
			c.notef(at, "not a valid variable name for the manifest (the value is not shown)")
		default:
			if c.out.Env == nil {
				c.out.Env = map[string]string{}
			}
			c.out.Env[k] = *v
			c.done(at)
		}
	}
}

// healthURL finds the URL an HTTP health check asks for (curl, wget or
// anything else naming one on the service's own host).
var healthURL = regexp.MustCompile(`https?://(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])(?::([0-9]+))?(/[^\s'"|;&]*)?`)

func healthcheck(c *conv) {
	h := c.svc.HealthCheck
	at := c.at + ".healthcheck"
	if h == nil {
		return
	}
	if h.Disable {
		c.notef(at+".disable", "true (SwiftDeploy always checks health: an HTTP GET of health_path, default /healthz)")
	}
	if len(h.Test) > 0 {
		cmd := strings.Join(h.Test, " ")
		m := healthURL.FindStringSubmatch(cmd)
		switch {
		case h.Test[0] == "NONE":
			c.notef(at+".test", "NONE (SwiftDeploy always checks health: an HTTP GET of health_path, default /healthz)")
		case m != nil && m[1] != "" && m[1] != strconv.Itoa(c.out.Port):
			c.notef(at+".test", "%s (an HTTP check on port %s; SwiftDeploy checks health_path on the service's port, %d)", summaryList(h.Test), m[1], c.out.Port)
		case m != nil:
			path := m[2]
			if path == "" {
				path = "/"
			}
			if u, err := url.Parse(path); err == nil && u.Path != "" {
				path = u.Path
			}
			c.out.HealthPath = path
			c.done(at + ".test")
		default:
			c.notef(at+".test", "%s (SwiftDeploy checks health by an HTTP GET of health_path, default /healthz; a command is not expressed)", summaryList(h.Test))
		}
	}
	// The timings: services.health, which then holds the path too.
	var hl Health
	timed := false
	for _, d := range []struct {
		key string
		v   *types.Duration
		max time.Duration
		dst *string
	}{
		{"interval", h.Interval, time.Hour, &hl.Interval},
		{"timeout", h.Timeout, 5 * time.Minute, &hl.Timeout},
		{"start_period", h.StartPeriod, time.Hour, &hl.StartPeriod},
	} {
		if d.v == nil {
			continue
		}
		v := time.Duration(*d.v)
		if v < time.Second || v > d.max || v%time.Second != 0 {
			c.notef(at+"."+d.key, "%s (services.health.%s is whole seconds from 1s to %s)", v, d.key, d.max)
			continue
		}
		*d.dst, timed = v.String(), true
		c.done(at + "." + d.key)
	}
	if h.Retries != nil {
		if r := *h.Retries; r >= 1 && r <= 100 {
			hl.Retries, timed = int(r), true
			c.done(at + ".retries")
		} else {
			c.notef(at+".retries", "%d (services.health.retries is 1-100)", r)
		}
	}
	if h.StartInterval != nil {
		c.notef(at+".start_interval", "%s (a starting container is probed every few milliseconds anyway)", durString(h.StartInterval))
	}
	if timed {
		hl.Path, c.out.HealthPath = c.out.HealthPath, ""
		c.out.Health = &hl
	}
}

func durString(d *types.Duration) string {
	if d == nil {
		return ""
	}
	return d.String()
}

func retries(r *uint64) string {
	if r == nil {
		return ""
	}
	return strconv.FormatUint(*r, 10)
}

// deploy: replicas and the resource limits; the rest (reservations,
// restart and update policies, placement) is listed by the walk.
func deploy(c *conv) {
	d := c.svc.Deploy
	if d == nil {
		return
	}
	if d.Replicas != nil {
		setReplicas(c, c.at+".deploy.replicas", *d.Replicas)
	}
	if l := d.Resources.Limits; l != nil {
		at := c.at + ".deploy.resources.limits"
		if l.NanoCPUs != 0 {
			setCPUs(c, at+".cpus", float32(l.NanoCPUs))
		}
		if l.MemoryBytes != 0 {
			setMemory(c, at+".memory", int64(l.MemoryBytes))
		}
	}
}

func scale(c *conv) {
	if c.svc.Scale != nil {
		setReplicas(c, c.at+".scale", *c.svc.Scale)
	}
}

func cpus(c *conv) { setCPUs(c, c.at+".cpus", c.svc.CPUS) }

func memLimit(c *conv) { setMemory(c, c.at+".mem_limit", int64(c.svc.MemLimit)) }

func setReplicas(c *conv, at string, n int) {
	if n < 1 || n > manifest.MaxReplicas {
		c.notef(at, "%d (services.replicas is 1-%d)", n, manifest.MaxReplicas)
		return
	}
	c.out.Replicas = n
	c.done(at)
}

func setCPUs(c *conv, at string, f float32) {
	// As written (0.3, not 0.30000001192092896).
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'f', -1, 32), 64)
	if v <= 0 || v > manifest.MaxCPUs {
		c.notef(at, "%g (services.resources.cpus is above 0 and at most %d)", v, manifest.MaxCPUs)
		return
	}
	if c.out.Resources == nil {
		c.out.Resources = &Resources{}
	}
	c.out.Resources.CPUs = v
	c.done(at)
}

func setMemory(c *conv, at string, b int64) {
	if b < manifest.MinMemory {
		c.notef(at, "%s (services.resources.memory is at least 6m)", memString(b))
		return
	}
	if c.out.Resources == nil {
		c.out.Resources = &Resources{}
	}
	c.out.Resources.Memory = memString(b)
	c.done(at)
}

// memString writes bytes in the largest binary unit that divides them.
func memString(b int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if b%u.size == 0 {
			return strconv.FormatInt(b/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(b, 10)
}

// restart: SwiftDeploy keeps every replica running (and replaces a
// crashed one), which is always and unless-stopped.
func restart(c *conv) {
	at := c.at + ".restart"
	switch c.svc.Restart {
	case types.RestartPolicyAlways, types.RestartPolicyUnlessStopped:
		c.done(at)
	default:
		c.notef(at, "%q (SwiftDeploy keeps every replica running, as always)", c.svc.Restart)
	}
}

func workingDir(c *conv) {
	at := c.at + ".working_dir"
	if !strings.HasPrefix(c.svc.WorkingDir, "/") || strings.Contains(c.svc.WorkingDir, ":") {
		c.notef(at, "%q (services.working_dir is an absolute path)", c.svc.WorkingDir)
		return
	}
	c.out.WorkingDir = c.svc.WorkingDir
	c.done(at)
}

func stopGrace(c *conv) {
	at := c.at + ".stop_grace_period"
	d := time.Duration(*c.svc.StopGracePeriod)
	if d < time.Second || d > manifest.MaxStopGrace || d%time.Second != 0 {
		c.notef(at, "%s (services.stop_grace_period is whole seconds from 1s to %s)", d, manifest.MaxStopGrace)
		return
	}
	c.out.StopGracePeriod = d.String()
	c.done(at)
}

// envFile: the files as written, relative to the compose file (so to the
// manifest when it is written beside it). The daemon reads them at each
// start; their variables are never copied into the manifest.
func envFile(c *conv) {
	for i, f := range c.svc.EnvFiles {
		at := fmt.Sprintf("%s.env_file[%d]", c.at, i)
		switch {
		case !bool(f.Required):
			c.notef(at, "%s, required: false (the manifest's env files must exist)", f.Path)
		case f.Format != "":
			c.notef(at, "%s, format %q (the manifest reads compose's KEY=VALUE format only)", f.Path, f.Format)
		default:
			c.out.EnvFile = append(c.out.EnvFile, f.Path)
			c.done(at)
		}
	}
}

var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// volumes: named volumes (the project's own, kept across changes and
// down) and bind mounts, in compose's short form; a volume's own options
// are listed by the walk.
func volumes(c *conv) {
	for i, v := range c.svc.Volumes {
		at := fmt.Sprintf("%s.volumes[%d]", c.at, i)
		mode := ""
		if v.ReadOnly {
			mode = ":ro"
		}
		switch {
		case v.Type == types.VolumeTypeVolume && v.Source == "":
			c.notef(at, "anonymous volume at %s (it would be lost on every change: give it a name)", v.Target)
			continue
		case v.Type == types.VolumeTypeVolume && !volumeName.MatchString(v.Source):
			c.notef(at, "named volume %q (not a valid volume name)", v.Source)
			continue
		case v.Type == types.VolumeTypeVolume:
			c.volumes[v.Source] = true
		case v.Type == types.VolumeTypeBind && (strings.HasPrefix(v.Source, "/") || strings.HasPrefix(v.Source, ".")):
		case v.Type == types.VolumeTypeBind:
			c.notef(at, "bind mount %s at %s (the manifest's bind sources are absolute or start with .)", v.Source, v.Target)
			continue
		default:
			c.notef(at, "%s at %s (the manifest has named volumes and bind mounts only)", v.Type, v.Target)
			continue
		}
		c.out.Volumes = append(c.out.Volumes, v.Source+":"+v.Target+mode)
		for _, k := range []string{"type", "source", "target", "read_only"} {
			c.done(at + "." + k)
		}
	}
}

// secrets: each file secret the service uses, by its name; the content
// stays in its file.
func secrets(c *conv) {
	for i, s := range c.svc.Secrets {
		at := fmt.Sprintf("%s.secrets[%d]", c.at, i)
		top, ok := c.projectSecrets[s.Source]
		switch {
		case !ok || top.File == "":
			c.notef(at, "secret %q (not a file: the manifest's secrets are files)", s.Source)
			continue
		case !secretName.MatchString(s.Source):
			c.notef(at, "secret %q (not a valid secret name)", s.Source)
			continue
		case s.Target != "" && s.Target != s.Source && s.Target != "/run/secrets/"+s.Source:
			c.notef(at, "secret %q at %s (the manifest mounts it at /run/secrets/%s)", s.Source, s.Target, s.Source)
			continue
		case s.UID != "" || s.GID != "" || s.Mode != nil:
			c.notef(at, "secret %q with its own owner or mode (the manifest's are 0400, owned by services.user)", s.Source)
			continue
		}
		if c.out.Secrets == nil {
			c.out.Secrets = map[string]Secret{}
		}
		c.out.Secrets[s.Source] = Secret{File: top.File}
		c.secrets[s.Source] = true
		c.done(at)
	}
}

var secretName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// dependsOn: in the named form the kinds decide (settle); the single
// service depends on nothing.
func dependsOn(c *conv) {
	if c.kinds != nil {
		c.done(c.at + ".depends_on")
		return
	}
	for _, n := range slices.Sorted(maps.Keys(c.svc.DependsOn)) {
		c.notef(c.at+".depends_on."+n, "%s is not imported", n)
	}
}
