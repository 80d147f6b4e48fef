package replay

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
	"github.com/swiftdeploy/swiftdeploy/policies"
)

var t0 = time.Date(2026, 5, 6, 19, 18, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func canaryInput(errRate float64) map[string]any {
	return map[string]any{"mode": "canary", "requests": 900.0, "req_per_sec": 15.0, "error_rate": errRate, "p99_latency": 120.0,
		"proxy_requests": 900.0, "proxy_error_rate": errRate, "proxy_p99_latency": 125.0, // nginx saw the same
		"thresholds": map[string]any{"max_error_rate": 0.01, "max_p99_ms": 500.0, "min_requests": 20.0}}
}

func infraInput(load float64) map[string]any {
	return map[string]any{"disk_path": "/", "disk_free_gb": 50.0, "cpu_load": load, "cpu_count": 2.0, "mem_available_bytes": 1e9,
		"thresholds": map[string]any{"min_disk_gb": 10.0, "max_cpu_load": 2.0}}
}

// decision is a recorded decision as the daemon journals it: judged by
// the default policies.
func decision(t *testing.T, s int, name string, input map[string]any) journal.Record {
	t.Helper()
	d := defaults(t).Evaluate(context.Background(), name, input)
	rec := journal.NewDecision(name, d.Allowed, d.Reasons, input)
	rec.Timestamp, rec.Codes = at(s), d.Codes
	return rec
}

// summary is a streak summary of rec's decision (count occurrences, the
// first rec itself) ending at s with input.
func summary(rec journal.Record, count, s int, input map[string]any) journal.Record {
	sum := rec
	sum.Count, sum.FirstSeen, sum.LastSeen, sum.Timestamp, sum.Input = count, rec.Timestamp, at(s), at(s), input
	return sum
}

func defaults(t *testing.T) *policy.Engine {
	t.Helper()
	e, err := policy.Default()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// candidate is the default policies with canary_safety.rego replaced
// (or dropped, for "").
func candidate(t *testing.T, canary string) *policy.Engine {
	t.Helper()
	infra, err := policies.FS.ReadFile("infrastructure.rego")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"infrastructure.rego": {Data: infra}}
	if canary != "" {
		fsys["canary_safety.rego"] = &fstest.MapFile{Data: []byte("package swiftdeploy.canary_safety\n\n" + canary)}
	}
	e, err := policy.New(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestRun(t *testing.T) {
	// The journal: a healthy canary (0.5% errors), a bad one (3%), a
	// streak of three denials on one input, an idle and a busy host, and
	// a decision an old daemon wrote without an input.
	journalOf := func(t *testing.T) []journal.Record {
		bad := decision(t, 30, policy.CanarySafety, canaryInput(0.03))
		busy := decision(t, 50, policy.Infrastructure, infraInput(5.0))
		noInput := journal.NewDecision(policy.CanarySafety, true, nil, nil)
		noInput.Timestamp = at(70)
		return []journal.Record{
			{Type: journal.TypeEvent, Event: journal.EventDaemonStarted, Timestamp: at(0)},
			decision(t, 10, policy.CanarySafety, canaryInput(0.005)),
			decision(t, 20, policy.Infrastructure, infraInput(0.5)),
			bad, summary(bad, 3, 40, canaryInput(0.03)),
			busy,
			{Type: journal.TypeSnapshot, Timestamp: at(60), Track: "canary"},
			noInput,
		}
	}
	tests := []struct {
		name    string
		engine  func(t *testing.T) *policy.Engine
		opts    Options
		want    []string // Change.Line() and its reasons, "|"-joined
		summary string
	}{
		{
			name:    "the policies that made the decisions change none",
			engine:  defaults,
			summary: "6 decisions replayed: 0 would flip (0 ALLOWED → DENIED, 0 DENIED → ALLOWED), 0 undefined, 0 errors, 6 unchanged; 1 not replayable (no input recorded).",
		},
		{
			name:    "a stricter threshold denies the healthy canary",
			engine:  defaults,
			opts:    Options{Thresholds: map[string]float64{"max_error_rate": 0.001}},
			want:    []string{"19:18:10 canary_safety ALLOWED → DENIED|Error rate exceeds 0.1% threshold; Proxy error rate exceeds 0.1% threshold"},
			summary: "6 decisions replayed: 1 would flip (1 ALLOWED → DENIED, 0 DENIED → ALLOWED), 0 undefined, 0 errors, 5 unchanged; 1 not replayable (no input recorded).",
		},
		{
			name:   "a laxer policy allows the bad canary, its streak counted",
			engine: func(t *testing.T) *policy.Engine { return candidate(t, "allow := true\n") },
			want: []string{
				"19:18:30 canary_safety DENIED → ALLOWED|",
				"19:18:40 canary_safety DENIED → ALLOWED (2 more times on the input of 19:18:30)|",
			},
			summary: "6 decisions replayed: 3 would flip (0 ALLOWED → DENIED, 3 DENIED → ALLOWED), 0 undefined, 0 errors, 3 unchanged; 1 not replayable (no input recorded).",
		},
		{
			name:   "a candidate without the canary policy is undefined, never allowed",
			engine: func(t *testing.T) *policy.Engine { return candidate(t, "") },
			want: []string{
				"19:18:10 canary_safety ALLOWED → UNDEFINED|policy canary_safety returned no decision (undefined)",
				"19:18:30 canary_safety DENIED → UNDEFINED|policy canary_safety returned no decision (undefined)",
				"19:18:40 canary_safety DENIED → UNDEFINED (2 more times on the input of 19:18:30)|policy canary_safety returned no decision (undefined)",
			},
			summary: "6 decisions replayed: 0 would flip (0 ALLOWED → DENIED, 0 DENIED → ALLOWED), 4 undefined, 0 errors, 2 unchanged; 1 not replayable (no input recorded).",
		},
		{
			name: "a candidate that fails to evaluate is an error",
			engine: func(t *testing.T) *policy.Engine {
				return candidate(t, "default allow := false\n\nallow if to_number(input.mode) > 0\n")
			},
			want: []string{
				"19:18:10 canary_safety ALLOWED → ERROR|policy evaluation failed: ",
				"19:18:30 canary_safety DENIED → ERROR|policy evaluation failed: ",
				"19:18:40 canary_safety DENIED → ERROR (2 more times on the input of 19:18:30)|policy evaluation failed: ",
			},
			summary: "6 decisions replayed: 0 would flip (0 ALLOWED → DENIED, 0 DENIED → ALLOWED), 0 undefined, 4 errors, 2 unchanged; 1 not replayable (no input recorded).",
		},
		{
			name:    "a laxer load threshold allows the busy host",
			engine:  defaults,
			opts:    Options{Thresholds: map[string]float64{"max_cpu_load": 3}},
			want:    []string{"19:18:50 infrastructure DENIED → ALLOWED|"},
			summary: "6 decisions replayed: 1 would flip (0 ALLOWED → DENIED, 1 DENIED → ALLOWED), 0 undefined, 0 errors, 5 unchanged; 1 not replayable (no input recorded).",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs := journalOf(t)
			var got []string
			rep, err := Run(context.Background(), tc.engine(t), tc.opts, slice(recs), func(c Change) error {
				line := c.Line() + "|" + strings.Join(c.Reasons, "; ")
				for _, w := range tc.want {
					// Evaluation errors carry OPA's text: compare the start.
					if strings.HasSuffix(w, ": ") && strings.HasPrefix(line, w) {
						line = w
					}
				}
				got = append(got, line)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if s := rep.Summary(); s != tc.summary {
				t.Errorf("summary:\n%s\nwant:\n%s", s, tc.summary)
			}
			if rep.Decisions != 7 || rep.Policies[policy.CanarySafety] != 4 || rep.Policies[policy.Infrastructure] != 2 || !rep.First.Equal(at(10)) || !rep.Last.Equal(at(70)) {
				t.Errorf("report %+v: want 7 decisions (4 canary_safety and 2 infrastructure replayed) from 19:18:10 to 19:19:10", rep)
			}
			// The replay must not change the journal's records.
			if fresh, _ := json.Marshal(journalOf(t)); string(fresh) != string(must(json.Marshal(recs))) {
				t.Errorf("the replay modified the recorded inputs")
			}
		})
	}
}

// A summary written by a daemon that coalesced decisions on drifting
// inputs: only its last occurrence's input is known.
func TestRunOldStreak(t *testing.T) {
	first := decision(t, 0, policy.Infrastructure, infraInput(4.8))
	recs := []journal.Record{first, summary(first, 5, 40, infraInput(5.2))}
	var changes []Change
	rep, err := Run(context.Background(), defaults(t), Options{Thresholds: map[string]float64{"max_cpu_load": 2.5}}, slice(recs), func(c Change) error {
		changes = append(changes, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 4.8 on 2 CPUs is 2.4 per core: allowed under 2.5; 5.2 (2.6) still denied.
	if rep.Decisions != 5 || rep.Replayed != 2 || rep.NoInput != 3 || rep.DeniedToAllowed != 1 || rep.Unchanged != 1 {
		t.Errorf("report %+v: want 5 decisions, 2 replayed (1 flips), 3 without their input", rep)
	}
	if len(changes) != 1 || changes[0].Line() != "19:18:00 infrastructure DENIED → ALLOWED" {
		t.Errorf("changes %+v", changes)
	}
}

func TestRunErrors(t *testing.T) {
	recs := []journal.Record{decision(t, 0, policy.CanarySafety, canaryInput(0.03))}
	for name, opts := range map[string]Options{
		`threshold "max_errors": not one the policies are given`: {Thresholds: map[string]float64{"max_errors": 1}},
		"threshold max_p99_ms: NaN is not a finite number":       {Thresholds: map[string]float64{"max_p99_ms": nan()}},
	} {
		if _, err := Run(context.Background(), defaults(t), opts, slice(recs), nil); err == nil || !strings.HasPrefix(err.Error(), name) {
			t.Errorf("options %v: error %v, want %q", opts, err, name)
		}
	}
	stop := errors.New("stop")
	_, err := Run(context.Background(), candidate(t, "allow := true\n"), Options{}, slice(append(recs, recs...)), func(Change) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("an error from onChange: got %v, want it returned", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, defaults(t), Options{}, slice(recs), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
}

func nan() float64 { return math.NaN() }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func slice(recs []journal.Record) func(func(journal.Record) error) error {
	return func(fn func(journal.Record) error) error {
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
}
