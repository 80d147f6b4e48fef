package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// t0 is the start of the repeat tests' timeline.
var t0 = time.Date(2026, 5, 6, 19, 6, 0, 0, time.UTC)

// step is one call on a Repeats: Append at (seconds after t0) when rec is
// set, else End(key), Flush or Sweep.
type step struct {
	at    time.Duration
	key   string
	rec   *Record
	end   bool
	flush bool
	sweep bool
}

func add(at time.Duration, key string, rec Record) step { return step{at: at, key: key, rec: &rec} }

func denied(reason string, codes ...string) Record {
	r := NewDecision("infrastructure", false, []string{reason}, map[string]any{"cpu_load": 4.8})
	r.Codes = codes
	return r
}

func deniedEvent(reason string) Record {
	return NewEvent(EventDeployDenied, "DENIED: "+reason)
}

// summarize writes each record as "what@time" plus "×count first..last"
// for a summary, which is all the tests compare.
func summarize(rs []Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		what := r.Message
		if r.Type == TypeDecision {
			what = strings.Join(r.Reasons, "; ")
		}
		s := fmt.Sprintf("%s@%s", what, r.Timestamp.Sub(t0))
		if r.Count > 0 {
			s += fmt.Sprintf(" ×%d %s..%s", r.Count, r.FirstSeen.Sub(t0), r.LastSeen.Sub(t0))
		}
		out[i] = s
	}
	return out
}

