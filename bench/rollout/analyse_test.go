package main

import (
	"testing"
	"time"
)

func TestAnalyse(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ok := func(ms int, v string) sample {
		return sample{sent: at(ms - 2), done: at(ms), status: 200, version: v}
	}
	bad := func(ms, status int) sample {
		return sample{sent: at(ms - 2), done: at(ms), status: status, failed: true}
	}
	tests := []struct {
		name             string
		samples          []sample
		skipped          int
		failed, total    int
		firstNew, allNew time.Duration
	}{
		{
			name:     "clean switch",
			samples:  []sample{ok(-10, "1"), ok(100, "1"), ok(200, "2"), ok(300, "2")},
			total:    4,
			firstNew: 200 * time.Millisecond, allNew: 200 * time.Millisecond,
		},
		{
			name:     "old and new interleave, then a 502",
			samples:  []sample{ok(100, "2"), ok(150, "1"), ok(200, "2"), bad(250, 502), ok(300, "2"), ok(400, "2")},
			failed:   1,
			total:    6,
			firstNew: 100 * time.Millisecond, allNew: 300 * time.Millisecond,
		},
		{
			name:     "new answers before t0 (a canary) do not count as first",
			samples:  []sample{ok(-50, "2"), ok(-40, "1"), ok(20, "1"), ok(30, "2")},
			total:    4,
			firstNew: 30 * time.Millisecond, allNew: 30 * time.Millisecond,
		},
		{
			name:     "never new",
			samples:  []sample{ok(10, "1"), {sent: at(20), done: at(5020), failed: true}},
			failed:   1,
			total:    2,
			firstNew: -1, allNew: -1,
		},
		{
			name:     "skipped requests are failures",
			samples:  []sample{ok(10, "2")},
			skipped:  3,
			failed:   3,
			total:    4,
			firstNew: 10 * time.Millisecond, allNew: 10 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := analyse(tt.samples, "2", t0, tt.skipped)
			if tl.Failed != tt.failed || tl.Total != tt.total {
				t.Errorf("failed %d / %d, want %d / %d", tl.Failed, tl.Total, tt.failed, tt.total)
			}
			if tl.FirstNew != tt.firstNew || tl.AllNew != tt.allNew {
				t.Errorf("first new %v, all new %v; want %v, %v", tl.FirstNew, tl.AllNew, tt.firstNew, tt.allNew)
			}
		})
	}
}

func TestRecorderSettled(t *testing.T) {
	r := &recorder{newVersion: "2"}
	now := time.Now()
	r.add(sample{done: now.Add(-5 * time.Second), status: 200, version: "1"})
	if r.settled(time.Second) {
		t.Fatal("settled without any new answer")
	}
	r.add(sample{done: now.Add(-4 * time.Second), status: 200, version: "2"})
	if !r.settled(time.Second) {
		t.Fatal("not settled 4 s after the last old answer")
	}
	r.add(sample{done: now, status: 502, failed: true})
	if r.settled(time.Second) {
		t.Fatal("settled right after a failure")
	}
}

func TestStepsFrom(t *testing.T) {
	t0 := time.Unix(2000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	lines := []logLine{
		{at(-500), "plan"}, // an earlier run
		{at(-400), "Removed x-app-9 (old)"},
		{at(210), "plan"},
		{at(215), "Docker image found"},
		{at(900), "Services starting... p-app-1 (img:v2)"},
		{at(1700), "Services starting... p-app-2 (img:v2)"},
		{at(2000), "Health check passed (2 containers)"},
		{at(2300), "Nginx config valid"},
		{at(2310), "Nginx reloaded: upstream containers changed"},
		{at(4600), "Removed p-app-1-old (replaced)"},
		{at(5000), "Removed p-app-2-old (replaced)"},
		{at(8000), "plan"}, // the next run
		{at(8100), "Removed p-app-3 (scaled down)"},
	}
	steps := stepsFrom(lines, t0)
	want := []struct {
		from, to int
		count    int
	}{{0, 210, 0}, {210, 215, 0}, {215, 900, 1}, {900, 1700, 1}, {1700, 2000, 0}, {2000, 2310, 0}, {2310, 4600, 1}, {4600, 5000, 1}}
	if len(steps) != len(want) {
		t.Fatalf("got %d steps, want %d: %+v", len(steps), len(want), steps)
	}
	for i, w := range want {
		s := steps[i]
		if s.From != time.Duration(w.from)*time.Millisecond || s.To != time.Duration(w.to)*time.Millisecond || s.Count != w.count {
			t.Errorf("step %d %q = %v..%v ×%d, want %dms..%dms ×%d", i, s.Name, s.From, s.To, s.Count, w.from, w.to, w.count)
		}
	}
}

func TestParseTS(t *testing.T) {
	got, ok := parseTS([]byte(`1764620000.25`))
	if !ok || got.UnixMilli() != 1764620000250 {
		t.Errorf("epoch float: %v %v", got, ok)
	}
	got, ok = parseTS([]byte(`"2026-12-01T20:31:20.125Z"`))
	if !ok || got.UnixMilli() != time.Date(2026, 12, 1, 20, 31, 20, 125e6, time.UTC).UnixMilli() {
		t.Errorf("ISO 8601: %v %v", got, ok)
	}
}

func TestLeftover(t *testing.T) {
	if leftover("sdt-abc") || leftover("sdbench-x-1") {
		t.Error("names of other tools taken for leftovers")
	}
	if leftover(newRunID() + "-d2") {
		t.Error("this run's own project taken for a leftover")
	}
	// PID 1 is alive; a huge PID is not.
	if leftover("sdbench-1-abcd-c2") {
		t.Error("a live process's run taken for a leftover")
	}
	if !leftover("sdbench-4194303-abcd-c2") {
		t.Error("a dead process's run not taken for a leftover")
	}
}
