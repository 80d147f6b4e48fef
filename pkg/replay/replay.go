// Package replay re-evaluates the policy decisions recorded in a journal
// with a candidate set of policies: which decisions would flip, which the
// candidate cannot make at all. It is what `swiftctl policy replay` runs;
// it needs no daemon, only the journal files.
//
// Every decision record carries the input the policy saw (thresholds
// included), so a decision is re-judged on exactly that input. A streak
// summary (journal.Repeats) stands for count-1 more occurrences on the
// same input. A candidate that cannot decide (undefined, an evaluation
// error) is reported as such: the daemon would deny, but that is the
// engine failing closed, not the policy allowing or denying.
package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/policy"
)

// Outcome is what a decision came to.
type Outcome string

// Outcomes. A recorded decision is Allowed or Denied; a replayed one may
// also be Undefined or Error (the candidate did not decide).
const (
	Allowed   Outcome = "ALLOWED"
	Denied    Outcome = "DENIED"
	Undefined Outcome = "UNDEFINED"
	Error     Outcome = "ERROR"
)

// Evaluator decides one policy on a recorded input (policy.Engine).
type Evaluator interface {
	Evaluate(ctx context.Context, name string, input map[string]any) policy.Decision
}

// Options tune a replay.
type Options struct {
	// Thresholds replace input.thresholds.<name> in every replayed input
	// that has that threshold ("max_error_rate": 0.005): the question
	// "what if the manifest's limit had been stricter".
	Thresholds map[string]float64
}

// Validate reports the first threshold that is not one the policies are
// given, or not a finite number.
func (o Options) Validate() error {
	for _, name := range slices.Sorted(maps.Keys(o.Thresholds)) {
		if !slices.Contains(ThresholdNames, name) {
			return fmt.Errorf("threshold %q: not one the policies are given (want one of %s)", name, strings.Join(ThresholdNames, ", "))
		}
		if v := o.Thresholds[name]; math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("threshold %s: %v is not a finite number", name, v)
		}
	}
	return nil
}

// ThresholdNames are the thresholds Options.Thresholds may set: those the
// daemon passes to the policies (policy.Thresholds).
var ThresholdNames = []string{"min_disk_gb", "max_cpu_load", "max_error_rate", "max_p99_ms", "min_requests"}

// Change is a recorded decision whose replay came out otherwise.
type Change struct {
	// At is when the decision was made; for a streak summary, its last
	// occurrence. FirstSeen is set when the change stands for a streak's
	// repeats on the input of its first occurrence (a line of its own,
	// replayed on its own).
	At        time.Time `json:"at"`
	FirstSeen time.Time `json:"first_seen,omitzero"`
	Policy    string    `json:"policy"`
	User      string    `json:"user,omitempty"`
	// Count is how many decisions it stands for: 1, or count-1 for a
	// streak summary.
	Count int     `json:"count"`
	From  Outcome `json:"from"`
	To    Outcome `json:"to"`
	// Reasons are the candidate's; Recorded the journal's.
	Reasons  []string `json:"reasons,omitempty"`
	Recorded []string `json:"recorded_reasons,omitempty"`
}

// Line is the change as `swiftctl policy replay` prints it, without its
// reasons: "19:18:37 canary_safety DENIED → ALLOWED".
func (c Change) Line() string {
	s := fmt.Sprintf("%s %s %s → %s", c.At.UTC().Format(time.TimeOnly), c.Policy, c.From, c.To)
	if c.User != "" {
		s += " (by " + c.User + ")"
	}
	if !c.FirstSeen.IsZero() {
		plural := "s"
		if c.Count == 1 {
			plural = ""
		}
		s += fmt.Sprintf(" (%d more time%s on the input of %s)", c.Count, plural, c.FirstSeen.UTC().Format(time.TimeOnly))
	}
	return s
}

// Report counts decisions, each streak occurrence once.
type Report struct {
	Decisions       int `json:"decisions"` // recorded decisions seen
	Replayed        int `json:"replayed"`  // re-evaluated
	Unchanged       int `json:"unchanged"`
	AllowedToDenied int `json:"allowed_to_denied"`
	DeniedToAllowed int `json:"denied_to_allowed"`
	Undefined       int `json:"undefined"` // the candidate gave no decision
	Errors          int `json:"errors"`    // the candidate failed to evaluate
	// NoInput counts decisions that cannot be replayed: recorded without
	// an input, or counted in a streak whose input was not kept (journals
	// from before decisions kept every input).
	NoInput int `json:"no_input"`
	// Policies counts replayed decisions per policy name.
	Policies map[string]int `json:"policies"`
	// First and Last bound the decisions' times.
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
}

// Flips are the decisions that would come out the other way.
func (r Report) Flips() int { return r.AllowedToDenied + r.DeniedToAllowed }

