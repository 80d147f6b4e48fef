// Package stack derives the concrete set of containers SwiftDeploy should run
// from a manifest. It is pure: the same inputs always give the same Stack,
// so renderers and the reconciler agree on names and hashes.
package stack

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
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

// CanaryOf returns the canary containers of named service name (the
// seed's single service for "") and the weight they take; nil and 0 when
// it runs none.
func (s Stack) CanaryOf(name string) ([]App, int) {
	if c := s.otherCanary(name); c != nil {
		return c.Apps, c.Weight
	}
	if name == s.CanaryService && len(s.Canary) > 0 {
		return s.Canary, s.CanaryWeight
	}
	return nil, 0
}

// CanaryMatch is the match of named service name's canary (nil for none).
func (s Stack) CanaryMatch(name string) *manifest.Match {
	if c := s.otherCanary(name); c != nil {
		return c.Match
	}
	if name == s.CanaryService && len(s.Canary) > 0 {
		return s.FrontDoor.Match
	}
	return nil
}

func (s Stack) otherCanary(name string) *ServiceCanary {
	for i := range s.OtherCanaries {
		if s.OtherCanaries[i].Service == name && name != "" {
			return &s.OtherCanaries[i]
		}
	}
	return nil
}

// CanaryServices names the services that run a canary: the primary's
// (CanaryService, "" for the seed's) first, then the others in start
// order.
func (s Stack) CanaryServices() []string {
	var out []string
	if len(s.Canary) > 0 {
		out = append(out, s.CanaryService)
	}
	for _, c := range s.OtherCanaries {
		out = append(out, c.Service)
	}
	return out
}

// Canaries returns every canary container: the primary's (Canary) first,
// then the other services'.
func (s Stack) Canaries() []App {
	out := append([]App(nil), s.Canary...)
	for _, c := range s.OtherCanaries {
		out = append(out, c.Apps...)
	}
	return out
}

