package manifest

import (
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/distribution/reference"

	"github.com/swiftdeploy/swiftdeploy/pkg/redact"
)

// FileField is the Field of a Problem about the document as a whole.
const FileField = "(file)"

// Problem is one validation failure, naming the field path and bad value.
type Problem struct {
	Field string `json:"field"`
	Msg   string `json:"message"`
	// Line is the manifest line the problem is on, 0 when unknown (for
	// example a required field that is absent).
	Line int `json:"line,omitempty"`
}

func (p Problem) String() string {
	s := p.Field + ": " + p.Msg
	if p.Line > 0 {
		s += " (line " + strconv.Itoa(p.Line) + ")"
	}
	return s
}

// ValidationError collects every problem found in a manifest.
type ValidationError struct {
	Problems []Problem `json:"problems"`
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid manifest:\n  " + strings.Join(lines, "\n  ")
}

// Limits of the manifest's values. They are exported for documentation
// and for callers that build manifests programmatically.
const (
	MaxReplicas       = 50
	MaxProjectLen     = 40
	MaxNetworkNameLen = 64
	MaxCPUs           = 64
	// MinMemory is Docker's smallest accepted memory limit (6 MiB).
	MinMemory = 6 << 20
	// MaxPathLen bounds health_path and metrics.path.
	MaxPathLen = 256
	// MaxDrainTimeout bounds nginx.drain_timeout.
	MaxDrainTimeout = 10 * time.Minute
	// MaxSteps bounds services.canary.steps.
	MaxSteps = 20
	// MaxStepPause bounds one step's pause and the analysis interval's
	// upper end: a rollout that waits longer is better done by hand.
	MaxStepPause = 24 * time.Hour
	// MaxFailureLimit bounds services.canary.analysis.failure_limit.
	MaxFailureLimit = 100
)

