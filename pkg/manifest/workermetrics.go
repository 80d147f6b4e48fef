package manifest

import (
	yaml3 "go.yaml.in/yaml/v3"
)

// ServiceMetrics is a worker's own Prometheus endpoint
// (services.NAME.metrics). A worker has no port nginx routes to, so the
// endpoint's port is written here; the daemon scrapes it directly on the
// project network, never through nginx. With it, a worker's new revision
// is judged on its figures (the canary-safety policy over the app's
// standard families) before the old containers go; without it, a worker
// is judged healthy by running.
type ServiceMetrics struct {
	Port int `json:"port"`
	// Path defaults to DefaultMetricsPath, as metrics.path does.
	Path string `json:"path,omitempty"`
}

// DefaultMetricsPath is metrics.path, and services.NAME.metrics.path,
// when absent.
const DefaultMetricsPath = "/metrics"

// defaultServiceMetrics fills an absent path; one written (even empty)
// is kept, for validation to judge.
func defaultServiceMetrics(root *yaml3.Node, at string, sm *ServiceMetrics) {
	if sm != nil && lookup(root, at+".metrics.path") == nil {
		sm.Path = DefaultMetricsPath
	}
}

// serviceMetrics validates services.NAME.metrics: a worker's only. The
// path is requested by the daemon alone (no nginx location), so it is
// held to health_path's rules, not metrics.path's.
func (ps *problemList) serviceMetrics(at string, s *Services) {
	sm := s.Metrics
	if sm == nil {
		return
	}
	switch kind := s.EffectiveKind(); kind {
	case KindWorker:
	case KindWeb:
		ps.addf(at+".metrics", "only a worker has metrics of its own; a web service's are scraped at metrics.path on its port")
		return
	default:
		ps.addf(at+".metrics", "only a worker is judged on metrics of its own; an accessory is judged healthy by running")
		return
	}
	if sm.Port == 0 {
		ps.addf(at+".metrics.port", "required (1-65535): the port the worker serves its metrics on")
	} else {
		ps.intRange(at+".metrics.port", sm.Port, 1, 65535)
	}
	if sm.Path == "" {
		ps.addf(at+".metrics.path", "must not be empty: leave it out for %s", DefaultMetricsPath)
	} else {
		ps.urlPath(at+".metrics.path", sm.Path)
	}
}