func TestRepeats(t *testing.T) {
	const busy, busier = "CPU load 2.4 per core (4.8 on 2 CPUs) above 2.0", "CPU load 2.6 per core (5.2 on 2 CPUs) above 2.0"
	tests := []struct {
		name  string
		steps []step
		want  []string
	}{
		{
			name: "the first is written, repeats counted, a different record ends the streak",
			steps: []step{
				add(0, "d", deniedEvent("a")), add(2*time.Second, "d", deniedEvent("a")),
				add(4*time.Second, "d", deniedEvent("a")), add(6*time.Second, "d", deniedEvent("b")),
			},
			want: []string{"DENIED: a@0s", "DENIED: a@6s ×3 0s..4s", "DENIED: b@6s"},
		},
		{
			name:  "a streak of one needs no summary",
			steps: []step{add(0, "d", deniedEvent("a")), add(time.Second, "d", deniedEvent("b")), {at: 2 * time.Second, flush: true}},
			want:  []string{"DENIED: a@0s", "DENIED: b@1s"},
		},
		{
			name: "End writes the summary; the same record then starts a new streak",
			steps: []step{
				add(0, "d", deniedEvent("a")), add(time.Second, "d", deniedEvent("a")),
				{at: 2 * time.Second, key: "d", end: true}, add(3*time.Second, "d", deniedEvent("a")),
				{at: 4 * time.Second, key: "d", end: true}, {at: 5 * time.Second, key: "nothing", end: true},
			},
			want: []string{"DENIED: a@0s", "DENIED: a@2s ×2 0s..1s", "DENIED: a@3s"},
		},
		{
			name: "keys are separate streaks; Flush ends them all, oldest first",
			steps: []step{
				add(0, "k2", deniedEvent("c")), add(time.Second, "k1", deniedEvent("a")),
				add(2*time.Second, "k1", deniedEvent("a")), add(3*time.Second, "k2", deniedEvent("c")),
				add(4*time.Second, "k2", deniedEvent("c")), {at: 5 * time.Second, flush: true},
			},
			want: []string{"DENIED: c@0s", "DENIED: a@1s", "DENIED: c@5s ×3 0s..4s", "DENIED: a@5s ×2 1s..2s"},
		},
		{
			name: "a streak is summarised every MaxInterval while it lasts",
			steps: []step{
				add(0, "d", deniedEvent("a")), add(5*time.Minute, "d", deniedEvent("a")),
				add(10*time.Minute, "d", deniedEvent("a")), add(11*time.Minute, "d", deniedEvent("a")),
				{at: 12 * time.Minute, flush: true},
			},
			want: []string{"DENIED: a@0s", "DENIED: a@10m0s ×2 0s..5m0s", "DENIED: a@10m0s", "DENIED: a@12m0s ×2 10m0s..11m0s"},
		},
		{
			name: "Sweep ends streaks older than MaxInterval, and only those",
			steps: []step{
				add(0, "old", deniedEvent("a")), add(time.Minute, "old", deniedEvent("a")),
				add(5*time.Minute, "new", deniedEvent("b")), add(6*time.Minute, "new", deniedEvent("b")),
				{at: 10 * time.Minute, sweep: true}, add(11*time.Minute, "old", deniedEvent("a")),
			},
			want: []string{"DENIED: a@0s", "DENIED: b@5m0s", "DENIED: a@10m0s ×2 0s..1m0s", "DENIED: a@11m0s"},
		},
		{
			// The load drifts from one retry to the next: with codes the
			// denial is the same, and the summary has the latest figures.
			name: "codes stand for reasons whose figures change",
			steps: []step{
				add(0, "d", denied(busy, "cpu_load_high")), add(3*time.Second, "d", denied(busier, "cpu_load_high")),
				{at: 6 * time.Second, flush: true},
			},
			want: []string{busy + "@0s", busier + "@6s ×2 0s..3s"},
		},
		{
			name: "without codes, other reasons are another record",
			steps: []step{
				add(0, "d", denied(busy)), add(3*time.Second, "d", denied(busier)),
				{at: 6 * time.Second, flush: true},
			},
			want: []string{busy + "@0s", busier + "@3s"},
		},
		{
			name: "other codes are another record",
			steps: []step{
				add(0, "d", denied(busy, "cpu_load_high")), add(3*time.Second, "d", denied("Disk space below 10GB", "disk_low")),
			},
			want: []string{busy + "@0s", "Disk space below 10GB@3s"},
		},
		{
			// A decision's input is the evidence (free memory, load...):
			// a decision on other readings is written with them, so that
			// every decision can be replayed from its own input.
			name: "a different input is another decision",
			steps: []step{
				add(0, "d", NewDecision("infrastructure", false, []string{"full"}, map[string]any{"mem": 1.0})),
				add(time.Second, "d", NewDecision("infrastructure", false, []string{"full"}, map[string]any{"mem": 2.0})),
				add(2*time.Second, "d", NewDecision("infrastructure", false, []string{"full"}, map[string]any{"mem": 2.0})),
				{at: 3 * time.Second, flush: true},
			},
			want: []string{"full@0s", "full@1s", "full@3s ×2 1s..2s"},
		},
		{
			name: "an allowed decision ends a denied streak",
			steps: []step{
				add(0, "d", denied(busy, "cpu_load_high")), add(time.Second, "d", denied(busy, "cpu_load_high")),
				add(2*time.Second, "d", NewDecision("infrastructure", true, nil, nil)),
			},
			want: []string{busy + "@0s", busy + "@2s ×2 0s..1s", "@2s"},
		},
		{
			name: "who asked matters",
			steps: []step{
				add(0, "d", Record{Type: TypeEvent, Event: EventPromoteDenied, Message: "no", User: "alice"}),
				add(time.Second, "d", Record{Type: TypeEvent, Event: EventPromoteDenied, Message: "no", User: "bob"}),
			},
			want: []string{"no@0s", "no@1s"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			clock := func() time.Time { return now }
			j, path := openTemp(t, Options{Now: clock})
			r := &Repeats{MaxInterval: 10 * time.Minute, Now: clock}
			for i, s := range tc.steps {
				now = t0.Add(s.at)
				var err error
				switch {
				case s.rec != nil:
					err = r.Append(j, s.key, *s.rec)
				case s.end:
					err = r.End(j, s.key)
				case s.flush:
					err = r.Flush(j)
				case s.sweep:
					err = r.Sweep(j)
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			mustClose(t, j)
			rs := readAll(t, path)
			if got := summarize(rs); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("journal:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			mustVerifyOK(t, path, len(rs))
		})
	}
}

// TestRepeatsKeepsTheStreakWhenASummaryFails: a summary that cannot be
// written loses nothing; the next Flush, on a working journal, writes it.
func TestRepeatsKeepsTheStreakWhenASummaryFails(t *testing.T) {
	j, path := openTemp(t, Options{})
	var r Repeats
	for range 3 {
		if err := r.Append(j, "d", deniedEvent("a")); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, j)
	if err := r.Append(j, "d", deniedEvent("b")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append on a closed journal: %v, want ErrClosed", err)
	}
	if err := r.Flush(j); !errors.Is(err, ErrClosed) {
		t.Fatalf("Flush on a closed journal: %v, want ErrClosed", err)
	}
	j = openAt(t, path, Options{})
	if err := r.Flush(j); err != nil {
		t.Fatal(err)
	}
	mustClose(t, j)
	rs := readAll(t, path)
	if len(rs) != 2 || rs[1].Count != 3 || rs[1].Message != "DENIED: a" {
		t.Errorf("journal %+v, want the first record and a summary of 3", rs)
	}
}

func TestRepeatsRejects(t *testing.T) {
	tests := []struct {
		name  string
		rec   Record
		field string
	}{
		{"an invalid record", Record{Type: TypeEvent, Event: "Not Snake"}, "event"},
		{"a record with a count", Record{Type: TypeEvent, Event: EventDeployDenied, Count: 4}, "count"},
		{"a record with first_seen", Record{Type: TypeEvent, Event: EventDeployDenied, FirstSeen: t0}, "first_seen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j, path := openTemp(t, Options{})
			var r Repeats
			// Twice: a repeat of a bad record must not be counted either.
			for range 2 {
				if err := r.Append(j, "k", tc.rec); err == nil || !strings.Contains(err.Error(), tc.field) {
					t.Errorf("Append: %v, want an error naming %s", err, tc.field)
				}
			}
			if err := r.Flush(j); err != nil {
				t.Fatal(err)
			}
			mustClose(t, j)
			if st, err := os.Stat(path); err != nil || st.Size() != 0 {
				t.Errorf("rejected records reached the journal (size %d, err %v)", st.Size(), err)
			}
		})
	}
}

// TestRepeatsGolden pins what a streak looks like on disk
// (docs/journal.md shows these lines).
func TestRepeatsGolden(t *testing.T) {
	now := t0
	clock := func() time.Time { return now }
	j, path := openTemp(t, Options{Now: clock})
	r := &Repeats{Now: clock}
	input := func(load float64) map[string]any {
		return map[string]any{"cpu_count": 2, "cpu_load": load, "thresholds": map[string]any{"max_cpu_load": 2.0}}
	}
	dec := func(load float64) Record {
		rec := NewDecision("infrastructure", false, []string{fmt.Sprintf("CPU load %.1f per core (%.1f on 2 CPUs) above 2.0", load/2, load)}, input(load))
		rec.Codes = []string{"cpu_load_high"}
		return rec
	}
	// Two denials on the same reading are a streak; the third, on another
	// reading, is a decision of its own.
	for i, load := range []float64{4.8, 4.8, 5.0} {
		now = t0.Add(time.Duration(i) * 20 * time.Second)
		if err := r.Append(j, "decision/infrastructure", dec(load)); err != nil {
			t.Fatal(err)
		}
	}
	now = t0.Add(time.Minute)
	if err := r.Append(j, "decision/infrastructure", NewDecision("infrastructure", true, nil, input(1.2))); err != nil {
		t.Fatal(err)
	}
	mustClose(t, j)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "repeats.golden.jsonl")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("journal differs from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}