var (
	projectName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	networkName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// reservedEnv are set by SwiftDeploy on every app container.
var reservedEnv = map[string]string{
	"PORT": "set from services.port",
	"MODE": "set to the container's track (stable or canary)",
}

// driverProblems explains why Docker network drivers other than bridge
// cannot carry a SwiftDeploy stack, which needs container DNS between nginx
// and the app replicas and a published host port on nginx.
var driverProblems = map[string]string{
	"host":    "host networking has no container DNS and cannot isolate the stack",
	"none":    "containers on a none network cannot reach each other",
	"overlay": "overlay networks need swarm mode",
	"macvlan": "macvlan networks cannot publish nginx.port on the host",
	"ipvlan":  "ipvlan networks cannot publish nginx.port on the host",
}

// predefinedNetworks are created by Docker itself; using one would put the
// stack on a shared network (the default bridge also has no container DNS).
var predefinedNetworks = []string{"bridge", "host", "none"}

// problemList collects problems in the order they are found.
type problemList []Problem

func (ps *problemList) addf(field, format string, args ...any) {
	*ps = append(*ps, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil.
func (m *Manifest) Validate() error {
	var ps problemList
	ps.project(m.Project)
	if m.IsNamed() {
		ps.namedServices(m, m.Nginx.RefusedPrefixes())
	} else {
		ps.services(&m.Services)
	}
	ps.nginx(&m.Nginx)
	ps.tls(m.Nginx.TLS, m.Nginx.Port)
	ps.frontDoor(&m.Nginx, m.Services.HealthPath, m.Metrics.Path)
	ps.network(&m.Network)
	ps.metrics(&m.Metrics)
	ps.policy(&m.Policy)
	if m.Services.Canary != nil {
		ps.steps(m.Services.Canary, m.Metrics.ScrapeInterval.D())
	}
	ps.notify(m.Notify)
	ps.registries(m.Registries)
	if len(ps) > 0 {
		return &ValidationError{Problems: ps}
	}
	return nil
}

func (ps *problemList) project(name string) {
	switch {
	case name == "":
		ps.addf("project", "required")
	case len(name) > MaxProjectLen:
		ps.addf("project", "must be at most %d characters, got %q (%d)", MaxProjectLen, name, len(name))
	case !projectName.MatchString(name):
		ps.addf("project", "must be lower-case letters, digits, '_' or '-', starting with a letter or digit, got %q", name)
	}
}

func (ps *problemList) services(s *Services) {
	ps.image("services.image", s.Image)
	ps.port("services.port", s.Port)
	ps.intRange("services.replicas", s.Replicas, 1, MaxReplicas)
	ps.urlPath("services.health_path", s.HealthPath)
	ps.env(s.Env)
	ps.resources(&s.Resources)
	ps.container("services", s)
	ps.secrets("services", s)
	if s.Canary != nil {
		ps.canary(s.Canary, s.Image)
	}
	for _, f := range []struct {
		field string
		set   bool
	}{{"kind", s.Kind != ""}, {"route", s.Route != nil}, {"depends_on", len(s.DependsOn) > 0}, {"metrics", s.Metrics != nil}} {
		if f.set {
			field := f.field
			ps.addf("services."+field, "belongs to the named form (services: {web: {image: ..., %s: ...}}); the single service is a web service routed everything", field)
		}
	}
}

func (ps *problemList) canary(c *Canary, stableImage string) {
	ps.canaryAt("services", c, stableImage)
}

// canaryAt checks the canary of the service at ("services" for the single
// service, "services.web" in the named form).
func (ps *problemList) canaryAt(svc string, c *Canary, stableImage string) {
	at := svc + ".canary"
	before := len(*ps)
	ps.image(at+".image", c.Image)
	if len(*ps) == before && sameImage(c.Image, stableImage) {
		ps.addf(at+".image", "canary image must differ from %s.image, both are %q", svc, c.Image)
	}
	ps.intRange(at+".weight", c.Weight, 0, 100)
	ps.intRange(at+".replicas", c.Replicas, 1, MaxReplicas)
	if c.Match != nil {
		ps.matchAt(at+".match", c.Match)
	}
}

// steps checks a progressive rollout: weights rising within 1-99, every
// pause long enough for at least one analysis, limits a rollout can reach.
func (ps *problemList) steps(c *Canary, scrapeInterval time.Duration) {
	ps.stepsAt("services.canary", c, scrapeInterval)
}

// stepsAt checks the steps of the canary at (services.canary,
// services.web.canary).
func (ps *problemList) stepsAt(canary string, c *Canary, scrapeInterval time.Duration) {
	at := canary + "."
	if len(c.Steps) == 0 {
		if c.Analysis != nil {
			ps.addf(at+"analysis", "needs %ssteps: the analysis judges the steps", at)
		}
		return
	}
	if c.Weight != 0 {
		ps.addf(at+"weight", "must be left out when steps are declared (the current step sets the weight), got %d", c.Weight)
	}
	if len(c.Steps) > MaxSteps {
		ps.addf(at+"steps", "must have at most %d steps, got %d", MaxSteps, len(c.Steps))
	}
	a := c.Analysis
	if a == nil { // only a programmatic manifest; Parse fills the defaults
		ps.addf(at+"analysis", "required with steps")
		return
	}
	interval := a.Interval.D()
	switch {
	case interval < time.Second || interval > time.Hour:
		ps.addf(at+"analysis.interval", "must be 1s-1h0m0s, got %s", interval)
	case interval < scrapeInterval:
		// A check between two scrapes would judge the same figures twice.
		ps.addf(at+"analysis.interval", "must be at least metrics.scrape_interval (%s), got %s", scrapeInterval, interval)
	}
	ps.intRange(at+"analysis.failure_limit", a.FailureLimit, 1, MaxFailureLimit)
	prev := 0
	for i, st := range c.Steps {
		field := fmt.Sprintf("%ssteps[%d]", at, i)
		switch {
		case st.Weight < 1 || st.Weight > 99:
			ps.addf(field+".weight", "must be 1-99 (100 is a promotion), got %d", st.Weight)
		case st.Weight <= prev:
			ps.addf(field+".weight", "must be greater than the previous step's weight (%d), got %d: weights rise", prev, st.Weight)
		}
		prev = max(prev, st.Weight)
		switch p := st.Pause.D(); {
		case p > MaxStepPause:
			ps.addf(field+".pause", "must be at most %s, got %s", MaxStepPause, p)
		case p < interval:
			ps.addf(field+".pause", "must be at least %sanalysis.interval (%s) so the step is judged, got %s", at, interval, p)
		}
	}
}

// notify checks the webhooks: absolute http(s) URLs, known events.
func (ps *problemList) notify(hooks []Webhook) {
	if len(hooks) > MaxWebhooks {
		ps.addf("notify", "must list at most %d webhooks, got %d", MaxWebhooks, len(hooks))
	}
	for i, h := range hooks {
		field := fmt.Sprintf("notify[%d]", i)
		// The URL is never quoted: its userinfo, path and query are often
		// the secret (redact), and problems reach the journal.
		u, err := url.Parse(h.URL)
		switch {
		case h.URL == "":
			ps.addf(field+".url", "required")
		case err != nil:
			ps.addf(field+".url", "must be an absolute http:// or https:// URL; it does not parse: %s (the URL is not shown: it may hold a secret)", redact.ParseError(h.URL))
		case u.Scheme != "http" && u.Scheme != "https":
			ps.addf(field+".url", "must be an absolute http:// or https:// URL, got scheme %q (the URL is not shown: it may hold a secret)", u.Scheme)
		case u.Host == "" || u.Hostname() == "":
			ps.addf(field+".url", "must be an absolute http:// or https:// URL, got one without a host (the URL is not shown: it may hold a secret)")
		case !validPort(u.Port()):
			ps.addf(field+".url", "must be an absolute http:// or https:// URL, got port %q on host %s (the rest is not shown: it may hold a secret)", u.Port(), u.Hostname())
		}
		for j, e := range h.Events {
			if !slices.Contains(NotifyEvents, e) {
				ps.addf(fmt.Sprintf("%s.events[%d]", field, j), "must be one of %s, got %q", strings.Join(NotifyEvents, ", "), e)
			}
		}
	}
}

// sameImage reports whether two references name the same image, so that
// "nginx" and "docker.io/library/nginx:latest" compare equal.
func sameImage(a, b string) bool {
	na, errA := reference.ParseNormalizedNamed(a)
	nb, errB := reference.ParseNormalizedNamed(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return reference.TagNameOnly(na).String() == reference.TagNameOnly(nb).String()
}

// validPort reports whether p is empty or a TCP port, 1-65535.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// invalidUTF8At is the offset of the first byte of s that is not valid
// UTF-8.
func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i
			}
		}
	}
	return -1
}

