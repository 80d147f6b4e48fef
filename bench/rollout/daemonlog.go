package main

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// parseTS reads zap's default epoch-seconds float or an ISO 8601 string.
func parseTS(raw json.RawMessage) (time.Time, bool) {
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, true
		}
		if t, err := time.Parse("2006-01-02T15:04:05.000Z0700", s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// step is one row of a rollout's breakdown, in offsets from the change.
type step struct {
	Name     string
	From, To time.Duration
	Count    int           // occurrences (containers, polls...) in the row
	Each     time.Duration // median time of one occurrence, when Count > 1
	Note     string
	Child    bool // a part of the row above it
}

// reconcileTrace is one "reconcile trace" line of the daemon's log: every
// timed step of a reconcile (or promotion), see pkg/trace.
type reconcileTrace struct {
	At      time.Time
	Trigger string
	Took    time.Duration
	CPU     time.Duration
	OK      bool
	Spans   []trace.Span
}

// readTraces returns the reconcile traces of a daemon log, in order.
func readTraces(path string) ([]reconcileTrace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []reconcileTrace
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var raw struct {
			TS      json.RawMessage `json:"ts"`
			Msg     string          `json:"msg"`
			Trigger string          `json:"trigger"`
			Took    float64         `json:"took"` // zap encodes durations as seconds
			CPU     float64         `json:"cpu"`
			OK      bool            `json:"ok"`
			Spans   []trace.Span    `json:"spans"`
		}
		if json.Unmarshal(sc.Bytes(), &raw) != nil || raw.Msg != "reconcile trace" {
			continue
		}
		at, _ := parseTS(raw.TS)
		out = append(out, reconcileTrace{At: at, Trigger: raw.Trigger, Took: secs(raw.Took), CPU: secs(raw.CPU), OK: raw.OK, Spans: raw.Spans})
	}
	return out, sc.Err()
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// firstTrace is the first trace with the given trigger whose spans start
// after t0 (the reconcile the change caused), or nil.
func firstTrace(path string, t0 time.Time, trigger string) *reconcileTrace {
	ts, err := readTraces(path)
	if err != nil {
		return nil
	}
	for i, t := range ts {
		if t.Trigger != trigger || len(t.Spans) == 0 {
			continue
		}
		if first := t.Spans[0].Start; !first.Before(t0.Add(-time.Second)) {
			return &ts[i]
		}
	}
	return nil
}

// topSteps are the trace's steps that are shown as rows of their own;
// every other step is shown as a part (↳) of the row whose interval
// contains it.
var topSteps = map[string]bool{
	"manifest event": true, "debounce": true, "queued": true, "wait run lock": true,
	"read manifest": true, "resolve pending": true, "render": true, "observe": true,
	"plan": true, "gate": true, "write applied": true, "write artifacts": true,
	"observe after apply": true, "commit": true,
	"pull-image": true, "create-network": true, "remove-dead": true, "start-app": true,
	"wait-healthy": true, "check-nginx": true, "remove-nginx": true, "start-nginx": true,
	"reload-nginx": true, "remove-app": true,
}

// breakdown turns a trace into rows: one per step (repeated steps, such
// as one start per container, become one row with a count), in order of
// their start, each part after the row that contains it; plus the first
// response from the new version and the point after which every response
// was new, as the load saw them.
func breakdown(tr *reconcileTrace, t0 time.Time, firstNew, allNew time.Duration) []step {
	type group struct {
		name      string
		from, to  time.Time
		durs      []time.Duration
		notes     []string
		synthetic bool
		children  []*group
	}
	add := func(g *group, s trace.Span) {
		if len(g.durs) == 0 || s.Start.Before(g.from) {
			g.from = s.Start
		}
		if s.Step == "manifest event" {
			g.from = t0 // the row is the time from the rename to the event
		}
		g.to = maxTime(g.to, s.End)
		g.durs = append(g.durs, s.End.Sub(s.Start))
		if s.Note != "" && !slices.Contains(g.notes, s.Note) && len(g.notes) < 3 {
			g.notes = append(g.notes, s.Note)
		}
	}
	rowName := func(s trace.Span) string {
		switch s.Step {
		case "journal", "healthy":
			return s.Step + " " + s.Target
		case "manifest event":
			return "rename → file event received"
		}
		return s.Step
	}
	// The rows: top-level steps, one group per name.
	var tops []*group
	byName := map[string]*group{}
	top := func(s trace.Span) {
		name := rowName(s)
		g := byName[name]
		if g == nil {
			g = &group{name: name}
			byName[name] = g
			tops = append(tops, g)
		}
		add(g, s)
	}
	var parts []trace.Span
	for _, s := range tr.Spans {
		if topSteps[s.Step] {
			top(s)
		} else {
			parts = append(parts, s)
		}
	}
	// The parts: under the latest-starting row whose interval contains
	// them, one group per name and row; a part outside every row is a row.
	for _, s := range parts {
		var parent *group
		for _, g := range tops {
			if !g.from.After(s.Start) && !g.to.Before(s.End) && (parent == nil || g.from.After(parent.from)) {
				parent = g
			}
		}
		if parent == nil {
			top(s)
			continue
		}
		name := rowName(s)
		var c *group
		for _, x := range parent.children {
			if x.name == name {
				c = x
			}
		}
		if c == nil {
			c = &group{name: name}
			parent.children = append(parent.children, c)
		}
		add(c, s)
	}
	for _, m := range []struct {
		name string
		at   time.Duration
	}{{"first response from the new version (load)", firstNew}, {"every response new from here (load)", allNew}} {
		if m.at >= 0 {
			at := t0.Add(m.at)
			tops = append(tops, &group{name: m.name, from: at, to: at, synthetic: true})
		}
	}
	byFrom := func(gs []*group) {
		slices.SortStableFunc(gs, func(a, b *group) int { return a.from.Compare(b.from) })
	}
	byFrom(tops)
	var out []step
	row := func(g *group, child bool) step {
		s := step{Name: g.name, From: g.from.Sub(t0), To: g.to.Sub(t0), Count: len(g.durs), Note: strings.Join(g.notes, "; "), Child: child}
		if len(g.durs) > 1 {
			s.Each = median(g.durs)
		}
		return s
	}
	for _, g := range tops {
		out = append(out, row(g, false))
		byFrom(g.children)
		for _, c := range g.children {
			out = append(out, row(c, true))
		}
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
