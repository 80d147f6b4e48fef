// Package stack derives the concrete set of containers SwiftDeploy should run
// from a manifest. It is pure: the same inputs always give the same Stack,
// so renderers and the reconciler agree on names and hashes.
package stack

import (
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// Tracks of application containers.
const (
	TrackStable = "stable"
	TrackCanary = "canary"
)

// Roles of owned containers.
const (
	RoleApp   = "app"
	RoleNginx = "nginx"
)

// ConfigDir is where the nginx container sees its configuration directory.
// A directory (not a file) is mounted so that atomically renamed files are
// seen by the container.
const ConfigDir = "/etc/swiftdeploy"

// nginx reports the configuration its workers have loaded (not the file on
// disk, which may be newer) on a Unix socket: NginxStatusSocket in
// NginxRunDir inside the nginx container, answering GET NginxStatusPath.
// The container needs NginxRunDir to exist and be writable, or nginx (and
// nginx -t) refuses to start; the daemon bind-mounts a host directory
// there to reach the socket.
const (
	NginxRunDir       = "/run/swiftdeploy"
	NginxStatusSocket = "nginx.sock"
	NginxStatusPath   = "/swiftdeploy/config"
	// NginxHoldSocket, in ConfigDir, is where a paused front door parks
	// requests: swiftdeployd listens on it and never accepts. ConfigDir,
	// not NginxRunDir: nginx's workers (nobody) must reach it, and the run
	// directory is closed to other users. A read-only mount does not stop
	// a connect to a socket.
	NginxHoldSocket = "hold.sock"
)

// Stack is the desired set of containers for one project.
type Stack struct {
	Project string
	Network manifest.Network
	// Stable and Canary hold the application containers of each track,
	// ordered by replica number. Canary is empty when no canary runs.
	Stable []App
	Canary []App
	// CanaryWeight is the percentage of traffic sent to the canary track
	// (0 when Canary is empty).
	CanaryWeight int
	Nginx        Nginx
	// ProxyTimeout and the health path are used by the nginx renderer.
	ProxyTimeout string
	MetricsPath  string
	// FrontDoor is how nginx treats requests (nginx.conf only: no
	// container changes with it).
	FrontDoor FrontDoor
	// Services are the services of a named-form manifest, in start order
	// (every service after the accessories it depends on); nil in the
	// seed form. Their containers are in Stable too, in the same order,
	// so what does not care about services (names, ownership, the plan's
	// starts and removals) sees every container.
	Services []Service `json:",omitempty"`
	// CanaryService is the named service Canary belongs to ("" in the
	// seed form, and when the primary runs no canary): Canary and
	// CanaryWeight are always the primary's canary.
	CanaryService string `json:",omitempty"`
	// Primary is the named service the daemon's canary, promotion and
	// live figures are about (manifest.Primary); "" in the seed form.
	Primary string `json:",omitempty"`
	// OtherCanaries are the canaries of named web services other than
	// the primary, in start order; the primary's is Canary, CanaryWeight
	// and CanaryService above, never in here, so that a stack with one
	// canary reads (and is recorded) as it did before several could run.
	// Read one service's canary with CanaryOf, every one with
	// CanaryServices and Canaries.
	OtherCanaries []ServiceCanary `json:",omitempty"`
}

// ServiceCanary is the canary of one named web service.
type ServiceCanary struct {
	Service string
	// Apps are its containers, ordered by replica number.
	Apps []App
	// Weight is the percentage of the service's requests nginx sends to
	// it, split on their own: each service's clients are drawn apart.
	Weight int
	// Match sends the service's requests that carry it to the canary
	// whatever the weight (the primary's is FrontDoor.Match).
	Match *manifest.Match `json:",omitempty"`
}

// Service is one service of the named form and its containers.
type Service struct {
	Name      string
	Kind      string // manifest.KindWeb, KindWorker or KindAccessory
	Route     Route  // web services only
	DependsOn []string
	Stable    []App
	// Judge, on a worker with services.NAME.metrics, is how its new
	// revision is judged on its own figures before the old containers
	// go; nil for a service judged healthy by running (or probed).
	Judge *Judge `json:",omitempty"`
}

// Judge is how a worker's new revision is judged: its containers'
// Prometheus endpoint (Port, Path) scraped every Interval over Window,
// the canary-safety policy over the figures, at least MinRequests
// requests (policy.min_requests) for them to count.
type Judge struct {
	Port        int
	Path        string
	Interval    time.Duration
	Window      time.Duration
	MinRequests int
}

// Route is where nginx sends a web service's requests.
type Route struct {
	Host   string // "" for any host
	Prefix string // "/" for every path
	Strip  bool   // remove Prefix before passing the request on
}

// Routed reports whether nginx sends the service requests.
func (s Service) Routed() bool { return s.Kind == manifest.KindWeb }

// FrontDoor is the request handling of the nginx front door.
type FrontDoor struct {
	ClientMaxBodySize string // nginx size syntax; "" renders nginx's default
	RequestBuffering  bool
	ResponseBuffering bool
	// Refused are the path prefixes answered 403 (manifest.RefusedPrefixes).
	// The renderer refuses manifest.AlwaysDenied whatever this holds.
	Refused []string
	// StickyCookie names the cookie a canary split hashes.
	StickyCookie string
	// TrustedProxies are masked CIDRs of peers believed about the client.
	TrustedProxies []string
	ProxyProtocol  bool
	// Match sends matching requests to the canary whatever the weight.
	Match *manifest.Match
	// Traffic is the operator's hold on traffic (swiftctl traffic).
	Traffic Traffic
	// DrainTimeout bounds how long a replaced container is kept for the
	// connections still open on it (WebSockets) to close by themselves.
	DrainTimeout time.Duration
}

// Traffic modes: TrafficRun passes requests to the app; TrafficPause
// holds them until resumed (up to Traffic.Max); TrafficStop answers 503.
const (
	TrafficRun   = ""
	TrafficPause = "pause"
	TrafficStop  = "stop"
)

// Traffic is what the front door does with requests for the app.
type Traffic struct {
	Mode    string
	Message string        // TrafficStop: the 503's body
	Max     time.Duration // TrafficPause: how long a request is held
}

// Nginx is the front-door container.
type Nginx struct {
	Name  string
	Image string
	Port  int // published host port, also the listen port inside
	// Bind is the host address Port is published on, in canonical form
	// (manifest.DefaultNginxBind, "127.0.0.1", "::1").
	Bind string
	// TLS is the HTTPS side of the front door; nil without nginx.tls.
	TLS  *TLS
	Hash string
}

// TLS is what nginx needs to serve HTTPS (manifest nginx.tls, and the
// certificate the daemon's store holds for it).
type TLS struct {
	Port  int // published HTTPS port, also the listen port inside
	Hosts []string
	// Redirect sends plain HTTP to HTTPS once Cert is set.
	Redirect bool
	// ACME answers HTTP-01 challenges on the plain port from the webroot
	// the daemon writes (ConfigDir/TLSWebroot).
	ACME bool
	// Cert is the id of the certificate in the store (ConfigDir/TLSDir);
	// "" while none is there yet (ACME before its first issuance): nginx
	// then serves plain HTTP and answers the challenges only.
	Cert string
}

// Where, under ConfigDir, the certificate store and the ACME webroot live:
// inside nginx's configuration mount, so that a new certificate or a
// challenge answer is seen by the running nginx without a new container.
const (
	TLSDir     = "tls"
	TLSWebroot = "acme"
)
