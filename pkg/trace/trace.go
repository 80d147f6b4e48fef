// Package trace records the timed steps of one reconcile (a manifest event,
// the debounce, observing, planning, the gate, each container's create and
// start, the health checks, the nginx reload...), so that an operator and
// the rollout benchmark can see where a rollout's time goes.
//
// A Trace travels in the context: code that wants to record a step asks
// From(ctx) and records nothing when there is no trace (every method is a
// no-op on a nil *Trace). Recording is an append under a mutex, cheap enough
// to stay on in production.
package trace

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Span is one step: Start == End for an instant (a mark).
type Span struct {
	Step   string    `json:"step"`
	Target string    `json:"target,omitempty"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// Note is a detail: how many polls a wait took, an error.
	Note string `json:"note,omitempty"`
}

// Duration is how long the step took.
func (s Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Trace collects the spans of one reconcile. Safe for concurrent use.
type Trace struct {
	now   func() time.Time
	mu    sync.Mutex
	spans []Span
}

// New returns an empty trace on the wall clock.
func New() *Trace { return &Trace{now: time.Now} }

// Begin starts a step and returns the function that ends it, with an
// optional note (the first one given is kept).
func (t *Trace) Begin(step, target string) func(note ...string) {
	if t == nil {
		return func(...string) {}
	}
	start := t.now()
	return func(note ...string) {
		n := ""
		if len(note) > 0 {
			n = note[0]
		}
		t.Add(Span{Step: step, Target: target, Start: start, End: t.now(), Note: n})
	}
}

// Mark records an instant.
func (t *Trace) Mark(step, target string) {
	if t == nil {
		return
	}
	at := t.now()
	t.Add(Span{Step: step, Target: target, Start: at, End: at})
}

// Add records a span measured elsewhere (e.g. a file event that happened
// before the reconcile began).
func (t *Trace) Add(s Span) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.spans = append(t.spans, s)
	t.mu.Unlock()
}

// Spans returns the recorded spans ordered by start, then end (steps that
// ran in parallel keep their order of recording on ties).
func (t *Trace) Spans() []Span {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	out := append([]Span(nil), t.spans...)
	t.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return out[i].End.Before(out[j].End)
	})
	return out
}

// Len is the number of spans recorded.
func (t *Trace) Len() int {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.spans)
}

type key struct{}

// With returns ctx carrying t.
func With(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, key{}, t)
}

// From returns the trace ctx carries, or nil (on which every method is a
// no-op).
func From(ctx context.Context) *Trace {
	t, _ := ctx.Value(key{}).(*Trace)
	return t
}

// Begin is From(ctx).Begin(step, target).
func Begin(ctx context.Context, step, target string) func(note ...string) {
	return From(ctx).Begin(step, target)
}

// Mark is From(ctx).Mark(step, target).
func Mark(ctx context.Context, step, target string) { From(ctx).Mark(step, target) }
