// Package render turns a stack.Stack into the files that run it: the nginx
// configuration of the front door and a docker-compose.yml that runs the
// same stack without the daemon. Renderers are pure and deterministic: the
// same Stack always gives the same bytes, so a changed file means a changed
// stack and the daemon can compare outputs instead of tracking causes.
package render

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

var (
	// Docker's rule for container and network names.
	dockerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	// What manifest.SanitizeProject produces.
	projectRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	// Portable environment variable names; anything else would need
	// quoting in a compose key or a shell.
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
	// A network driver name, possibly a plugin reference.
	driverRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.:/-]*$`)
)

// maxConnectTimeout caps proxy_connect_timeout: containers share a host
// network, so a connect that takes longer than this is not going to succeed.
const maxConnectTimeout = 5 * time.Second

// checkStack reports every problem that would make a rendered file invalid,
// naming the field and value. FromManifest only produces valid stacks from
// valid manifests, but a Stack can be built by hand, and a broken nginx.conf
// is far harder to diagnose than an error here.
func checkStack(s stack.Stack) error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}

	if !projectRE.MatchString(s.Project) {
		bad("project", "must be lowercase letters, digits, '_' or '-', got %q", s.Project)
	}
	if !dockerNameRE.MatchString(s.Network.Name) {
		bad("network.name", "must be letters, digits, '_', '.' or '-', got %q", s.Network.Name)
	}
	if !driverRE.MatchString(s.Network.DriverType) {
		bad("network.driver_type", "invalid driver name %q", s.Network.DriverType)
	}

	if len(s.Stable) == 0 {
		bad("stable", "no containers: the stack needs at least one stable replica")
	}
	names := map[string]bool{s.Nginx.Name: true}
	checkApps := func(track string, apps []stack.App) {
		for i, a := range apps {
			field := fmt.Sprintf("%s[%d]", track, i)
			if !dockerNameRE.MatchString(a.Name) {
				bad(field+".name", "invalid container name %q", a.Name)
			} else if names[a.Name] {
				bad(field+".name", "container name %q is used twice", a.Name)
			}
			names[a.Name] = true
			if err := checkImage(a.Image); err != nil {
				bad(field+".image", "%v", err)
			}
			// A worker has no port; an accessory may have one (not routed).
			portless := a.Kind == manifest.KindWorker || a.Kind == manifest.KindAccessory && a.Port == 0
			if !portless && (a.Port < 1 || a.Port > 65535) {
				bad(field+".port", "must be 1-65535, got %d", a.Port)
			}
			for k := range a.Env {
				if !envKeyRE.MatchString(k) {
					bad(field+".env", "invalid variable name %q", k)
				}
			}
			if a.CPUs < 0 || math.IsNaN(a.CPUs) || math.IsInf(a.CPUs, 0) {
				bad(field+".cpus", "must be a positive number of CPUs, got %v", a.CPUs)
			}
			if a.Memory != "" {
				if _, err := memLimit(a.Memory); err != nil {
					bad(field+".memory", "%v", err)
				}
			}
		}
	}
	checkApps("stable", s.Stable)
	checkApps("canary", s.Canary)

	if s.CanaryWeight < 0 || s.CanaryWeight > 100 {
		bad("canary_weight", "must be 0-100, got %d", s.CanaryWeight)
	} else if s.CanaryWeight > 0 && len(s.Canary) == 0 {
		bad("canary_weight", "is %d but no canary containers run", s.CanaryWeight)
	}

	seen := map[string]bool{}
	for i, c := range s.OtherCanaries {
		at := fmt.Sprintf("other_canaries[%d]", i)
		checkApps(at, c.Apps)
		switch svc := s.Service(c.Service); {
		case svc == nil || !svc.Routed():
			bad(at+".service", "names no web service of the stack, got %q", c.Service)
		case c.Service == s.Primary:
			bad(at+".service", "%s is the primary, whose canary is canary", c.Service)
		case seen[c.Service]:
			bad(at+".service", "%s has two canaries", c.Service)
		}
		seen[c.Service] = true
		if len(c.Apps) == 0 {
			bad(at, "no canary containers for %s", c.Service)
		}
		for j, a := range c.Apps {
			if a.Service != c.Service {
				bad(fmt.Sprintf("%s[%d].service", at, j), "is %q, not the canary's %q", a.Service, c.Service)
			}
		}
		if c.Weight < 0 || c.Weight > 100 {
			bad(at+".weight", "must be 0-100, got %d", c.Weight)
		}
		if c.Match != nil {
			checkMatch(at+".match", c.Match, bad)
		}
	}

	if !dockerNameRE.MatchString(s.Nginx.Name) {
		bad("nginx.name", "invalid container name %q", s.Nginx.Name)
	}
	if err := checkImage(s.Nginx.Image); err != nil {
		bad("nginx.image", "%v", err)
	}
	if s.Nginx.Port < 1 || s.Nginx.Port > 65535 {
		bad("nginx.port", "must be 1-65535, got %d", s.Nginx.Port)
	}
	if s.Nginx.Bind != "" {
		if ip, err := netip.ParseAddr(s.Nginx.Bind); err != nil || ip.Zone() != "" {
			bad("nginx.bind", "must be an IP address, got %q", s.Nginx.Bind)
		}
	}

	if t := s.Nginx.TLS; t != nil {
		if t.Port < 1 || t.Port > 65535 || t.Port == s.Nginx.Port {
			bad("nginx.tls.port", "must be 1-65535 and differ from nginx.port, got %d", t.Port)
		}
		if t.Cert != "" && !certIDRE.MatchString(t.Cert) {
			bad("nginx.tls.cert", "must be a certificate id (hex), got %q", t.Cert)
		}
	}
	if _, err := proxyTimeout(s.ProxyTimeout); err != nil {
		bad("proxy_timeout", "%v", err)
	}
	// The same rule as manifest validation: the path is an unquoted exact
	// location, which must not reopen a refused prefix in another case.
	if err := manifest.CheckFrontDoorPath(s.MetricsPath); err != nil {
		bad("metrics_path", "%v", err)
	} else if prefix, refused := manifest.IsRefusedPath(s.FrontDoor.Refused, s.MetricsPath); refused {
		bad("metrics_path", "%q is refused by the front door: it lies under the refused %s (compared without regard to case)", s.MetricsPath, prefix)
	}

	checkFrontDoor(s.FrontDoor, bad)

	if len(errs) > 0 {
		return fmt.Errorf("invalid stack %q: %w", s.Project, errors.Join(errs...))
	}
	return nil
}

// stopMessageRE is what swiftctl traffic stop's message may hold: it is
// written into a quoted nginx string and a status line, where '"', '\\',
// '$', ';', braces and line breaks would change the meaning.
var stopMessageRE = regexp.MustCompile(`^[^"\\$;{}\x00-\x1f\x7f]{0,200}$`)

// CheckStopMessage checks a swiftctl traffic stop message.
func CheckStopMessage(msg string) error {
	if !stopMessageRE.MatchString(msg) || strings.TrimSpace(msg) != msg {
		return fmt.Errorf("message must be at most 200 printable characters without \" \\ $ ; { } or leading/trailing spaces, got %q", msg)
	}
	return nil
}

// checkFrontDoor re-checks what manifest validation checks for the
// front-door fields, for a hand-built Stack.
func checkFrontDoor(f stack.FrontDoor, bad func(field, format string, a ...any)) {
	var n manifest.Nginx
	n.ClientMaxBodySize = f.ClientMaxBodySize
	if n.ClientMaxBodySize == "" {
		n.ClientMaxBodySize = "1m"
	}
	for i, p := range f.Refused {
		if err := manifest.CheckDenyPath(p); err != nil {
			bad(fmt.Sprintf("front_door.refused[%d]", i), "%v", err)
		}
	}
	if f.StickyCookie != "" && !cookieRE.MatchString(f.StickyCookie) {
		bad("front_door.sticky_cookie", "must be letters, digits or '_', got %q", f.StickyCookie)
	}
	if !bodySizeRE.MatchString(n.ClientMaxBodySize) {
		bad("front_door.client_max_body_size", "invalid size %q", f.ClientMaxBodySize)
	}
	for i, c := range f.TrustedProxies {
		if _, err := netip.ParsePrefix(c); err != nil {
			bad(fmt.Sprintf("front_door.trusted_proxies[%d]", i), "must be a CIDR, got %q", c)
		}
	}
	if m := f.Match; m != nil {
		checkMatch("front_door.match", m, bad)
	}
	switch f.Traffic.Mode {
	case stack.TrafficRun, stack.TrafficPause:
	case stack.TrafficStop:
		if err := CheckStopMessage(f.Traffic.Message); err != nil {
			bad("front_door.traffic", "%v", err)
		}
	default:
		bad("front_door.traffic", "unknown mode %q", f.Traffic.Mode)
	}
}

// checkMatch checks a canary's match, written into nginx map keys.
func checkMatch(field string, m *manifest.Match, bad func(field, format string, a ...any)) {
	switch {
	case (m.Header == "") == (m.Cookie == ""):
		bad(field, "needs exactly one of header and cookie")
	case m.Header != "" && !headerRE.MatchString(m.Header):
		bad(field+".header", "invalid header name %q", m.Header)
	case m.Cookie != "" && !cookieRE.MatchString(m.Cookie):
		bad(field+".cookie", "invalid cookie name %q", m.Cookie)
	}
	if !matchValueRE.MatchString(m.Value) {
		bad(field+".value", "invalid value %q", m.Value)
	}
}

var (
	cookieRE     = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	headerRE     = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	bodySizeRE   = regexp.MustCompile(`^[0-9]{1,9}[kKmMgG]?$`)
	matchValueRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

func checkImage(ref string) error {
	if ref == "" {
		return errors.New("required")
	}
	if strings.ContainsFunc(ref, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("image reference %q contains whitespace or control characters", ref)
	}
	return nil
}

// proxyTimeout parses Stack.ProxyTimeout ("30s"). nginx reads a bare "0"
// as no time at all, so anything under a second is refused.
func proxyTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	if d < time.Second {
		return 0, fmt.Errorf("must be at least 1s, got %q", s)
	}
	return d.Truncate(time.Second), nil
}

// memLimit normalizes a memory size ("256m", "1g", "512Mi") into the short
// lowercase form both compose implementations parse (compose v1 knows no
// "Mi"). It reads sizes with manifest.ParseMemory, as the daemon does, so
// both runtimes give a container the same limit.
func memLimit(s string) (string, error) {
	n, err := manifest.ParseMemory(s)
	if err != nil {
		return "", err
	}
	if n <= 0 {
		return "", fmt.Errorf("memory size %q must be positive", s)
	}
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.suffix), nil
		}
	}
	return fmt.Sprintf("%db", n), nil
}
