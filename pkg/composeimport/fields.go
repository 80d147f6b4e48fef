package composeimport

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

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

	// Not in the manifest on main yet (issue 18 adds them).
	{"command", notYet("command", "command")},
	{"entrypoint", notYet("entrypoint", "entrypoint")},
	{"user", notYet("user", "user")},
	{"working_dir", notYet("working_dir", "working_dir")},
	{"stop_grace_period", notYet("stop_grace_period", "stop_grace_period")},
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

// notYet lists a whole attribute the manifest has no field for yet.
func notYet(key, field string) func(*conv) {
	return func(c *conv) {
		c.notef(c.at+"."+key, "%s (the manifest has no %s yet)", valueOf(c, key), field)
	}
}

// valueOf renders a scalar or list attribute of the service for a note.
func valueOf(c *conv, key string) string {
	s := c.svc
	switch key {
	case "command":
		return summaryList(s.Command)
	case "entrypoint":
		return summaryList(s.Entrypoint)
	case "user":
		return strconv.Quote(s.User)
	case "working_dir":
		return strconv.Quote(s.WorkingDir)
	case "stop_grace_period":
		if s.StopGracePeriod != nil {
			return s.StopGracePeriod.String()
		}
	}
	return key
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
	for _, d := range []struct {
		key string
		set bool
		val string
	}{
		{"interval", h.Interval != nil, durString(h.Interval)},
		{"timeout", h.Timeout != nil, durString(h.Timeout)},
		{"start_period", h.StartPeriod != nil, durString(h.StartPeriod)},
		{"start_interval", h.StartInterval != nil, durString(h.StartInterval)},
		{"retries", h.Retries != nil, retries(h.Retries)},
	} {
		if d.set {
			c.notef(at+"."+d.key, "%s (the manifest has no health timings yet)", d.val)
		}
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

func envFile(c *conv) {
	for i, f := range c.svc.EnvFiles {
		c.notef(fmt.Sprintf("%s.env_file[%d]", c.at, i), "%s (the manifest has no env_file yet; its variables are not copied into services.env)", f.Path)
	}
}

func volumes(c *conv) {
	for i, v := range c.svc.Volumes {
		at := fmt.Sprintf("%s.volumes[%d]", c.at, i)
		ro := ""
		if v.ReadOnly {
			ro = ", read-only"
		}
		switch {
		case v.Type == types.VolumeTypeVolume && v.Source != "":
			c.notef(at, "named volume %q at %s%s (the manifest has no volumes yet)", v.Source, v.Target, ro)
		case v.Type == types.VolumeTypeVolume:
			c.notef(at, "anonymous volume at %s (the manifest has no volumes yet)", v.Target)
		case v.Type == types.VolumeTypeBind:
			c.notef(at, "bind mount %s at %s%s (the manifest has no volumes yet)", v.Source, v.Target, ro)
		default:
			c.notef(at, "%s at %s (the manifest has no volumes yet)", v.Type, v.Target)
		}
	}
}

func secrets(c *conv) {
	for i, s := range c.svc.Secrets {
		c.notef(fmt.Sprintf("%s.secrets[%d]", c.at, i), "secret %q (the manifest has no secrets yet)", s.Source)
	}
}

func dependsOn(c *conv) {
	for _, n := range slices.Sorted(maps.Keys(c.svc.DependsOn)) {
		cond := c.svc.DependsOn[n].Condition
		if cond == "" {
			cond = types.ServiceConditionStarted
		}
		c.notef(c.at+".depends_on."+n, "%s (the manifest holds one service today)", cond)
	}
}