func (ps *problemList) env(env map[string]string) {
	ps.envAt("services.env", env, reservedEnv)
}

// envAt checks the env of the service at (services.env, services.web.env)
// against the names SwiftDeploy sets on it.
func (ps *problemList) envAt(at string, env map[string]string, reserved map[string]string) {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys) // stable problem order
	for _, k := range keys {
		field := at + "." + k
		switch {
		case !envName.MatchString(k):
			ps.addf(at, "invalid variable name %q: must match [A-Za-z_][A-Za-z0-9_]*", k)
		case reserved[k] != "":
			ps.addf(field, "reserved: SwiftDeploy sets %s (%s)", k, reserved[k])
		// Docker passes env to the process as C strings, which end at NUL,
		// and carries them as JSON, which would replace invalid UTF-8 with
		// U+FFFD: either would change the value on its way in. Line breaks
		// are fine (a block scalar writes a multi-line value).
		// The value is never quoted (it may be a secret, and problems
		// reach the journal): the message says where the bad byte is.
		case strings.ContainsRune(env[k], 0):
			ps.addf(field, "value must not contain NUL, found at byte %d of %d (the value is not shown: it may be a secret)", strings.IndexByte(env[k], 0), len(env[k]))
		case !utf8.ValidString(env[k]):
			ps.addf(field, "value must be valid UTF-8, found an invalid byte at %d of %d (the value is not shown: it may be a secret)", invalidUTF8At(env[k]), len(env[k]))
		}
	}
}

func (ps *problemList) resources(r *Resources) { ps.resourcesAt("services.resources", r) }

func (ps *problemList) resourcesAt(at string, r *Resources) {
	// Written as !(in range) so that NaN is rejected too.
	if !(r.CPUs >= 0 && r.CPUs <= MaxCPUs) {
		ps.addf(at+".cpus", "must be 0-%d (0 means no limit), got %g", MaxCPUs, r.CPUs)
	}
	if r.Memory == "" {
		return
	}
	switch n, err := ParseMemory(r.Memory); {
	case err != nil:
		ps.addf(at+".memory", "%v", err)
	case n < MinMemory:
		ps.addf(at+".memory", "must be at least 6MiB (Docker's minimum), got %q", r.Memory)
	}
}

func (ps *problemList) nginx(n *Nginx) {
	ps.image("nginx.image", n.Image)
	ps.port("nginx.port", n.Port)
	ps.bind("nginx.bind", n.Bind)
	switch d := n.ProxyTimeout.D(); {
	case d < time.Second || d > 10*time.Minute:
		ps.addf("nginx.proxy_timeout", "must be 1s-10m0s, got %s", d)
	case d%time.Second != 0:
		// The stack renders the timeout for nginx as whole seconds.
		ps.addf("nginx.proxy_timeout", "must be a whole number of seconds, got %s", d)
	}
}

// bind checks an address to publish a port on. Only a literal is taken:
// a host name would be resolved once, when the container is created, and
// silently go stale.
func (ps *problemList) bind(field, addr string) {
	ip, err := netip.ParseAddr(addr)
	switch {
	case err != nil:
		ps.addf(field, "must be an IPv4 or IPv6 address such as 127.0.0.1 or ::1, got %q", addr)
	case ip.Zone() != "":
		// Docker's port bindings take no zone.
		ps.addf(field, "must not name a zone, got %q", addr)
	case ip.IsMulticast():
		ps.addf(field, "must be an address the host can listen on, got the multicast address %q", addr)
	}
}

