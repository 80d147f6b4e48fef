package trace

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock advances by one millisecond on every reading.
func fakeClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

func TestSpansInOrderWithNotes(t *testing.T) {
	tr := &Trace{now: fakeClock()}
	ctx := With(context.Background(), tr)
	endOuter := Begin(ctx, "observe", "")
	endInner := Begin(ctx, "observe: containers", "demo")
	endInner()
	Mark(ctx, "healthy", "app-1")
	endOuter("3 polls", "ignored")
	ev := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tr.Add(Span{Step: "manifest event", Start: ev, End: ev})

	got := tr.Spans()
	want := []struct {
		step, target, note string
		dur                time.Duration
	}{
		{"manifest event", "", "", 0},
		{"observe", "", "3 polls", 4 * time.Millisecond},
		{"observe: containers", "demo", "", time.Millisecond},
		{"healthy", "app-1", "", 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d spans, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Step != w.step || g.Target != w.target || g.Note != w.note {
			t.Errorf("span %d = %+v, want step %q target %q note %q", i, g, w.step, w.target, w.note)
		}
		if g.Duration() != w.dur {
			t.Errorf("span %d (%s) took %s, want %s", i, g.Step, g.Duration(), w.dur)
		}
	}
}

// Without a trace in the context nothing is recorded and nothing panics.
func TestNilTraceIsANoOp(t *testing.T) {
	ctx := context.Background()
	Begin(ctx, "x", "")("note")
	Mark(ctx, "y", "")
	var tr *Trace
	tr.Add(Span{Step: "z"})
	if tr.Len() != 0 || tr.Spans() != nil || From(ctx) != nil {
		t.Fatal("a nil trace recorded something")
	}
}

func TestConcurrentRecording(t *testing.T) {
	tr := New()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { tr.Begin("start", "c")() })
	}
	wg.Wait()
	if tr.Len() != 50 {
		t.Fatalf("recorded %d spans, want 50", tr.Len())
	}
}