// MainStable is the stable containers of the primary service: the seed's
// Stable, or the primary named service's.
func (s Stack) MainStable() []App {
	if svc := s.Service(s.Primary); s.Primary != "" && svc != nil {
		return svc.Stable
	}
	return s.Stable
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

// Service returns the named service name, or nil.
func (s Stack) Service(name string) *Service {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
}

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

// App is one application container.
type App struct {
	Name       string // container name, also its DNS name on the network
	Image      string
	Track      string
	Replica    int
	Port       int               // 0 for a worker (and an accessory without one)
	Env        map[string]string // includes PORT and MODE (web), MODE (worker)
	CPUs       float64
	Memory     string
	HealthPath string // "" for a service judged healthy by running

	// What the container needs (manifest container.go). New fields are
	// omitted from the hash while empty, so that containers of a manifest
	// without them keep the hash they had before the fields existed.
	Command    []string          `json:",omitempty"`
	Entrypoint []string          `json:",omitempty"`
	User       string            `json:",omitempty"`
	WorkingDir string            `json:",omitempty"`
	Volumes    []manifest.Volume `json:",omitempty"`
	// Health holds the timings as the manifest writes them; nil is the
	// defaults (see Timings).
	Health    *manifest.Health  `json:",omitempty"`
	StopGrace manifest.Duration `json:",omitempty"`
	// EnvFiles and Secrets are the manifest's paths, relative to its
	// directory or absolute; FilesDigest is the keyed digest of their
	// content, so a changed file gives a new hash without its content
	// being anywhere in the stack.
	EnvFiles    []string          `json:",omitempty"`
	Secrets     []manifest.Secret `json:",omitempty"`
	FilesDigest string            `json:",omitempty"`
	// Service and Kind name the service of a named-form manifest ("" in
	// the seed form, which leaves them out of the hash: the seed's
	// containers keep their names). Other services reach its containers
	// by the service name, a network alias.
	Service string `json:",omitempty"`
	Kind    string `json:",omitempty"`
	// Hash covers everything that requires replacing the container when it
	// changes (image, port, env, limits, track); replica count is left out.
	Hash string
}

// Addr is the host:port nginx uses to reach the container.
func (a App) Addr() string { return a.Name + ":" + strconv.Itoa(a.Port) }

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

// Options are decisions the daemon recorded that refine the manifest.
type Options struct {
	// StableImage, when set, overrides services.image: a promoted canary
	// image that the manifest has not caught up with yet.
	StableImage string
	// ServiceImages, in the named form, override services.NAME.image of
	// services other than the primary (which takes StableImage): a
	// release of that service brought back (swiftctl rollback SERVICE
	// --to) that the manifest has not moved past yet.
	ServiceImages map[string]string
	// NoCanary suppresses the manifest's canary (after a rollback).
	NoCanary bool
	// CanaryWeight, when not 0, is the weight of the rollout step in
	// force (services.canary.steps). It only changes nginx's split, never
	// a container: weights are not in any container's hash.
	CanaryWeight int
	// Canaries are NoCanary and CanaryWeight for the canaries of named
	// services other than the primary (which takes the two fields
	// above), by service name; a service left out takes its manifest's.
	Canaries map[string]CanaryOptions
	// TLSCert is the id of the certificate nginx.tls serves, from the
	// daemon's certificate store ("" while there is none).
	TLSCert string
	// Traffic is the operator's hold on traffic in force.
	Traffic Traffic
}

// CanaryOptions refine one named service's canary as Options.NoCanary
// and Options.CanaryWeight refine the primary's.
type CanaryOptions struct {
	// Weight, when not 0, is the weight of the rollout step in force.
	Weight int
	// Off suppresses the service's canary (after a rollback).
	Off bool
}

// FromManifest computes the desired stack.
func FromManifest(m *manifest.Manifest, o Options) Stack {
	s := Stack{
		Project:      m.Project,
		Network:      m.Network,
		ProxyTimeout: fmt.Sprintf("%ds", int(m.Nginx.ProxyTimeout.D().Seconds())),
		MetricsPath:  m.Metrics.Path,
		FrontDoor:    frontDoor(&m.Nginx, o.Traffic),
	}
	if m.IsNamed() {
		named(&s, m, o)
	} else {
		seed(&s, m, o)
	}
	s.Nginx = Nginx{
		Name:  m.Project + "-nginx",
		Image: m.Nginx.Image,
		Port:  m.Nginx.Port,
		Bind:  canonicalAddr(m.Nginx.Bind),
	}
	if t := m.Nginx.TLS; t != nil {
		s.Nginx.TLS = &TLS{
			Port:     t.Port,
			Hosts:    append([]string(nil), t.Hosts...),
			Redirect: t.RedirectHTTP,
			ACME:     t.ACME != nil,
			Cert:     o.TLSCert,
		}
	}
	// A published address is fixed when the container is created, so a
	// bind change must replace nginx: it is in the hash. At the default it
	// is left out, so that the hash, and the running nginx, of a stack from
	// before nginx.bind existed stay the same. So is the HTTPS port, the
	// other published port; the certificate is not: a new one is loaded by
	// a reload.
	spec := struct {
		Image   string
		Port    int
		Bind    string `json:",omitempty"`
		TLSPort int    `json:",omitempty"`
	}{Image: s.Nginx.Image, Port: s.Nginx.Port, Bind: s.Nginx.Bind}
	if s.Nginx.TLS != nil {
		spec.TLSPort = s.Nginx.TLS.Port
	}
	if spec.Bind == manifest.DefaultNginxBind {
		spec.Bind = ""
	}
	s.Nginx.Hash = hash(spec)
	return s
}

// seed fills the stack of the seed's single service.
func seed(s *Stack, m *manifest.Manifest, o Options) {
	s.Stable = tracks(s, m.Project, "", &m.Services, o)
}

// tracks returns the stable containers of the service that the options
// refine (the primary, manifest.Primary), and sets the stack's canary
// when it runs one.
func tracks(s *Stack, project, name string, svc *manifest.Services, o Options) []App {
	if c := svc.Canary; c != nil && c.Match != nil {
		match := *c.Match
		s.FrontDoor.Match = &match
	}
	stableImage := svc.Image
	if o.StableImage != "" {
		stableImage = o.StableImage
	}
	stable := apps(project, name, svc, TrackStable, stableImage, svc.Replicas)
	if c, ok := canary(project, name, svc, stableImage, CanaryOptions{Weight: o.CanaryWeight, Off: o.NoCanary}); ok {
		s.CanaryService = name
		s.Canary, s.CanaryWeight = c.Apps, c.Weight
	}
	return stable
}

// canary is the canary service svc runs beside stable containers of
// stableImage, refined by o, if it runs one.
func canary(project, name string, svc *manifest.Services, stableImage string, o CanaryOptions) (ServiceCanary, bool) {
	c := svc.Canary
	if c == nil || o.Off || c.Image == stableImage {
		return ServiceCanary{}, false
	}
	out := ServiceCanary{Service: name, Apps: apps(project, name, svc, TrackCanary, c.Image, c.Replicas), Weight: c.Weight}
	if len(c.Steps) > 0 { // a stepped canary starts at its first step
		out.Weight = c.Steps[0].Weight
	}
	if o.Weight > 0 {
		out.Weight = o.Weight
	}
	if c.Match != nil {
		m := *c.Match
		out.Match = &m
	}
	return out, true
}

// named fills the stack of a named-form manifest: every service's stable
// containers, in start order. The primary service (the one with a canary)
// takes the options, as the seed's single service does; the others take
// only their image override (ServiceImages).
func named(s *Stack, m *manifest.Manifest, o Options) {
	primary, _ := m.Primary()
	s.Primary = primary
	for _, name := range m.StartOrder() {
		spec := m.Named[name]
		svc := Service{Name: name, Kind: spec.EffectiveKind(), DependsOn: append([]string(nil), spec.DependsOn...)}
		if sm := spec.Metrics; sm != nil && svc.Kind == manifest.KindWorker {
			svc.Judge = &Judge{Port: sm.Port, Path: sm.Path, Interval: m.Metrics.ScrapeInterval.D(), Window: m.Metrics.Window.D(), MinRequests: m.Policy.MinRequests}
		}
		if svc.Routed() {
			svc.Route = Route{Host: spec.Route.HostName(), Prefix: spec.Route.Prefix(), Strip: spec.Route != nil && spec.Route.StripPrefix}
		}
		if name == primary {
			svc.Stable = tracks(s, m.Project, name, spec, o)
		} else {
			image := spec.Image
			if o.ServiceImages[name] != "" {
				image = o.ServiceImages[name]
			}
			svc.Stable = apps(m.Project, name, spec, TrackStable, image, spec.Replicas)
		}
		s.Services = append(s.Services, svc)
		s.Stable = append(s.Stable, svc.Stable...)
		// Another web service's canary goes to OtherCanaries, refined by
		// Options.Canaries. It is compared with the image the stable
		// containers run (an override's, when one applies), as the
		// primary's is.
		if name != primary && svc.Routed() && len(svc.Stable) > 0 {
			if c, ok := canary(m.Project, name, spec, svc.Stable[0].Image, o.Canaries[name]); ok {
				s.OtherCanaries = append(s.OtherCanaries, c)
			}
		}
	}
}

func frontDoor(n *manifest.Nginx, t Traffic) FrontDoor {
	f := FrontDoor{
		ClientMaxBodySize: n.ClientMaxBodySize,
		RequestBuffering:  n.RequestBuffering,
		ResponseBuffering: n.ResponseBuffering,
		Refused:           n.RefusedPrefixes(),
		StickyCookie:      n.StickyCookie,
		ProxyProtocol:     n.ProxyProtocol,
		Traffic:           t,
		DrainTimeout:      n.DrainTimeout.D(),
	}
	for _, c := range n.TrustedProxies {
		if p, err := manifest.ParseTrustedProxy(c); err == nil { // validated
			f.TrustedProxies = append(f.TrustedProxies, p.String())
		}
	}
	return f
}

// canonicalAddr writes an IP literal the one way netip does ("::1" for
// "0:0:0:0:0:0:0:1"), so spellings of one address give one hash. Anything
// else is returned as is, for the renderer to refuse.
func canonicalAddr(s string) string {
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.String()
	}
	return s
}

