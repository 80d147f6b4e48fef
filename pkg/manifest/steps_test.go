package manifest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const stepped = `
services:
  image: app:1
  port: 3000
  canary:
    image: app:2
    steps:
      - {weight: 10, pause: 1m}
      - {weight: 25, pause: 1m}
      - {weight: 50, pause: 2m}
    analysis:
      interval: 15s
      failure_limit: 3
      auto_promote: false
nginx:
  image: nginx:latest
  port: 8080
network:
  name: net
`

func TestParseSteps(t *testing.T) {
	m, err := Parse([]byte(stepped), "x")
	if err != nil {
		t.Fatal(err)
	}
	c := m.Services.Canary
	want := []Step{{10, Duration(time.Minute)}, {25, Duration(time.Minute)}, {50, Duration(2 * time.Minute)}}
	if len(c.Steps) != 3 || c.Steps[0] != want[0] || c.Steps[1] != want[1] || c.Steps[2] != want[2] {
		t.Errorf("steps = %+v, want %+v", c.Steps, want)
	}
	if a := c.Analysis; a == nil || a.Interval.D() != 15*time.Second || a.FailureLimit != 3 || a.AutoPromote {
		t.Errorf("analysis = %+v", a)
	}
	// The written form reads back as the same manifest.
	if _, err := m.YAML(); err != nil {
		t.Error(err)
	}
}

// Steps without an analysis block, or with part of one, take the defaults
// field by field; an explicit auto_promote: false is kept.
func TestStepsAnalysisDefaults(t *testing.T) {
	noAnalysis := strings.Replace(stepped, "    analysis:\n      interval: 15s\n      failure_limit: 3\n      auto_promote: false\n", "", 1)
	m, err := Parse([]byte(noAnalysis), "x")
	if err != nil {
		t.Fatal(err)
	}
	if a := m.Services.Canary.Analysis; a == nil || a.Interval.D() != DefaultAnalysisInterval || a.FailureLimit != DefaultFailureLimit || !a.AutoPromote {
		t.Errorf("defaulted analysis = %+v", a)
	}
	partial := strings.Replace(stepped, "      interval: 15s\n      failure_limit: 3\n", "", 1)
	m, err = Parse([]byte(partial), "x")
	if err != nil {
		t.Fatal(err)
	}
	if a := m.Services.Canary.Analysis; a.Interval.D() != DefaultAnalysisInterval || a.FailureLimit != DefaultFailureLimit || a.AutoPromote {
		t.Errorf("partial analysis = %+v, want defaults and auto_promote kept false", a)
	}
}

// Without steps nothing changes: no analysis is invented and the hash of
// a manifest from before steps existed stays the same.
func TestNoStepsUnchanged(t *testing.T) {
	m, err := Parse(patched(t, ""), "x")
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Services.Canary; c.Steps != nil || c.Analysis != nil || c.Weight != 10 {
		t.Errorf("canary without steps = %+v", c)
	}
	b, _ := json.Marshal(m)
	if strings.Contains(string(b), "steps") || strings.Contains(string(b), "analysis") {
		t.Errorf("canonical form of a manifest without steps mentions them, so its hash changed: %s", b)
	}
}