func (ps *problemList) network(n *Network) {
	switch {
	case n.Name == "":
		ps.addf("network.name", "required")
	case len(n.Name) > MaxNetworkNameLen:
		ps.addf("network.name", "must be at most %d characters, got %q (%d)", MaxNetworkNameLen, n.Name, len(n.Name))
	case !networkName.MatchString(n.Name):
		ps.addf("network.name", "must be letters, digits, '_', '.' or '-', starting with a letter or digit, got %q", n.Name)
	case slices.Contains(predefinedNetworks, n.Name):
		ps.addf("network.name", "%q is one of Docker's predefined networks; name a network for this stack", n.Name)
	}
	switch reason, known := driverProblems[n.DriverType]; {
	case n.DriverType == "bridge":
	case known:
		ps.addf("network.driver_type", "must be bridge, got %q: %s", n.DriverType, reason)
	default:
		ps.addf("network.driver_type", "must be bridge, got %q", n.DriverType)
	}
}

func (ps *problemList) metrics(m *Metrics) {
	// Unlike health_path, which the daemon requests from each container
	// directly, metrics.path is also an exact location in nginx.conf.
	if err := CheckFrontDoorPath(m.Path); err != nil {
		ps.addf("metrics.path", "%v", err)
	}
	scrape, window := m.ScrapeInterval.D(), m.Window.D()
	ps.durationRange("metrics.scrape_interval", scrape, time.Second, 5*time.Minute)
	switch {
	case window > time.Hour:
		ps.addf("metrics.window", "must be at most 1h, got %s", window)
	case window < 2*scrape:
		// Rates need at least two scrapes inside the window.
		ps.addf("metrics.window", "must be at least twice metrics.scrape_interval (%s), got %s", scrape, window)
	}
	if m.Prometheus != "" {
		if err := checkPrometheusURL(m.Prometheus); err != nil {
			ps.addf("metrics.prometheus", "%v", err)
		}
	}
}

func (ps *problemList) policy(p *Policy) {
	if !(p.MinDiskGB >= 0) {
		ps.addf("policy.min_disk_gb", "must be >= 0, got %g", p.MinDiskGB)
	}
	if !(p.MaxCPULoad > 0) {
		ps.addf("policy.max_cpu_load", "must be > 0, got %g", p.MaxCPULoad)
	}
	if !(p.MaxErrorRate >= 0 && p.MaxErrorRate <= 1) {
		ps.addf("policy.max_error_rate", "must be a fraction in [0, 1] (0.01 is 1%%), got %g", p.MaxErrorRate)
	}
	if !(p.MaxP99Ms > 0) {
		ps.addf("policy.max_p99_ms", "must be > 0, got %g", p.MaxP99Ms)
	}
	if p.MinRequests < 0 {
		ps.addf("policy.min_requests", "must be >= 0, got %d", p.MinRequests)
	}
	if !filepath.IsAbs(p.DiskPath) {
		ps.addf("policy.disk_path", "must be an absolute path, got %q", p.DiskPath)
	}
	if r := p.Relative; r != nil {
		if !(r.Confidence >= 0.5 && r.Confidence <= 0.9999) {
			ps.addf("policy.relative.confidence", "must be 0.5-0.9999 (0.95 is 95%%), got %g", r.Confidence)
		}
		ps.intRange("policy.relative.min_requests", r.MinRequests, 1, 1000000)
		if !(r.MaxP99Factor == 0 || r.MaxP99Factor >= 1 && r.MaxP99Factor <= 100) {
			ps.addf("policy.relative.max_p99_factor", "must be 0 (off) or 1-100, got %g", r.MaxP99Factor)
		}
	}
}

func (ps *problemList) image(field, ref string) {
	if ref == "" {
		ps.addf(field, "required")
		return
	}
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		ps.addf(field, "invalid image reference %q: %v", ref, err)
	}
}

func (ps *problemList) port(field string, port int) {
	if port == 0 {
		ps.addf(field, "required (1-65535)")
		return
	}
	ps.intRange(field, port, 1, 65535)
}

func (ps *problemList) intRange(field string, v, lo, hi int) {
	if v < lo || v > hi {
		ps.addf(field, "must be %d-%d, got %d", lo, hi, v)
	}
}

func (ps *problemList) durationRange(field string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		ps.addf(field, "must be %s-%s, got %s", lo, hi, d)
	}
}

// urlPath checks a request path that is written into nginx configuration,
// where whitespace, quotes, ';', '{', '}' or '#' would change its meaning.
func (ps *problemList) urlPath(field, path string) {
	switch {
	case !strings.HasPrefix(path, "/"):
		ps.addf(field, "must start with '/', got %q", path)
	case len(path) > MaxPathLen:
		ps.addf(field, "must be at most %d characters, got %d", MaxPathLen, len(path))
	case strings.ContainsFunc(path, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`;{}"'\#`, r) }):
		ps.addf(field, "must be printable ASCII without whitespace or any of ; { } \" ' \\ #, got %q", path)
	}
}