// apps are the containers of one track of service svc ("" for the seed's
// single service, whose names and hashes stay what they always were).
func apps(project, service string, svc *manifest.Services, track, image string, replicas int) []App {
	kind := svc.EffectiveKind()
	env := map[string]string{}
	for k, v := range svc.Env {
		env[k] = v
	}
	// An accessory's image is someone else's (a database): nothing is
	// added to what the manifest sets.
	if kind != manifest.KindAccessory {
		env["MODE"] = track
	}
	if kind == manifest.KindWeb {
		env["PORT"] = strconv.Itoa(svc.Port)
	}
	spec := App{
		Image:      image,
		Track:      track,
		Port:       svc.Port,
		Env:        env,
		CPUs:       svc.Resources.CPUs,
		Memory:     svc.Resources.Memory,
		HealthPath: svc.HealthPath,
	}
	prefix := project
	if service != "" {
		spec.Service, spec.Kind = service, kind
		prefix += "-" + service
	}
	withContainer(&spec, svc)
	spec.Hash = hash(spec)
	out := make([]App, replicas)
	for i := range out {
		a := spec
		a.Replica = i + 1
		a.Name = fmt.Sprintf("%s-%s-%s-%d", prefix, track, spec.Hash[:8], a.Replica)
		out[i] = a
	}
	return out
}

