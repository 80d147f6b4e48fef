package manifest

import (
	"fmt"
	"strings"
)

// blockedPrefixes are the request paths the nginx front door refuses: the
// app's fault injection, operator endpoints and SwiftDeploy's own (nginx's
// status location answers on a Unix socket only; refusing /swiftdeploy on
// the public port says so instead of handing the path to the app). A
// prefix ending in "/" blocks a path segment: the path without the slash
// and everything under it ("/debug", "/debug/", "/debug/pprof", but not
// "/debugger"). Any other prefix blocks every path that starts with it
// ("/chaos" also blocks "/chaosmonkey"). nginx compares them without
// regard to letter case, because the app's router may not care either.
var blockedPrefixes = []string{"/chaos", "/internal/", "/debug/", "/admin", "/swiftdeploy/"}

// BlockedPrefixes returns the request path prefixes the front door
// refuses (see IsBlockedPath for how one is matched).
func BlockedPrefixes() []string {
	return append([]string(nil), blockedPrefixes...)
}

// IsBlockedPath reports whether the front door refuses path p, comparing
// without regard to case, and which prefix refuses it. p is a path as
// nginx sees it, already normalized (no "..", no "//").
func IsBlockedPath(p string) (prefix string, blocked bool) {
	lower := strings.ToLower(p)
	for _, prefix := range blockedPrefixes {
		segment, isSegment := strings.CutSuffix(prefix, "/")
		switch {
		case isSegment && (lower == segment || strings.HasPrefix(lower, prefix)):
			return prefix, true
		case !isSegment && strings.HasPrefix(lower, prefix):
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
// so an exact location holding one would never match). It must not be a
// refused path in any letter case: an exact location wins over every
// prefix and regex location, so /Chaos would reopen what /chaos closes.
func CheckFrontDoorPath(p string) error {
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
	if prefix, blocked := IsBlockedPath(p); blocked {
		return fmt.Errorf("%q is refused by the front door: it lies under %s (compared without regard to case); pick another path", p, strings.TrimSuffix(prefix, "/"))
	}
	return nil
}

func safePathRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/_.-", r)
}
