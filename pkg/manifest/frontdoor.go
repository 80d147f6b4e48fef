package manifest

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// AlwaysDenied are the request path prefixes the nginx front door refuses
// whatever the manifest says: the app's fault injection (chaos is
// `swiftctl chaos`, journaled) and SwiftDeploy's own paths (nginx's status
// location answers on a Unix socket only; refusing /swiftdeploy/ on the
// public port says so instead of handing the path to the app).
//
// A prefix ending in "/" refuses a path segment: the path without the
// slash and everything under it ("/debug", "/debug/", "/debug/pprof", but
// not "/debugger"). Any other prefix refuses every path that starts with
// it ("/chaos" also refuses "/chaosmonkey"). nginx compares them without
// regard to letter case, because the app's router may not care either.
var AlwaysDenied = []string{"/chaos", "/swiftdeploy/"}

// RefusedPrefixes returns every prefix the front door refuses:
// AlwaysDenied, then nginx.deny_paths in order, each once.
func (n *Nginx) RefusedPrefixes() []string {
	return RefusedPrefixes(n.DenyPaths)
}

// RefusedPrefixes returns AlwaysDenied followed by deny, each prefix once
// (compared without regard to case).
func RefusedPrefixes(deny []string) []string {
	out := append([]string(nil), AlwaysDenied...)
	for _, p := range deny {
		if !slices.ContainsFunc(out, func(q string) bool { return strings.EqualFold(p, q) }) {
			out = append(out, p)
		}
	}
	return out
}

// IsRefusedPath reports whether one of prefixes refuses path p, comparing
// without regard to case, and which one. p is a path as nginx sees it,
// already normalized (no "..", no "//").
func IsRefusedPath(prefixes []string, p string) (prefix string, refused bool) {
	lower := strings.ToLower(p)
	for _, prefix := range prefixes {
		lp := strings.ToLower(prefix)
		segment, isSegment := strings.CutSuffix(lp, "/")
		switch {
		case isSegment && (lower == segment || strings.HasPrefix(lower, lp)):
			return prefix, true
		case !isSegment && strings.HasPrefix(lower, lp):
			return prefix, true
		}
	}
	return "", false
}

// CheckFrontDoorPath checks a request path that nginx routes with an exact
// location (metrics.path), returning an error that names the bad value.
// The path is written into nginx.conf unquoted and must match requests
// after nginx has normalized them, so it is limited to letters, digits and
// "/_.-", with no "//" and no "." or ".." segment (nginx resolves those,
// so an exact location holding one would never match). It must not be an
// always-refused path in any letter case: an exact location wins over
// every prefix and regex location, so /Chaos would reopen what /chaos
// closes. (A deny_paths entry covering it is reported on that entry.)
func CheckFrontDoorPath(p string) error {
	if err := checkPathSyntax(p); err != nil {
		return err
	}
	if prefix, refused := IsRefusedPath(AlwaysDenied, p); refused {
		return fmt.Errorf("%q is refused by the front door: it lies under %s (compared without regard to case); pick another path", p, strings.TrimSuffix(prefix, "/"))
	}
	return nil
}

// CheckDenyPath checks one nginx.deny_paths entry: the same syntax as an
// exact location (it is written into nginx.conf unquoted, and matched
// against the normalized URI), and not "/" (which would refuse the app).
func CheckDenyPath(p string) error {
	if err := checkPathSyntax(p); err != nil {
		return err
	}
	if p == "/" {
		return fmt.Errorf("\"/\" would refuse every request; list the prefixes to refuse")
	}
	return nil
}

func checkPathSyntax(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("required (an absolute path such as /metrics)")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("must be an absolute path starting with '/', got %q", p)
	case len(p) > MaxPathLen:
		return fmt.Errorf("must be at most %d characters, got %d", MaxPathLen, len(p))
	}
	if i := strings.IndexFunc(p, func(r rune) bool { return !safePathRune(r) }); i >= 0 {
		r := []rune(p[i:])[0]
		return fmt.Errorf("must contain only letters, digits and / _ . -, got %q (%q at byte %d)", p, r, i)
	}
	segments := strings.Split(p[1:], "/")
	for i, seg := range segments {
		switch {
		case seg == "." || seg == "..":
			return fmt.Errorf("must not contain a %q segment (nginx resolves it before matching), got %q", seg, p)
		case seg == "" && i < len(segments)-1:
			return fmt.Errorf("must not contain \"//\" (nginx merges slashes before matching), got %q", p)
		}
	}
	return nil
}

func safePathRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/_.-", r)
}

var (
	// nginx's size syntax, bounded: a number and an optional unit.
	bodySizeRE = regexp.MustCompile(`^[0-9]{1,9}[kKmMgG]?$`)
	// A cookie name nginx can read as $cookie_<name>: variable names are
	// letters, digits and '_' (a '-' would end the variable).
	cookieNameRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	// An HTTP header name (a token) nginx reads as $http_<name>.
	headerNameRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	// A match value, written into an nginx map as a plain key: starting
	// with a letter or digit, so it can never read as a regex ("~") or an
	// escape ("\").
	matchValueRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// mapKeywords are words an nginx map reads as directives, not keys.
var mapKeywords = []string{"default", "hostnames", "include", "volatile"}

func (ps *problemList) frontDoor(n *Nginx, healthPath, metricsPath string) {
	if !bodySizeRE.MatchString(n.ClientMaxBodySize) {
		ps.addf("nginx.client_max_body_size", "must be a size such as 100m, 512k or 1g (0 for no limit), got %q", n.ClientMaxBodySize)
	}
	ps.durationRange("nginx.drain_timeout", n.DrainTimeout.D(), 0, MaxDrainTimeout)
	if len(n.DenyPaths) > MaxDenyPaths {
		ps.addf("nginx.deny_paths", "must list at most %d paths, got %d", MaxDenyPaths, len(n.DenyPaths))
	}
	for i, p := range n.DenyPaths {
		field := fmt.Sprintf("nginx.deny_paths[%d]", i)
		if err := CheckDenyPath(p); err != nil {
			ps.addf(field, "%v", err)
			continue
		}
		// The daemon probes health_path on each container directly, but a
		// refused health or metrics path means the front door disagrees
		// with what the app is checked on: almost surely a mistake. (The
		// metrics path is an exact location besides, which would win over
		// the refusal in another letter case.)
		for _, checked := range []struct{ field, path string }{
			{"services.health_path", healthPath}, {"metrics.path", metricsPath},
		} {
			if _, refused := IsRefusedPath([]string{p}, checked.path); refused {
				ps.addf(checked.field, "%q is refused by the front door: it lies under %s (%s %q, compared without regard to case); pick another path or remove it from nginx.deny_paths", checked.path, strings.TrimSuffix(p, "/"), field, p)
			}
		}
	}
	if !cookieNameRE.MatchString(n.StickyCookie) {
		ps.addf("nginx.sticky_cookie", "must be 1-64 letters, digits or '_', got %q", n.StickyCookie)
	}
	if len(n.TrustedProxies) > MaxTrustedProxies {
		ps.addf("nginx.trusted_proxies", "must list at most %d networks, got %d", MaxTrustedProxies, len(n.TrustedProxies))
	}
	for i, c := range n.TrustedProxies {
		if _, err := ParseTrustedProxy(c); err != nil {
			ps.addf(fmt.Sprintf("nginx.trusted_proxies[%d]", i), "%v", err)
		}
	}
	if n.ProxyProtocol && len(n.TrustedProxies) == 0 {
		ps.addf("nginx.proxy_protocol", "needs nginx.trusted_proxies: the PROXY header is believed only from a trusted peer")
	}
}

// ParseTrustedProxy reads one nginx.trusted_proxies entry: a CIDR
// ("10.0.0.0/8") or a single address, returned as a masked prefix.
func ParseTrustedProxy(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("must not name a zone, got %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("must be a CIDR such as 10.0.0.0/8 or an IP address, got %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (ps *problemList) match(m *Match) { ps.matchAt("services.canary.match", m) }

func (ps *problemList) matchAt(at string, m *Match) {
	switch {
	case m.Header == "" && m.Cookie == "":
		ps.addf(at, "needs header or cookie")
	case m.Header != "" && m.Cookie != "":
		ps.addf(at, "must name a header or a cookie, not both")
	case m.Header != "" && !headerNameRE.MatchString(m.Header):
		ps.addf(at+".header", "must be 1-64 letters, digits or '-', got %q", m.Header)
	case m.Cookie != "" && !cookieNameRE.MatchString(m.Cookie):
		ps.addf(at+".cookie", "must be 1-64 letters, digits or '_', got %q", m.Cookie)
	}
	switch {
	case !matchValueRE.MatchString(m.Value):
		ps.addf(at+".value", "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit, got %q", m.Value)
	case slices.Contains(mapKeywords, m.Value):
		ps.addf(at+".value", "%q is a word nginx's map reserves; pick another value", m.Value)
	}
}
