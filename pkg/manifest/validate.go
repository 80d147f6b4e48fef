package manifest

import (
	"fmt"
	"strings"
)

// Problem is one validation failure, naming the field path and bad value.
type Problem struct {
	Field string `json:"field"`
	Msg   string `json:"message"`
}

func (p Problem) String() string { return p.Field + ": " + p.Msg }

// ValidationError collects every problem found in a manifest.
type ValidationError struct {
	Problems []Problem `json:"problems"`
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid manifest:\n  " + strings.Join(lines, "\n  ")
}

// decodeProblem turns a YAML/JSON decoding error into a Problem.
// TODO(manifest): map json field errors to field paths.
func decodeProblem(err error) Problem {
	return Problem{Field: "(file)", Msg: err.Error()}
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil.
func (m *Manifest) Validate() error {
	var ps []Problem
	add := func(field, format string, a ...any) {
		ps = append(ps, Problem{Field: field, Msg: fmt.Sprintf(format, a...)})
	}
	if m.Services.Image == "" {
		add("services.image", "required")
	}
	if m.Services.Port < 1 || m.Services.Port > 65535 {
		add("services.port", "must be 1-65535, got %d", m.Services.Port)
	}
	if m.Nginx.Image == "" {
		add("nginx.image", "required")
	}
	if m.Nginx.Port < 1 || m.Nginx.Port > 65535 {
		add("nginx.port", "must be 1-65535, got %d", m.Nginx.Port)
	}
	if m.Network.Name == "" {
		add("network.name", "required")
	}
	if len(ps) > 0 {
		return &ValidationError{Problems: ps}
	}
	return nil
}
