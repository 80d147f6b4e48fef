package render

import (
	_ "embed"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/accesslog"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

//go:embed templates/nginx.conf.tmpl
var nginxTemplateText string

var nginxTemplate = template.Must(template.New("nginx.conf").Option("missingkey=error").Parse(nginxTemplateText))

// Upstream group names in nginx.conf; they show up as pool= in the access
// log, whose format pkg/accesslog owns.
const (
	poolStable = accesslog.PoolStable
	poolCanary = accesslog.PoolCanary
	poolSplit  = "$swiftdeploy_split" // the split_clients variable
	poolMatch  = "$swiftdeploy_pool"  // the services.canary.match map
)

// nginxView is what the template sees: every value already checked and
// formatted, so the template holds no logic beyond layout.
type nginxView struct {
	Project        string
	Listen         int
	Stable         []string // host:port of each stable container
	Canary         []string
	CanaryWeight   int
	Split          bool   // emit split_clients
	StablePool     string // the upstreams split_clients and the match map choose from
	CanaryPool     string
	Pool           string // proxy_pass target: an upstream name or the split variable
	LogFormat      string // accesslog.Format
	RevisionVar    string // accesslog.RevisionVar
	StableRevision string // config hash of the stable containers, for the access log
	CanaryRevision string
	MaxFails       int
	FailTimeout    string
	ConnectTimeout string
	ProxyTimeout   string
	MetricsPath    string
	Blocked        []string // location arguments ("^~ /chaos", "= /debug") refused with 403
	BlockedRegex   string

	// The front door (stack.FrontDoor), formatted for nginx.
	BodySize          string
	RequestBuffering  string // on or off
	ResponseBuffering string
	StickyCookie      string
	MatchVar          string // the variable services.canary.match reads ("" for none)
	MatchWhat         string // for the comment: "header X-Canary"
	MatchValue        string
	BasePool          string // where the match map sends everything else
	TrustedProxies    []string
	ProxyProtocol     bool
	RealIPHeader      string
	XFF, XFP          string // X-Forwarded-For and -Proto sent to the app
	Traffic           string // stack.TrafficPause, TrafficStop or ""
	StopMessage       string
	RetryAfter        int    // seconds, on a 503 from stop or an expired hold
	HoldMax           string // nginx time
	HoldSocket        string // path of the socket a paused request waits on
	DrainTimeout      string // worker_shutdown_timeout; "" for none
	StatusListen      string // unix:<socket path>
	StatusPath        string
	Status            LoadedConfig // what the status socket reports
	StatusBody        string       // Status as the nginx string it returns
	StatusSets        []statusSet  // the variables StatusBody refers to
	TLS               *tlsView     // nil without nginx.tls

	// The named form (several services): an upstream per web service and
	// a server per route host; nil in the seed form, whose single server
	// routes everything to Pool.
	Upstreams []upstreamView
	Servers   []serverView
	// Sticky: some split hashes the per-client cookie (Split, or one of
	// OtherCanaries'), so its maps are emitted.
	Sticky bool
	// OtherCanaries are the splits and matches of the named services
	// other than the primary that route a canary (stack.OtherCanaries);
	// the primary's are Split, MatchVar and the fields beside them.
	OtherCanaries []otherCanaryView
}

// upstreamView is one web service's upstream group (named form).
type upstreamView struct {
	Name, Service, Track, Revision string
	Servers                        []string
}

// serverView is one server block: the seed's catch-all, or, in the named
// form, one per route host (and the catch-all "_" for the rest).
type serverView struct {
	*nginxView
	ServerName string
	Named      bool
	Routes     []routeView
	NoRoot     bool // no route serves "/": answer 404 there
}

// routeView is one web service's route inside a server.
type routeView struct {
	Service   string
	What      string // for the comment
	Name      string // the named location a paused request resumes at
	Pool      string
	Strip     bool
	Rewrite   string   // regex and replacement that strip the prefix
	SetCookie bool     // the route splits by the sticky cookie
	Locations []string // location arguments
}

// tlsView is the HTTPS side of the template (nginx.tls).
type tlsView struct {
	Port int
	// Cert and Key are the paths nginx reads (inside its config mount);
	// empty while no certificate is there: no TLS listener yet.
	Cert, Key string
	Ciphers   string
	// RedirectServer: plain HTTP gets a server of its own that redirects.
	RedirectServer bool
	RedirectPort   string // ":8443", or "" for 443
	ACME           bool
	Webroot        string
}

// TLSCiphers are the TLS 1.2 suites offered: the ECDHE suites of Mozilla's
// "intermediate" server-side TLS configuration (forward secrecy, AEAD
// only). TLS 1.3 suites are all strong and are not restricted.
const TLSCiphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" +
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" +
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

// CertPaths are where nginx reads certificate id's chain and key.
func CertPaths(id string) (cert, key string) {
	dir := path.Join(stack.ConfigDir, stack.TLSDir)
	return path.Join(dir, id+".crt"), path.Join(dir, id+".key")
}

func tlsFor(t *stack.TLS) *tlsView {
	if t == nil {
		return nil
	}
	v := &tlsView{
		Port:    t.Port,
		Ciphers: TLSCiphers,
		ACME:    t.ACME,
		Webroot: path.Join(stack.ConfigDir, stack.TLSWebroot),
	}
	if t.Cert != "" {
		v.Cert, v.Key = CertPaths(t.Cert)
		v.RedirectServer = t.Redirect
	}
	if t.Port != 443 {
		v.RedirectPort = fmt.Sprintf(":%d", t.Port)
	}
	return v
}

// Nginx renders the nginx.conf for the stack (container names as upstream hosts).
func Nginx(s stack.Stack) ([]byte, error) {
	if err := checkStack(s); err != nil {
		return nil, fmt.Errorf("render nginx.conf: %w", err)
	}
	timeout, _ := proxyTimeout(s.ProxyTimeout) // checked above
	v := nginxView{
		Project:        s.Project,
		Listen:         s.Nginx.Port,
		Stable:         addrs(s.Stable),
		MaxFails:       3,
		FailTimeout:    "10s",
		ConnectTimeout: seconds(min(timeout, maxConnectTimeout)),
		ProxyTimeout:   seconds(timeout),
		MetricsPath:    s.MetricsPath,
		Blocked:        blockedLocations(manifest.RefusedPrefixes(s.FrontDoor.Refused)),
		BlockedRegex:   blockedRegex(manifest.RefusedPrefixes(s.FrontDoor.Refused)),
		Pool:           poolStable,
		StablePool:     poolStable,
		CanaryPool:     poolCanary,
		LogFormat:      accesslog.Format,
		RevisionVar:    accesslog.RevisionVar,
		StableRevision: trackRevision(s.Stable),
		StatusListen:   "unix:" + path.Join(stack.NginxRunDir, stack.NginxStatusSocket),
		StatusPath:     stack.NginxStatusPath,
		Status:         LoadedConfig{Weight: s.CanaryWeight, Stable: containerNames(s.Stable), Traffic: s.FrontDoor.Traffic},
		TLS:            tlsFor(s.Nginx.TLS),
	}
	if t := s.Nginx.TLS; t != nil {
		v.Status.Cert = t.Cert
	}
	frontDoorView(&v, s.FrontDoor)
	if s.FrontDoor.DrainTimeout >= time.Second {
		v.DrainTimeout = seconds(s.FrontDoor.DrainTimeout + shutdownSlack(s.Apps()))
	}
	if len(s.Services) > 0 {
		namedView(&v, s)
		out, err := renderWithRevision(v)
		if err != nil {
			return nil, fmt.Errorf("render nginx.conf for project %s: %w", s.Project, err)
		}
		return out, nil
	}
	// A canary with a match serves matching requests at any weight, 0
	// included, so its upstream is there whenever its containers are.
	match := s.FrontDoor.Match != nil && len(s.Canary) > 0
	if s.CanaryWeight > 0 || match {
		v.Canary = addrs(s.Canary)
		v.CanaryRevision = trackRevision(s.Canary)
		v.CanaryWeight = s.CanaryWeight
		v.Status.Canary = containerNames(s.Canary)
		switch s.CanaryWeight {
		case 0:
		case 100:
			v.Pool = poolCanary
		default:
			v.Split, v.Sticky = true, true
			v.Pool = poolSplit
		}
	}
	if match {
		m := s.FrontDoor.Match
		v.MatchVar, v.MatchWhat = matchVar(m)
		v.MatchValue = m.Value
		v.BasePool = v.Pool
		v.Pool = poolMatch
	}
	out, err := renderWithRevision(v)
	if err != nil {
		return nil, fmt.Errorf("render nginx.conf for project %s: %w", s.Project, err)
	}
	return out, nil
}

// namedView routes each web service of the named form: an upstream
// each, and its locations in the server of its host. A route without a
// host is served on every host, unless that host routes the same prefix
// itself: a route with a host wins over one without, and nginx picks the
// longest prefix.
func namedView(v *nginxView, s stack.Stack) {
	var anyHost []routeView
	byHost := map[string][]routeView{}
	prefixes := map[string]map[string]bool{}
	for _, svc := range s.Services {
		if !svc.Routed() {
			continue
		}
		pool := accesslog.PoolFor(svc.Name, stack.TrackStable)
		v.Upstreams = append(v.Upstreams, upstreamView{Name: pool, Service: svc.Name, Track: stack.TrackStable, Revision: trackRevision(svc.Stable), Servers: addrs(svc.Stable)})
		r := routeView{Service: svc.Name, Name: "route_" + strings.ReplaceAll(svc.Name, "-", "_"), Pool: pool, Strip: svc.Route.Strip}
		if svc.Name == s.CanaryService && len(s.Canary) > 0 {
			r.Pool, r.SetCookie = canaryView(v, s, svc.Name), v.Split
		} else if apps, _ := s.CanaryOf(svc.Name); len(apps) > 0 {
			r.Pool, r.SetCookie = otherCanaryRoute(v, s, svc.Name)
		}
		host := svc.Route.Host
		what := "every host"
		if host != "" {
			what = "host " + host
		}
		if p := svc.Route.Prefix; p == "/" {
			r.Locations = []string{"/"}
			r.What = what + ", every path"
		} else {
			r.Locations = []string{"= " + p, p + "/"}
			r.What = what + ", " + p + " and under it"
			if svc.Route.Strip {
				r.What += " (the prefix stripped)"
				r.Rewrite = "^" + regexp.QuoteMeta(p) + "/?(.*)$ /$1"
			}
		}
		if host == "" {
			anyHost = append(anyHost, r)
		} else {
			byHost[host] = append(byHost[host], r)
		}
		if prefixes[host] == nil {
			prefixes[host] = map[string]bool{}
		}
		prefixes[host][svc.Route.Prefix] = true
	}
	hosts := make([]string, 0, len(byHost))
	for h := range byHost {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	server := func(name string, routes []routeView) serverView {
		sort.Slice(routes, func(i, j int) bool { return routes[i].Locations[0] < routes[j].Locations[0] })
		srv := serverView{nginxView: v, ServerName: name, Named: true, Routes: routes, NoRoot: true}
		for _, r := range routes {
			if r.Locations[0] == "/" {
				srv.NoRoot = false
			}
		}
		return srv
	}
	// The catch-all comes first: nginx's default server for the port.
	v.Servers = append(v.Servers, server("_", append([]routeView(nil), anyHost...)))
	for _, h := range hosts {
		routes := append([]routeView(nil), byHost[h]...)
		for _, r := range anyHost {
			if p := strings.TrimPrefix(r.Locations[0], "= "); !prefixes[h][p] {
				routes = append(routes, r)
			}
		}
		v.Servers = append(v.Servers, server(h, routes))
	}
}

// trackRevision is the config hash of a track's containers: every
// container of a track is derived from one spec, so they share it.
func trackRevision(apps []stack.App) string {
	if len(apps) == 0 {
		return ""
	}
	return apps[0].Hash
}

func containerNames(apps []stack.App) []string {
	out := make([]string, len(apps))
	for i, a := range apps {
		out[i] = a.Name
	}
	return out
}

func addrs(apps []stack.App) []string {
	out := make([]string, len(apps))
	for i, a := range apps {
		out[i] = a.Addr()
	}
	return out
}

// seconds formats d in nginx's time syntax.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%ds", int(d/time.Second))
}

// blockedLocations turns the refused prefixes into location arguments. A
// prefix ending in "/" refuses a path segment, which takes two locations:
// the segment itself (= /debug) and everything under it (^~ /debug/).
func blockedLocations(prefixes []string) []string {
	var out []string
	for _, p := range prefixes {
		if segment, ok := strings.CutSuffix(p, "/"); ok {
			out = append(out, "= "+segment)
		}
		out = append(out, "^~ "+p)
	}
	return out
}

// blockedRegex matches any of the prefixes at the start of the URI, in any
// letter case once used with ~*: "/chaos" as a plain prefix, "/debug/" as
// the segment /debug alone or followed by a slash.
func blockedRegex(prefixes []string) string {
	alts := make([]string, len(prefixes))
	for i, p := range prefixes {
		if segment, ok := strings.CutSuffix(p, "/"); ok {
			alts[i] = regexp.QuoteMeta(strings.TrimPrefix(segment, "/")) + "(/|$)"
		} else {
			alts[i] = regexp.QuoteMeta(strings.TrimPrefix(p, "/"))
		}
	}
	return "^/(" + strings.Join(alts, "|") + ")"
}

// frontDoorView formats the request handling of the front door.
func frontDoorView(v *nginxView, f stack.FrontDoor) {
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	v.BodySize = f.ClientMaxBodySize
	if v.BodySize == "" {
		v.BodySize = "1m" // nginx's own default, for a hand-built stack
	}
	v.RequestBuffering = onOff(f.RequestBuffering)
	v.ResponseBuffering = onOff(f.ResponseBuffering)
	v.StickyCookie = f.StickyCookie
	if v.StickyCookie == "" {
		v.StickyCookie = manifest.DefaultStickyCookie
	}
	v.XFF, v.XFP = "$remote_addr", "$scheme"
	if len(f.TrustedProxies) > 0 {
		v.TrustedProxies = f.TrustedProxies
		v.ProxyProtocol = f.ProxyProtocol
		v.RealIPHeader = "X-Forwarded-For"
		if f.ProxyProtocol {
			// The PROXY header names the client; nothing else does.
			v.RealIPHeader = "proxy_protocol"
		} else {
			v.XFF, v.XFP = "$swiftdeploy_xff", "$swiftdeploy_xfp"
		}
	}
	v.Traffic = f.Traffic.Mode
	v.StopMessage = f.Traffic.Message
	if v.StopMessage == "" {
		v.StopMessage = DefaultStopMessage
	}
	v.RetryAfter = RetryAfterSeconds
	v.HoldMax = seconds(max(f.Traffic.Max, time.Second))
	v.HoldSocket = path.Join(stack.ConfigDir, stack.NginxHoldSocket)
}

// shutdownSlack is ShutdownSlack, or longer when a service's
// stop_grace_period is longer than the default's 10 s: the app's goodbye
// may come at any time in its grace.
func shutdownSlack(apps []stack.App) time.Duration {
	slack := ShutdownSlack
	for _, a := range apps {
		slack = max(slack, a.Grace()+ShutdownSlack-manifest.DefaultStopGracePeriod)
	}
	return slack
}

// ShutdownSlack is how long after nginx.drain_timeout an old nginx worker
// still holds the connections it serves. At the drain bound swiftdeployd
// stops the replaced container (SIGTERM, then its stop grace period,
// 10 s by default; a longer services.stop_grace_period lengthens the slack
// as much, see shutdownSlack): an app that says goodbye on its WebSockets (a close frame) is
// relayed to its clients, which see a clean close and reconnect to the new
// version. Cutting them at the bound itself would give every such client
// an abnormal close (1006). nginx closes what is still open after it.
const ShutdownSlack = 15 * time.Second

// DefaultStopMessage is the body of a stopped front door's 503 when
// swiftctl traffic stop is given no message.
const DefaultStopMessage = "Service temporarily unavailable"

// RetryAfterSeconds is the Retry-After a stopped or over-held request is
// answered with.
const RetryAfterSeconds = 30
