package stack

import "github.com/swiftdeploy/swiftdeploy/pkg/manifest"

// MainStable is the stable containers of the primary service: the seed's
// Stable, or the primary named service's.
func (s Stack) MainStable() []App {
	if svc := s.Service(s.Primary); s.Primary != "" && svc != nil {
		return svc.Stable
	}
	return s.Stable
}

// Service returns the named service name, or nil.
func (s Stack) Service(name string) *Service {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
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