// Changed is every decision the candidate does not make as recorded:
// flips, undefined and errors.
func (r Report) Changed() int { return r.Flips() + r.Undefined + r.Errors }

// Summary is the report in one sentence.
func (r Report) Summary() string {
	s := fmt.Sprintf("%d decisions replayed: %d would flip (%d ALLOWED → DENIED, %d DENIED → ALLOWED), %d undefined, %d errors, %d unchanged",
		r.Replayed, r.Flips(), r.AllowedToDenied, r.DeniedToAllowed, r.Undefined, r.Errors, r.Unchanged)
	if r.NoInput > 0 {
		s += fmt.Sprintf("; %d not replayable (no input recorded)", r.NoInput)
	}
	return s + "."
}

// Run reads the journal's decisions through read (journal.Read with the
// file's path bound, or a slice in tests), oldest first, re-evaluates
// each with e, and calls onChange for each one that comes out otherwise.
// It keeps one decision per policy in memory, never the journal. An error
// from read or onChange ends it.
func Run(ctx context.Context, e Evaluator, opts Options, read func(fn func(journal.Record) error) error, onChange func(Change) error) (Report, error) {
	if err := opts.Validate(); err != nil {
		return Report{}, err
	}
	rep := Report{Policies: map[string]int{}}
	// firsts holds, per policy, the input of the last decision written on
	// its own line: the first occurrence of a streak whose summary may
	// follow (Repeats keeps one streak per policy).
	firsts := map[string]first{}
	err := read(func(rec journal.Record) error {
		if rec.Type != journal.TypeDecision || rec.Allowed == nil {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n, input := 1, rec.Input
		if rec.Count > 1 {
			n = rec.Count - 1 // the first occurrence is a line of its own
		}
		rep.Decisions += n
		if rep.First.IsZero() {
			rep.First = rec.Timestamp
		}
		rep.Last = rec.Timestamp
		key, err := canonical(input)
		if err != nil {
			return fmt.Errorf("decision of %s at %s: %w", rec.PolicyName, rec.Timestamp.Format(time.RFC3339), err)
		}
		streak := rec.Count > 1
		if streak {
			f, ok := firsts[rec.PolicyName]
			if !ok || !f.at.Equal(rec.FirstSeen) || f.input != key {
				// Written before every decision kept its input: only
				// the last occurrence's input is known.
				rep.NoInput += n - 1
				n, streak = 1, false
			}
		} else {
			firsts[rec.PolicyName] = first{at: rec.Timestamp, input: key}
		}
		if input == nil {
			rep.NoInput += n
			return nil
		}
		dec := e.Evaluate(ctx, rec.PolicyName, withThresholds(input, opts.Thresholds))
		rep.Replayed += n
		rep.Policies[rec.PolicyName] += n
		from, to := Denied, outcome(dec)
		if *rec.Allowed {
			from = Allowed
		}
		switch {
		case from == to:
			rep.Unchanged += n
			return nil
		case to == Undefined:
			rep.Undefined += n
		case to == Error:
			rep.Errors += n
		case to == Denied:
			rep.AllowedToDenied += n
		default:
			rep.DeniedToAllowed += n
		}
		c := Change{At: rec.Timestamp, Policy: rec.PolicyName, User: rec.User, Count: n, From: from, To: to, Reasons: dec.Reasons, Recorded: rec.Reasons}
		if rec.Count > 1 {
			c.At = rec.LastSeen
		}
		if streak {
			c.FirstSeen = rec.FirstSeen
		}
		if onChange != nil {
			return onChange(c)
		}
		return nil
	})
	return rep, err
}

type first struct {
	at    time.Time
	input string
}

// outcome is what the candidate's decision came to.
func outcome(d policy.Decision) Outcome {
	switch {
	case d.Failure == policy.FailureUndefined:
		return Undefined
	case d.Failure != "":
		return Error
	case d.Allowed:
		return Allowed
	}
	return Denied
}

// canonical is input as comparable text ("" for none): encoding/json
// sorts map keys.
func canonical(input map[string]any) (string, error) {
	if input == nil {
		return "", nil
	}
	b, err := json.Marshal(input)
	if err != nil {
		return "", fmt.Errorf("encode input: %w", err)
	}
	return string(b), nil
}

// withThresholds is input with the thresholds it has replaced by set's;
// the recorded input itself is left alone.
func withThresholds(input map[string]any, set map[string]float64) map[string]any {
	t, ok := input["thresholds"].(map[string]any)
	if !ok || len(set) == 0 {
		return input
	}
	var nt map[string]any
	for name, v := range set {
		if _, has := t[name]; !has {
			continue
		}
		if nt == nil {
			nt = maps.Clone(t)
		}
		nt[name] = v
	}
	if nt == nil {
		return input
	}
	out := maps.Clone(input)
	out["thresholds"] = nt
	return out
}
