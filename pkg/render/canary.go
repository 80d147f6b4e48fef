package render

import (
	"strings"

	"github.com/swiftdeploy/swiftdeploy/pkg/accesslog"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// The canaries of the named form: the primary's in the fields of
// nginxView it has always had, every other web service's in variables of
// its own.

// otherCanaryView is the split and match of one named service's canary
// other than the primary's, each in variables of its own.
type otherCanaryView struct {
	Service                string
	Weight                 int
	StablePool, CanaryPool string
	Split                  bool
	SplitVar               string // the service's split_clients variable
	SplitKey               string // what it hashes
	MatchVar, MatchWhat    string // as nginxView's ("" for no match)
	MatchValue, BasePool   string
	PoolVar                string // the match map's variable
}

// canaryView routes the canary of named service svc (one at a time): its
// upstream, the split at the stack's weight and the match, as the seed's
// single service has them. It returns what the service's route passes to.
func canaryView(v *nginxView, s stack.Stack, svc string) string {
	stable, canary := accesslog.PoolFor(svc, stack.TrackStable), accesslog.PoolFor(svc, stack.TrackCanary)
	v.StablePool, v.CanaryPool = stable, canary
	pool := stable
	match := s.FrontDoor.Match != nil
	if s.CanaryWeight == 0 && !match {
		return pool // the canary runs, unrouted
	}
	v.Upstreams = append(v.Upstreams, upstreamView{Name: canary, Service: svc, Track: stack.TrackCanary, Revision: trackRevision(s.Canary), Servers: addrs(s.Canary)})
	v.CanaryWeight = s.CanaryWeight
	// The primary's canary is listed first, whichever service's route
	// was rendered before it (otherCanaryRoute appends the others').
	v.Status.Canary = append(containerNames(s.Canary), v.Status.Canary...)
	switch s.CanaryWeight {
	case 0:
	case 100:
		pool = canary
	default:
		v.Split, v.Sticky = true, true
		pool = poolSplit
	}
	if match {
		m := s.FrontDoor.Match
		v.MatchVar, v.MatchWhat = matchVar(m)
		v.MatchValue = m.Value
		v.BasePool = pool
		pool = poolMatch
	}
	return pool
}

// otherCanaryRoute routes the canary of named service svc, not the
// primary: as canaryView does, but in variables of the service's own
// (the primary's keep their names, so a config with one canary reads as
// it did), and hashing the client's cookie with the service's name, so
// that each service's split draws its clients apart from the others'.
// The sticky cookie is the one every split shares. It returns what the
// service's route passes to and whether the route sets the cookie.
func otherCanaryRoute(v *nginxView, s stack.Stack, svc string) (string, bool) {
	apps, weight := s.CanaryOf(svc)
	m := s.CanaryMatch(svc)
	stable, canary := accesslog.PoolFor(svc, stack.TrackStable), accesslog.PoolFor(svc, stack.TrackCanary)
	if weight == 0 && m == nil {
		return stable, false // the canary runs, unrouted
	}
	id := strings.ReplaceAll(svc, "-", "_") // service names hold no '_'
	c := otherCanaryView{Service: svc, Weight: weight, StablePool: stable, CanaryPool: canary,
		SplitVar: "swiftdeploy_split_" + id, SplitKey: "$swiftdeploy_client:" + svc, PoolVar: "swiftdeploy_pool_" + id}
	v.Upstreams = append(v.Upstreams, upstreamView{Name: canary, Service: svc, Track: stack.TrackCanary, Revision: trackRevision(apps), Servers: addrs(apps)})
	v.Status.Canary = append(v.Status.Canary, containerNames(apps)...)
	if v.Status.Weights == nil {
		v.Status.Weights = map[string]int{}
	}
	v.Status.Weights[svc] = weight
	pool := stable
	switch weight {
	case 0:
	case 100:
		pool = canary
	default:
		c.Split, v.Sticky = true, true
		pool = "$" + c.SplitVar
	}
	if m != nil {
		c.MatchVar, c.MatchWhat = matchVar(m)
		c.MatchValue, c.BasePool = m.Value, pool
		pool = "$" + c.PoolVar
	}
	v.OtherCanaries = append(v.OtherCanaries, c)
	return pool, c.Split
}

// matchVar is the nginx variable a canary's match reads, and how the
// config's comments name it.
func matchVar(m *manifest.Match) (name, what string) {
	if m.Header != "" {
		return "http_" + strings.ReplaceAll(strings.ToLower(m.Header), "-", "_"), "header " + m.Header
	}
	return "cookie_" + m.Cookie, "cookie " + m.Cookie
}
