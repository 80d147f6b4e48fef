package main

import (
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
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

func TestBreakdown(t *testing.T) {
	t0 := time.Unix(2000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	span := func(step, target string, from, to int) trace.Span {
		return trace.Span{Step: step, Target: target, Start: at(from), End: at(to)}
	}
	tr := &reconcileTrace{Trigger: "manifest", Spans: []trace.Span{
		span("manifest event", "", 5, 5),
		span("debounce", "", 5, 205),
		span("observe", "", 210, 240),
		span("observe: containers", "p", 212, 230),
		span("start-app", "p-app-1", 250, 1300),
		span("create", "p-app-1", 250, 300),
		span("start-app", "p-app-2", 251, 1400),
		span("create", "p-app-2", 251, 320),
		span("start", "p-app-1", 300, 1290),
		span("start", "p-app-2", 320, 1390),
		span("journal", "container_created", 1290, 1300),
		span("journal", "container_created", 1390, 1400),
		span("wait-healthy", "2 app container(s)", 1400, 1450),
		span("healthy", "p-app-1", 1420, 1420),
		span("reload-nginx", "p-nginx", 1450, 1700),
		span("nginx -t", "p-nginx", 1450, 1550),
		span("nginx reports revision", "r2", 1650, 1700),
		span("journal", "deploy_succeeded", 4000, 4010), // outside every op
		span("observe after apply", "", 4020, 4030),
		span("observe: containers", "p", 4022, 4028), // a row of its own, not the first observe's
	}}
	tr.Spans[16].Note = "2 polls"
	got := breakdown(tr, t0, 1680*time.Millisecond, 1690*time.Millisecond)
	type row struct {
		name     string
		from, to int
		count    int
		child    bool
	}
	want := []row{
		{"rename → file event received", 0, 5, 1, false},
		{"debounce", 5, 205, 1, false},
		{"observe", 210, 240, 1, false},
		{"observe: containers", 212, 230, 1, true},
		{"start-app", 250, 1400, 2, false},
		{"create", 250, 320, 2, true},
		{"start", 300, 1390, 2, true},
		{"journal container_created", 1290, 1400, 2, true},
		{"wait-healthy", 1400, 1450, 1, false},
		{"healthy p-app-1", 1420, 1420, 1, true},
		{"reload-nginx", 1450, 1700, 1, false},
		{"nginx -t", 1450, 1550, 1, true},
		{"nginx reports revision", 1650, 1700, 1, true},
		{"first response from the new version (load)", 1680, 1680, 0, false},
		{"every response new from here (load)", 1690, 1690, 0, false},
		{"journal deploy_succeeded", 4000, 4010, 1, false},
		{"observe after apply", 4020, 4030, 1, false},
		{"observe: containers", 4022, 4028, 1, true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d:\n%+v", len(got), len(want), got)
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.From != ms(w.from) || g.To != ms(w.to) || g.Count != w.count || g.Child != w.child {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
	}
	if got[5].Each != 59500*time.Microsecond {
		t.Errorf("median create = %s, want 59.5ms", got[5].Each)
	}
	if got[12].Note != "2 polls" {
		t.Errorf("note = %q", got[12].Note)
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

func TestProcParsers(t *testing.T) {
	// A command name with spaces and parentheses, utime 250 and stime 50
	// ticks.
	stat := []byte("4242 (swift deployd) (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 9 0 123 456 789\n")
	if got, err := parseStatCPU(stat); err != nil || got != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1")); err == nil {
		t.Error("a short stat line parsed")
	}
	status := []byte("Name:\tswiftdeployd\nVmHWM:\t   30000 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n")
	rss, peak, err := parseStatusMem(status)
	if err != nil || rss != 20480<<10 || peak != 30000<<10 {
		t.Errorf("parseStatusMem = %d, %d, %v", rss, peak, err)
	}
	if _, _, err := parseStatusMem([]byte("Name:\tx\n")); err == nil {
		t.Error("a status without VmRSS parsed")
	}
}
