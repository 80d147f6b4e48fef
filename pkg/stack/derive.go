package stack

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

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
