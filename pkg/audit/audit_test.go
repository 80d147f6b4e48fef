package audit

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// start is just before midnight so that the timeline spans two dates.
var start = time.Date(2026, 5, 6, 23, 58, 0, 0, time.UTC)

// at returns start plus d seconds.
func at(d int) time.Time { return start.Add(time.Duration(d) * time.Second) }

func event(sec int, name, msg, user string) journal.Record {
	r := journal.NewEvent(name, msg)
	r.Timestamp, r.User = at(sec), user
	return r
}

// withReasons adds the reasons to an event's details, as the daemon does.
func withReasons(r journal.Record, reasons ...string) journal.Record {
	l := make([]any, len(reasons))
	for i, s := range reasons {
		l[i] = s
	}
	r.Details = map[string]any{"reasons": l}
	return r
}

func snapshot(sec int, mode, track, policy string, rps, p99, errRate float64) journal.Record {
	return journal.Record{
		Type: journal.TypeSnapshot, Timestamp: at(sec), Mode: mode, Track: track, Policy: policy,
		ReqPerSec: journal.Float(rps), P99Latency: journal.Float(p99), ErrorRate: journal.Float(errRate),
	}
}

func canaryDecision(sec int, allowed bool, reasons []string, requests, p99, errRate float64) journal.Record {
	r := journal.NewDecision("canary_safety", allowed, reasons, map[string]any{
		"mode": "canary", "requests": requests, "req_per_sec": requests / 60, "error_rate": errRate, "p99_latency": p99,
		"thresholds": map[string]any{"max_error_rate": 0.01, "max_p99_ms": 500.0, "min_requests": 20},
	})
	r.Timestamp, r.User = at(sec), "alice"
	return r
}

func infraDecision(sec int, allowed bool, reasons []string, diskGB float64) journal.Record {
	r := journal.NewDecision("infrastructure", allowed, reasons, map[string]any{
		"disk_path": "/var/lib/docker", "disk_free_gb": diskGB, "cpu_load": 0.42, "cpu_count": 2,
		"thresholds": map[string]any{"min_disk_gb": 10.0, "max_cpu_load": 2.0},
	})
	r.Timestamp = at(sec)
	return r
}

// canaryIncident is the article's story: deploy, canary, chaos, a denied
// promotion, recovery, promotion, then a denied deploy on a full disk.
func canaryIncident() []journal.Record {
	rs := []journal.Record{
		event(0, journal.EventDaemonStarted, "swiftdeployd started for /srv/shop/manifest.yaml", ""),
		event(1, journal.EventManifestApplied, "manifest loaded", ""),
		event(2, journal.EventDeployStarted, "deploy requested", "alice"),
		infraDecision(2, true, nil, 48.2),
		event(3, journal.EventContainerCreated, "created shop-stable-1", ""),
		event(9, journal.EventDeploySucceeded, "converged in 6.2s: 3 operation(s)", ""),
		snapshot(15, "stable", "stable", journal.PolicyPass, 14.5, 42, 0),
		snapshot(20, "stable", "stable", journal.PolicyPass, 15, 45.5, 0.001),
		event(30, journal.EventManifestRejected, "manifest rejected: [services.port: must be 1-65535, got 0 (line 3) <b>|x|</b>]", ""),
		event(60, journal.EventManifestApplied, "manifest loaded", ""),
		event(70, journal.EventDeploySucceeded, "converged in 4s: 2 operation(s)", ""),
		snapshot(75, "canary", "stable", journal.PolicyPass, 12, 40, 0),
		snapshot(75, "canary", "canary", journal.PolicyPass, 3, 48, 0),
		event(100, journal.EventChaosInjected, "chaos slow on canary track (shop-canary-1)", "alice"),
		snapshot(105, "canary", "stable", journal.PolicyPass, 12, 41, 0),
		snapshot(105, "canary", "canary", journal.PolicyFail, 3, 620, 0.03),
		snapshot(110, "canary", "stable", journal.PolicyPass, 12, 43, 0),
		snapshot(110, "canary", "canary", journal.PolicyFail, 3.2, 712.4, 0.045),
		snapshot(115, "canary", "canary", journal.PolicyFail, 3.1, 650, 0.04),
		event(120, journal.EventPromoteRequested, "promotion of shop:2.0 requested", "alice"),
		canaryDecision(120, false, []string{"Error rate exceeds 1% threshold", "P99 latency exceeds 500ms"}, 186, 650, 0.04),
		event(120, journal.EventPromoteDenied, "promotion of shop:2.0 denied: Error rate exceeds 1% threshold; P99 latency exceeds 500ms", "alice"),
		event(130, journal.EventChaosRecovered, "chaos recover on canary track (shop-canary-1)", "alice"),
		snapshot(135, "canary", "canary", journal.PolicyPass, 3, 47, 0),
		snapshot(200, "canary", "canary", journal.PolicyFail, 3, 180, 0.02),
		snapshot(205, "canary", "canary", journal.PolicyPass, 3, 50, 0),
		canaryDecision(210, true, nil, 190, 50, 0),
		event(215, journal.EventPromoted, "shop:2.0 is now stable; 100% of traffic on it", "alice"),
		snapshot(220, "stable", "stable", journal.PolicyPass, 15, 44, 0),
		event(230, journal.EventRollback, "canary shop:3.0 rolled back; all traffic to stable", "bob"),
		event(240, "cache_warmed", "a newer daemon's event", ""),
		infraDecision(250, false, []string{"Disk space below 10GB"}, 7.25),
		event(250, journal.EventDeployDenied, "DENIED: [Disk space below 10GB]", ""),
		withReasons(event(255, journal.EventDeployDenied, "DENIED: [CPU load above 2.0 Disk space below 10GB]", ""), "CPU load above 2.0", "Disk space below 10GB"),
		event(260, "down", "removed every container and network of project shop", "alice"),
	}
	return rs
}

