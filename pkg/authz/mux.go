package authz

import (
	"net/http"
	"slices"
)

// Mux is an http.ServeMux that remembers every pattern registered on it,
// so that the route table can be checked against what the server really
// serves: a route registered here without an entry in the table is found
// by a test (pkg/controller's route walk) instead of being silently admin-only
// or, worse, silently open.
type Mux struct {
	*http.ServeMux
	patterns []string
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{ServeMux: http.NewServeMux()} }

// Handle registers h for pattern. When h is itself a *Mux (a fallback such
// as "/" handing the rest to another mux), its patterns count as served
// here too.
func (m *Mux) Handle(pattern string, h http.Handler) {
	m.ServeMux.Handle(pattern, h)
	if sub, ok := h.(*Mux); ok {
		for _, p := range sub.patterns {
			if !slices.Contains(m.patterns, p) {
				m.patterns = append(m.patterns, p)
			}
		}
		return
	}
	if !slices.Contains(m.patterns, pattern) {
		m.patterns = append(m.patterns, pattern)
	}
}

// HandleFunc registers f for pattern.
func (m *Mux) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(f))
}

// Patterns returns the patterns registered, in order ("POST /v1/deploy").
func (m *Mux) Patterns() []string { return slices.Clone(m.patterns) }