// hash digests v's JSON form; encoding/json sorts map keys, so it is stable.
func hash(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("stack: hash: %v", err)) // only plain data is hashed
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Apps returns every application container, stable first, then the
// canaries (Canaries).
func (s Stack) Apps() []App {
	return append(append([]App(nil), s.Stable...), s.Canaries()...)
}

// Images returns each image the stack runs once: nginx first, then the
// app tracks.
func (s Stack) Images() []string {
	out := []string{s.Nginx.Image}
	seen := map[string]bool{s.Nginx.Image: true}
	for _, a := range s.Apps() {
		if !seen[a.Image] {
			seen[a.Image] = true
			out = append(out, a.Image)
		}
	}
	return out
}

// SortedEnv returns env as KEY=VALUE strings in key order.
func SortedEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// withContainer copies what the container needs from service s.
func withContainer(a *App, s *manifest.Services) {
	a.Command = append([]string(nil), s.Command...)
	a.Entrypoint = append([]string(nil), s.Entrypoint...)
	a.User, a.WorkingDir = s.User, s.WorkingDir
	a.Volumes = append([]manifest.Volume(nil), s.Volumes...)
	if s.Health != nil {
		h := *s.Health
		a.Health = &h
	}
	a.StopGrace = s.StopGracePeriod
	a.EnvFiles = append([]string(nil), s.EnvFile...)
	a.Secrets = append([]manifest.Secret(nil), s.Secrets...)
	a.FilesDigest = s.FilesDigest
}

// Timings are the app's health timings with the defaults applied.
func (a App) Timings() manifest.Health {
	s := manifest.Services{HealthPath: a.HealthPath, Health: a.Health}
	return s.HealthTimings()
}

// Grace is how long the app's container has between SIGTERM and SIGKILL.
func (a App) Grace() time.Duration {
	s := manifest.Services{StopGracePeriod: a.StopGrace}
	return s.StopGrace()
}

// VolumeName is the Docker volume of a service's named volume: prefixed
// with the project as compose prefixes it, so that `docker compose -p
// PROJECT` over the rendered file finds the same volume.
func VolumeName(project, name string) string { return project + "_" + name }

// Volumes returns the names (VolumeName) of the named volumes the stack's
// apps mount, each once, in order.
func (s Stack) Volumes() []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range s.Apps() {
		for _, v := range a.Volumes {
			if n := VolumeName(s.Project, v.Source); v.Type == manifest.VolumeNamed && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}