// writeJournal appends recs to a new journal in a temp dir, optionally lets
// tamper edit the file, and returns the Input Render gets from it.
func writeJournal(t *testing.T, recs []journal.Record, tamper func(t *testing.T, path string)) Input {
	t.Helper()
	path := filepath.Join(t.TempDir(), "history.jsonl")
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := j.Append(r); err != nil {
			t.Fatalf("append %+v: %v", r, err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		tamper(t, path)
	}
	in := Input{Journal: "history.jsonl"}
	in.Verify, err = journal.Verify(path)
	if err != nil {
		t.Fatal(err)
	}
	err = journal.Read(path, journal.Filter{}, func(r journal.Record) error {
		in.Records = append(in.Records, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// editLine replaces old with new in line n (1-based) of the file at path.
func editLine(n int, old, new string) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(data, []byte("\n"))
		if !bytes.Contains(lines[n-1], []byte(old)) {
			t.Fatalf("line %d of %s does not contain %q: %s", n, path, old, lines[n-1])
		}
		lines[n-1] = bytes.Replace(lines[n-1], []byte(old), []byte(new), 1)
		if err := os.WriteFile(path, bytes.Join(lines, []byte("\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("report differs from %s (run go test -update if the change is intended):\n%s", path, got)
	}
}

func TestRenderGolden(t *testing.T) {
	// A long canary run: one snapshot per track every 5s for 25 minutes
	// with a latency spike in the middle, and no decision records, so the
	// thresholds come from the Input.
	var long []journal.Record
	long = append(long,
		event(0, journal.EventDeploySucceeded, "converged in 3s: 4 operation(s)", ""),
		event(0, journal.EventModeSwitched, "Mode switched to canary (shop:2.0 at 20%)", ""))
	for i := range 300 {
		sec := 5 + 5*i
		p99, errRate, verdict := 40+float64(i%7), 0.002, journal.PolicyPass
		if i >= 140 && i < 146 {
			p99, errRate, verdict = 900+float64(10*i-1400), 0.25, journal.PolicyFail
		}
		long = append(long,
			snapshot(sec, "canary", "stable", journal.PolicyPass, 20, 30, 0),
			snapshot(sec, "canary", "canary", verdict, 5, p99, errRate))
	}
	maxErr, maxP99 := 0.01, 500.0

	tests := []struct {
		name   string
		golden string
		input  func(t *testing.T) Input
	}{
		{
			name:   "canary incident",
			golden: "canary_incident.md",
			input:  func(t *testing.T) Input { return writeJournal(t, canaryIncident(), nil) },
		},
		{
			name:   "broken chain",
			golden: "broken_chain.md",
			input: func(t *testing.T) Input {
				// Someone hides the chaos injection by rewording it.
				return writeJournal(t, canaryIncident(), editLine(14, "chaos slow on canary track", "routine check on canary track"))
			},
		},
		{
			name:   "denial streak",
			golden: "denial_streak.md",
			input:  func(t *testing.T) Input { return busyHost(t) },
		},
		{
			name:   "empty journal",
			golden: "empty.md",
			input:  func(t *testing.T) Input { return writeJournal(t, nil, nil) },
		},
		{
			name:   "long run downsampled",
			golden: "long_run.md",
			input: func(t *testing.T) Input {
				in := writeJournal(t, long, nil)
				in.Thresholds = Thresholds{MaxErrorRate: &maxErr, MaxP99Ms: &maxP99}
				return in
			},
		},
		{
			name:   "unreadable journal",
			golden: "unreadable.md",
			input: func(*testing.T) Input {
				return Input{
					Journal:     "history.jsonl",
					Records:     canaryIncident()[:3],
					ReadError:   "history.jsonl:4: invalid record: unexpected end of JSON input",
					VerifyError: "open journal file history.jsonl: permission denied",
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.input(t)
			checkGolden(t, tc.golden, Render(in))
			// Streamed, the report is the same byte for byte.
			checkGolden(t, tc.golden, Render(streamed(in)))
		})
	}
}

// streamed turns in.Records into in.Read, as swiftctl audit reads a
// journal: the records are never all in memory. A ReadError becomes the
// error Read returns after the records.
func streamed(in Input) Input {
	if in.Read != nil {
		return in
	}
	recs, readErr := in.Records, in.ReadError
	in.Records, in.ReadError = nil, ""
	in.Read = func(fn func(journal.Record) error) error {
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		if readErr != "" {
			return errors.New(readErr)
		}
		return nil
	}
	return in
}

// TestRenderReadsWhatTheFirstPassSaw: the daemon appends to the journal
// while the report is made, so the second pass may see more records than
// the first. The report covers the first pass's records and no more.
func TestRenderReadsWhatTheFirstPassSaw(t *testing.T) {
	in := writeJournal(t, canaryIncident(), nil)
	want := Render(in)
	passes := 0
	grown := append(slices.Clone(in.Records), event(300, journal.EventDeploySucceeded, "appended meanwhile", ""))
	in.Records = nil
	in.Read = func(fn func(journal.Record) error) error {
		passes++
		recs := grown[:len(grown)-1]
		if passes > 1 {
			recs = grown
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	if got := Render(in); !bytes.Equal(got, want) {
		t.Errorf("report differs when the journal grows between passes:\n%s", got)
	}
}

// TestRenderStreamsInBoundedMemory renders a large journal (a week of
// snapshots) streamed from disk and checks that the live heap stays far
// below what holding its records would take.
func TestRenderStreamsInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a large journal")
	}
	path := filepath.Join(t.TempDir(), "history.jsonl")
	j, err := journal.Open(path, journal.Options{MaxBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	const snapshots = 120_000
	for i := range snapshots {
		rec := snapshot(5*i, "canary", "canary", journal.PolicyPass, 5, float64(40+i%13), 0.001)
		if i%1000 == 500 {
			rec.Policy, rec.P99Latency = journal.PolicyFail, journal.Float(900)
		}
		if err := j.AppendBuffered(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Fatalf("journal not written: %v", err)
	}

	var peak uint64
	sample := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	}
	sample()
	base := peak
	n := 0
	in := Input{Journal: "history.jsonl", Verify: journal.VerifyReport{OK: true}, Read: func(fn func(journal.Record) error) error {
		return journal.Read(path, journal.Filter{}, func(r journal.Record) error {
			if n++; n%20_000 == 0 {
				sample()
			}
			return fn(r)
		})
	}}
	report := Render(in)
	if n != 2*snapshots {
		t.Fatalf("Render read %d records, want two passes of %d", n, snapshots)
	}
	if !bytes.Contains(report, []byte(fmt.Sprintf("(%d records)", snapshots))) {
		t.Fatalf("report does not cover the %d records:\n%.600s", snapshots, report)
	}
	// Holding the records would take about 300 bytes each (36 MB here);
	// the report itself (120 violations, a 50-point chart) a few hundred KB.
	const bound = 4 << 20
	t.Logf("live heap: %d bytes before, at most %d while rendering", base, peak)
	if grew := peak - min(base, peak); grew > bound {
		t.Errorf("live heap grew by %d bytes while rendering %d records, want at most %d", grew, snapshots, bound)
	}
}

// busyHost is a deploy retried every 20s for ten minutes on a busy host,
// journaled through journal.Repeats as the daemon does, after a denial
// journaled the way older daemons did.
func busyHost(t *testing.T) Input {
	t.Helper()
	at := time.Date(2026, 5, 6, 19, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "history.jsonl")
	now := at
	clock := func() time.Time { return now }
	j, err := journal.Open(path, journal.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	rep := &journal.Repeats{Now: clock}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	input := func(load float64) map[string]any {
		return map[string]any{"disk_path": "/var/lib/docker", "disk_free_gb": 48.2, "cpu_load": load, "cpu_count": 2,
			"thresholds": map[string]any{"min_disk_gb": 10.0, "max_cpu_load": 2.0}}
	}
	// An older daemon: raw load, no codes, the reasons as a Go slice.
	must(j.Append(journal.NewDecision("infrastructure", false, []string{"CPU load above 2.0"}, input(3.1))))
	must(j.Append(journal.NewEvent(journal.EventDeployDenied, "DENIED: [CPU load above 2.0]")))
	loads := []struct {
		load    float64
		figures string
	}{{4.8, "2.4 per core (4.8 on 2 CPUs)"}, {4.9, "2.45 per core (4.9 on 2 CPUs)"}, {5.2, "2.6 per core (5.2 on 2 CPUs)"}}
	for i := range 30 {
		now = at.Add(6*time.Minute + time.Duration(i)*20*time.Second)
		load := loads[i%len(loads)]
		reason := "CPU load " + load.figures + " above 2.0"
		dec := journal.NewDecision("infrastructure", false, []string{reason}, input(load.load))
		dec.Codes = []string{"cpu_load_high"}
		must(rep.Append(j, "decision/infrastructure", dec))
		ev := withReasons(journal.NewEvent(journal.EventDeployDenied, "DENIED: "+reason), reason)
		ev.Codes = dec.Codes
		must(rep.Append(j, "event/deploy_denied", ev))
	}
	now = at.Add(16*time.Minute + 20*time.Second)
	must(rep.Append(j, "decision/infrastructure", journal.NewDecision("infrastructure", true, nil, input(3.2))))
	must(rep.End(j, "event/deploy_denied"))
	must(j.Append(journal.NewEvent(journal.EventDeploySucceeded, "converged in 9s: 4 operation(s)")))
	must(rep.Flush(j))
	must(j.Close())

	in := Input{Journal: "history.jsonl"}
	if in.Verify, err = journal.Verify(path); err != nil {
		t.Fatal(err)
	}
	in.Read = func(fn func(journal.Record) error) error { return journal.Read(path, journal.Filter{}, fn) }
	return in
}

// TestStreakCounts: a streak's summary counts all its records, once: the
// first is a line of its own, so a summary adds count-1, unless that
// first line is not in the journal.
func TestStreakCounts(t *testing.T) {
	first := event(0, journal.EventDeployDenied, "DENIED: busy", "")
	summary := func(count int, firstSec, lastSec int) journal.Record {
		r := event(lastSec+1, journal.EventDeployDenied, "DENIED: busy", "")
		r.Count, r.FirstSeen, r.LastSeen = count, at(firstSec), at(lastSec)
		return r
	}
	tests := []struct {
		name  string
		recs  []journal.Record
		count int
		lines []string
	}{
		{"one denial", []journal.Record{first}, 1, []string{"— Deploy denied: busy"}},
		{"a streak", []journal.Record{first, summary(32, 0, 600)}, 32,
			[]string{"- 23:58:00 — Deploy denied 32 times from 23:58:00 to 00:08:00: busy"}},
		{"a streak whose first line is missing", []journal.Record{summary(5, 0, 80)}, 5,
			[]string{"- 23:59:21 — Deploy denied 5 times from 23:58:00 to 23:59:20: busy"}},
		{"two streaks", []journal.Record{first, summary(3, 0, 40), event(50, journal.EventDeployDenied, "DENIED: busy", ""), summary(4, 50, 110)}, 7,
			[]string{"- 23:58:00 — Deploy denied 3 times from 23:58:00 to 23:58:40: busy", "- 23:58:50 — Deploy denied 4 times from 23:58:50 to 23:59:50: busy"}},
		{"a summary of another event", []journal.Record{event(0, journal.EventDeployFailed, "boom", ""), summary(2, 0, 10)}, 2,
			[]string{"Deploy failed: boom", "Deploy denied 2 times"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			report := string(Render(Input{Journal: "history.jsonl", Records: tc.recs}))
			if want := fmt.Sprintf("| Deploys denied by policy | %d |", tc.count); !strings.Contains(report, want) {
				t.Errorf("report lacks %q", want)
			}
			for _, l := range tc.lines {
				if !strings.Contains(report, l) {
					t.Errorf("report lacks %q", l)
				}
			}
			if n := strings.Count(report, "— Deploy denied"); n != len(tc.lines) && tc.name != "a summary of another event" {
				t.Errorf("%d timeline lines for denials, want %d:\n%s", n, len(tc.lines), report)
			}
		})
	}
}

// TestBrokenChainIsProminent checks what the golden files cannot say on
// their own: a broken chain is announced before anything else.
func TestBrokenChainIsProminent(t *testing.T) {
	in := writeJournal(t, canaryIncident(), editLine(14, "chaos slow", "all quiet"))
	if in.Verify.OK {
		t.Fatal("Verify passed a tampered journal; the test's tampering is broken")
	}
	report := string(Render(in))
	firstSection := strings.Index(report, "\n## ")
	warning := strings.Index(report, "JOURNAL INTEGRITY CHECK FAILED")
	if warning < 0 || warning > firstSection {
		t.Errorf("integrity warning at %d, first section at %d; want the warning before every section:\n%s", warning, firstSection, report)
	}
	if !strings.Contains(report, "line 15") {
		t.Errorf("report does not name line 15, the first line whose prev no longer matches:\n%s", report)
	}
}

func TestDownsample(t *testing.T) {
	series := func(n int) []point {
		pts := make([]point, n)
		for i := range pts {
			pts[i] = point{at: at(i), p99: float64(i % 10), errorRate: 0}
		}
		return pts
	}
	spiked := series(1000)
	spiked[777].p99, spiked[123].errorRate = 5000, 0.9

	tests := []struct {
		name    string
		in      []point
		wantLen int
		wantPer int
	}{
		{"empty", nil, 0, 1},
		{"at the limit", series(MaxChartPoints), MaxChartPoints, 1},
		{"one over", series(MaxChartPoints + 1), 26, 2},
		{"a thousand with spikes", spiked, 50, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, per := downsample(tc.in)
			if len(out) != tc.wantLen || per != tc.wantPer {
				t.Fatalf("downsample: %d points of %d each, want %d of %d", len(out), per, tc.wantLen, tc.wantPer)
			}
			var maxP99, maxErr float64
			for _, p := range tc.in {
				maxP99, maxErr = max(maxP99, p.p99), max(maxErr, p.errorRate)
			}
			var gotP99, gotErr float64
			for _, p := range out {
				gotP99, gotErr = max(gotP99, p.p99), max(gotErr, p.errorRate)
			}
			if gotP99 != maxP99 || gotErr != maxErr {
				t.Errorf("downsampled maxima p99 %v, error rate %v; want %v, %v (spikes must survive)", gotP99, gotErr, maxP99, maxErr)
			}
			if len(out) > 0 && !out[0].at.Equal(tc.in[0].at) {
				t.Errorf("first point at %s, want %s", out[0].at, tc.in[0].at)
			}
		})
	}
}

// TestEventText checks that reasons are written as text whatever shape an
// older daemon gave its message: fmt.Sprint of a []string ("[a b]") reads
// as a Go slice, not as reasons.
func TestEventText(t *testing.T) {
	reasons := func(rs ...string) map[string]any {
		l := make([]any, len(rs))
		for i, r := range rs {
			l[i] = r
		}
		return map[string]any{"reasons": l}
	}
	tests := []struct {
		name    string
		event   string
		msg     string
		details map[string]any
		want    string
	}{
		{"plain message", journal.EventDeploySucceeded, "converged in 4s", nil, "converged in 4s"},
		{"denial prefix dropped", journal.EventDeployDenied, "DENIED: Disk space below 10GB", nil, "Disk space below 10GB"},
		{"Go slice of one", journal.EventDeployDenied, "DENIED: [CPU load above 2.0]", nil, "CPU load above 2.0"},
		{"Go slice of two, reasons in details", journal.EventDeployDenied, "DENIED: [CPU load above 2.0 Disk space below 10GB]",
			reasons("CPU load above 2.0", "Disk space below 10GB"), "CPU load above 2.0; Disk space below 10GB"},
		{"Go slice inside a sentence", journal.EventPromoteDenied, "promotion of shop:2.0 denied: [Error rate exceeds 1% threshold P99 latency exceeds 500ms]",
			reasons("Error rate exceeds 1% threshold", "P99 latency exceeds 500ms"), "promotion of shop:2.0 denied: Error rate exceeds 1% threshold; P99 latency exceeds 500ms"},
		{"reasons in details, no message", journal.EventDeployDenied, "", reasons("Disk space below 10GB"), "Disk space below 10GB"},
		{"joined reasons stay", journal.EventDeployDenied, "DENIED: a; b", reasons("a", "b"), "a; b"},
		{"brackets that are not a slice of the reasons", journal.EventManifestRejected, "manifest rejected: [services.port: must be 1-65535]", nil, "manifest rejected: [services.port: must be 1-65535]"},
		{"details that are not reasons", journal.EventDeployDenied, "DENIED: [x]", map[string]any{"reasons": "x"}, "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := journal.NewEvent(tc.event, tc.msg)
			rec.Details = tc.details
			if got := eventText(rec); got != tc.want {
				t.Errorf("eventText(%q, %v) = %q, want %q", tc.msg, tc.details, got, tc.want)
			}
		})
	}
}

func TestMarkdownEscaping(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "deploy requested", "deploy requested"},
		{"html", "<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
		{"emphasis and code", "*bold* _it_ `code`", `\*bold\* \_it\_ \` + "`code\\`"},
		{"link", "[x](http://evil)", `\[x\](http://evil)`},
		{"table pipe", "a|b", `a\|b`},
		{"newline cannot start a heading", "ok\n# Violations", `ok \# Violations`},
		{"backslash", `C:\x`, `C:\\x`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := md(tc.in); got != tc.want {
				t.Errorf("md(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// BenchmarkRender measures a report over a day of snapshots (two tracks
// every 5s) plus events.
func BenchmarkRender(b *testing.B) {
	var recs []journal.Record
	for i := range 17280 {
		recs = append(recs,
			snapshot(5*i, "canary", "stable", journal.PolicyPass, 20, 30, 0),
			snapshot(5*i, "canary", "canary", journal.PolicyFail, 5, float64(400+i%300), 0.02))
		if i%500 == 0 {
			recs = append(recs, event(5*i, journal.EventChaosInjected, "chaos slow on canary track", "alice"))
		}
	}
	in := Input{Journal: "history.jsonl", Records: recs, Verify: journal.VerifyReport{OK: true, Lines: len(recs)}}
	b.ReportAllocs()
	for b.Loop() {
		Render(in)
	}
}

// A denial on nginx's figures lists them beside the app's; a decision
// recorded before they existed lists only the app's.
func TestDeniedDecisionShowsProxyFigures(t *testing.T) {
	r := journal.NewDecision("canary_safety", false, []string{"Error rate unknown: no error metrics for the canary", "Proxy error rate exceeds 1% threshold"}, map[string]any{
		"mode": "canary", "requests": 0.0, "error_rate": nil, "p99_latency": nil,
		"proxy_requests": 200.0, "proxy_error_rate": 0.3, "proxy_p99_latency": 40.0,
		"thresholds": map[string]any{"max_error_rate": 0.01, "max_p99_ms": 500.0, "min_requests": 20},
	})
	got := deniedDecision(r)
	for _, want := range []string{"error rate unknown", "proxy error rate 30% (max 1%)", "proxy p99 latency 40ms (max 500ms)", "proxy requests 200 (min 20)"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	old := canaryDecision(0, false, []string{"Error rate exceeds 1% threshold"}, 186, 650, 0.04)
	if got := deniedDecision(old); strings.Contains(got, "proxy") {
		t.Errorf("an old record shows proxy figures: %q", got)
	}
}

// Consecutive denied decisions of one policy for the same reasons (by
// code) are one violation, as a streak is, since the daemon journals each
// decision with its own input; an allowed decision, other reasons or
// another violation start a new one.
func TestDenialRuns(t *testing.T) {
	busy := func(sec int, load float64) journal.Record {
		r := infraDecision(sec, false, []string{fmt.Sprintf("CPU load %.1f per core above 2.0", load/2)}, 48)
		r.Input["cpu_load"], r.Codes = load, []string{"cpu_load_high"}
		return r
	}
	full := func(sec int) journal.Record {
		r := infraDecision(sec, false, []string{"Disk space below 10GB"}, 2)
		r.Codes = []string{"disk_low"}
		return r
	}
	tests := []struct {
		name  string
		recs  []journal.Record
		lines []string
	}{
		{"drifting figures are one run, with the latest", []journal.Record{busy(0, 4.8), busy(20, 5.0), busy(40, 4.6)},
			[]string{"- 23:58:00 — Deploy denied (infrastructure) 3 times from 23:58:00 to 23:58:40: CPU load 2.3 per core above 2.0. Last observed: free disk 48GB (min 10GB), CPU load 2.3 per core, 4.6 on 2 CPUs (max 2 per core)"}},
		{"an allowed decision ends the run", []journal.Record{busy(0, 4.8), infraDecision(10, true, nil, 48), busy(20, 5.0)},
			[]string{"- 23:58:00 — Deploy denied (infrastructure): CPU load 2.4 per core", "- 23:58:20 — Deploy denied (infrastructure): CPU load 2.5 per core"}},
		{"other reasons are another run", []journal.Record{busy(0, 4.8), full(10), busy(20, 5.0)},
			[]string{"- 23:58:00 — Deploy denied (infrastructure): CPU load 2.4", "- 23:58:10 — Deploy denied (infrastructure): Disk space", "- 23:58:20 — Deploy denied (infrastructure): CPU load 2.5"}},
		{"another policy's violation between", []journal.Record{busy(0, 4.8), canaryDecision(10, false, []string{"P99 latency exceeds 500ms"}, 100, 900, 0), busy(20, 5.0)},
			[]string{"- 23:58:00 — Deploy denied (infrastructure): CPU load 2.4", "- 23:58:10 — Promotion denied", "- 23:58:20 — Deploy denied (infrastructure): CPU load 2.5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			report := string(Render(Input{Journal: "history.jsonl", Records: tc.recs}))
			v := report[strings.Index(report, "## Violations"):]
			v = v[:strings.Index(v, "## Latency")]
			var got []string
			for _, l := range strings.Split(v, "\n") {
				if strings.HasPrefix(l, "- ") {
					got = append(got, l)
				}
			}
			if len(got) != len(tc.lines) {
				t.Fatalf("violations:\n%s\nwant %d lines starting:\n%s", strings.Join(got, "\n"), len(tc.lines), strings.Join(tc.lines, "\n"))
			}
			for i, l := range tc.lines {
				if !strings.HasPrefix(got[i], l) {
					t.Errorf("violation %d:\n%s\nwant it to start:\n%s", i, got[i], l)
				}
			}
		})
	}
}

// Chaos is journaled once per container it reaches (details.op 1/3, 2/3,
// 3/3); the summary counts each chaos once, records of daemons before
// chaos plans (no details.op) included.
func TestChaosCountedOncePerPlan(t *testing.T) {
	op := func(sec int, name, o string) journal.Record {
		r := event(sec, name, "chaos", "alice")
		r.Details = map[string]any{"op": o}
		return r
	}
	recs := []journal.Record{
		op(0, journal.EventChaosInjected, "1/3"), op(0, journal.EventChaosInjected, "2/3"), op(0, journal.EventChaosInjected, "3/3"),
		event(5, journal.EventChaosInjected, "chaos slow on canary track (a, b)", "alice"),
		op(10, journal.EventChaosRecovered, "1/2"), op(10, journal.EventChaosRecovered, "2/2"),
	}
	report := string(Render(Input{Journal: "history.jsonl", Records: recs}))
	if want := "| Chaos injected | 2 |"; !strings.Contains(report, want) {
		t.Errorf("report lacks %q:\n%s", want, report)
	}
}