func TestStepsInvalid(t *testing.T) {
	tests := []struct {
		name  string
		patch string
		want  []string
		msg   string
		line  int // of the first problem, 0 to skip
	}{
		{"weight with steps", "services: {canary: {weight: 10, steps: [{weight: 10, pause: 1m}]}}",
			[]string{"services.canary.weight"}, "must be left out when steps are declared", 0},
		{"weights must rise", "services: {canary: {weight: null, steps: [{weight: 25, pause: 1m}, {weight: 25, pause: 1m}]}}",
			[]string{"services.canary.steps[1].weight"}, "must be greater than the previous step's weight (25), got 25", 0},
		{"weights fall", "services: {canary: {weight: null, steps: [{weight: 50, pause: 1m}, {weight: 10, pause: 1m}]}}",
			[]string{"services.canary.steps[1].weight"}, "weights rise", 0},
		{"weight 100", "services: {canary: {weight: null, steps: [{weight: 100, pause: 1m}]}}",
			[]string{"services.canary.steps[0].weight"}, "must be 1-99 (100 is a promotion), got 100", 0},
		{"weight 0", "services: {canary: {weight: null, steps: [{weight: 0, pause: 1m}]}}",
			[]string{"services.canary.steps[0].weight"}, "must be 1-99", 0},
		{"pause shorter than the interval", "services: {canary: {weight: null, steps: [{weight: 10, pause: 5s}], analysis: {interval: 10s}}}",
			[]string{"services.canary.steps[0].pause"}, "must be at least services.canary.analysis.interval (10s)", 0},
		{"pause missing", "services: {canary: {weight: null, steps: [{weight: 10}]}}",
			[]string{"services.canary.steps[0].pause"}, "must be at least", 0},
		{"pause too long", "services: {canary: {weight: null, steps: [{weight: 10, pause: 25h}]}}",
			[]string{"services.canary.steps[0].pause"}, "must be at most 24h0m0s", 0},
		{"interval under the scrape interval", "services: {canary: {weight: null, steps: [{weight: 10, pause: 1m}], analysis: {interval: 2s}}}",
			[]string{"services.canary.analysis.interval"}, "must be at least metrics.scrape_interval (5s), got 2s", 0},
		{"interval zero", "services: {canary: {weight: null, steps: [{weight: 10, pause: 1m}], analysis: {interval: 0}}}",
			[]string{"services.canary.analysis.interval"}, "must be 1s-1h0m0s, got 0s", 0},
		{"failure limit zero", "services: {canary: {weight: null, steps: [{weight: 10, pause: 1m}], analysis: {failure_limit: 0}}}",
			[]string{"services.canary.analysis.failure_limit"}, "must be 1-100, got 0", 0},
		{"failure limit huge", "services: {canary: {weight: null, steps: [{weight: 10, pause: 1m}], analysis: {failure_limit: 1000}}}",
			[]string{"services.canary.analysis.failure_limit"}, "must be 1-100, got 1000", 0},
		{"analysis without steps", "services: {canary: {analysis: {interval: 15s}}}",
			[]string{"services.canary.analysis"}, "needs services.canary.steps", 0},
		{"auto_promote not a boolean", "services: {canary: {weight: null, steps: [{weight: 10, pause: 1m}], analysis: {auto_promote: 'yes'}}}",
			[]string{"services.canary.analysis.auto_promote"}, `must be true or false, got string "yes"`, 0},
		{"steps not a list", "services: {canary: {weight: null, steps: {weight: 10}}}",
			[]string{"services.canary.steps"}, "must be a list, got a mapping", 0},
		{"unknown step field", "services: {canary: {weight: null, steps: [{weight: 10, pause: 1m, wieght: 3}]}}",
			[]string{"services.canary.steps[0].wieght"}, `unknown field (did you mean "weight"?)`, 0},
		{"empty step", "services: {canary: {weight: null, steps: [null]}}",
			[]string{"services.canary.steps[0]"}, "must not be empty", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(patched(t, tc.patch), "x")
			ps := assertProblems(t, err, tc.want...)
			if len(ps) > 0 && !strings.Contains(ps[0].Msg, tc.msg) {
				t.Errorf("message %q does not contain %q", ps[0].Msg, tc.msg)
			}
		})
	}
}

// A problem inside a step names the step's line.
func TestStepProblemLine(t *testing.T) {
	doc := strings.Replace(stepped, "{weight: 25, pause: 1m}", "{weight: 5, pause: 1m}", 1)
	_, err := Parse([]byte(doc), "x")
	ps := assertProblems(t, err, "services.canary.steps[1].weight")
	if len(ps) == 1 && ps[0].Line != 9 {
		t.Errorf("line = %d, want 9 (the second step)", ps[0].Line)
	}
}

func TestNotify(t *testing.T) {
	doc := stepped + "notify:\n  - url: https://hooks.example/T1\n    events: [step, aborted]\n  - url: http://127.0.0.1:9/all\n"
	m, err := Parse([]byte(doc), "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Notify) != 2 || m.Notify[0].Events[1] != "aborted" || m.Notify[1].Events != nil {
		t.Errorf("notify = %+v", m.Notify)
	}
	bad := stepped + "notify:\n  - url: ftp://x/y\n    events: [stepp]\n  - events: [step]\n"
	_, err = Parse([]byte(bad), "x")
	ps := assertProblems(t, err, "notify[0].url", "notify[0].events[0]", "notify[1].url")
	if len(ps) == 3 && (ps[0].Line != 21 || !strings.Contains(ps[1].Msg, `must be one of step, check_failed, aborted, promoted, denied, got "stepp"`)) {
		t.Errorf("problems %v", ps)
	}
}
