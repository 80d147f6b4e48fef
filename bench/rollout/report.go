package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/loadgen"
)

// outcome is one measured phase.
type outcome struct {
	Method string
	N      int
	Run    int
	// Failed of Total requests; Failed -1 when the phase sends no load.
	Failed, Total int
	Kinds         map[string]int
	// FirstNew, AllNew: see timeline. Done is the change to the tool
	// saying it is done. -1 when not applicable.
	FirstNew, AllNew, Done time.Duration
	P99                    time.Duration
	Steps                  []step
	// Reconcile and CPU: how long the daemon's reconcile of the change
	// took by its own trace, and the CPU time the daemon used meanwhile;
	// -1 when unknown.
	Reconcile, CPU time.Duration
	// RSS and PeakRSS: the idle daemon's VmRSS and VmHWM, in bytes.
	RSS, PeakRSS int64
	Engine       []engineMilestone
	Notes        []string
	Err          string // why the phase failed

	extra *outcome // the floor's N-container figure
}

// fill sets the load figures from the recorder and loadgen's summary.
func (o *outcome) fill(rec *recorder, sum loadgen.Result, t0 time.Time) {
	samples := rec.snapshot()
	tl := analyse(samples, rec.newVersion, t0, sum.Failures[loadgen.FailureSkipped])
	o.Failed, o.Total = tl.Failed, tl.Total
	o.FirstNew, o.AllNew, o.P99 = tl.FirstNew, tl.AllNew, tl.P99
	o.Kinds = sum.Failures
	if sum.Total != tl.Total {
		o.Notes = append(o.Notes, fmt.Sprintf("loadgen accounted for %d requests, the recording transport for %d", sum.Total, tl.Total))
	}
}

// trace fills the breakdown from the daemon's trace of the reconcile the
// change caused (trigger "manifest" or "promote").
func (o *outcome) trace(logPath string, t0 time.Time, trigger string) {
	o.Reconcile, o.CPU = -1, -1
	tr := firstTrace(logPath, t0, trigger)
	if tr == nil {
		o.Notes = append(o.Notes, "no reconcile trace found in the daemon's log")
		return
	}
	o.Steps = breakdown(tr, t0, o.FirstNew, o.AllNew)
	o.Reconcile, o.CPU = tr.Took, tr.CPU
	o.Notes = append(o.Notes, fmt.Sprintf("the daemon's reconcile of the change took %s and %s of its CPU (getrusage around the reconcile, the whole process)", fmtDur(tr.Took), fmtMs(tr.CPU)))
}

func fmtMs(d time.Duration) string {
	if d < 0 {
		return "—"
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func (o outcome) summary() string {
	s := fmt.Sprintf("%s N=%d: ", o.Method, o.N)
	if o.Failed >= 0 {
		s += fmt.Sprintf("failed %s, ", failedCell(o.Failed, o.Total))
	}
	s += fmt.Sprintf("first new %s, all new %s, done %s", fmtDur(o.FirstNew), fmtDur(o.AllNew), fmtDur(o.Done))
	if o.Failed > 0 {
		s += " (" + failureKinds(o.Kinds) + ")"
	}
	return s
}

// fmtSec is an offset with millisecond precision.
func fmtSec(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func failedCell(failed, total int) string {
	if failed < 0 {
		return "—"
	}
	if total == 0 {
		return "0 / 0"
	}
	return fmt.Sprintf("%d / %d (%.1f%%)", failed, total, 100*float64(failed)/float64(total))
}

// median of the values that are not -1; -1 if none.
func median(ds []time.Duration) time.Duration {
	var v []time.Duration
	for _, d := range ds {
		if d >= 0 {
			v = append(v, d)
		}
	}
	if len(v) == 0 {
		return -1
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func medianInt(xs []int) int {
	if len(xs) == 0 {
		return -1
	}
	v := slices.Clone(xs)
	slices.Sort(v)
	return v[len(v)/2]
}

var methodOrder = []string{methodCompose, methodDaemon, methodCompare, methodFloor, methodFloorN, methodCanary}

// printCost writes what a rollout costs per replica, and what an idle
// daemon costs: medians over runs.
func printCost(w io.Writer, b *bench, all []outcome) {
	pick := func(method string, n int) []outcome {
		var rs []outcome
		for _, o := range all {
			if o.Method == method && o.N == n && o.Err == "" {
				rs = append(rs, o)
			}
		}
		return rs
	}
	med := func(rs []outcome, f func(outcome) time.Duration) time.Duration {
		var ds []time.Duration
		for _, o := range rs {
			ds = append(ds, f(o))
		}
		return median(ds)
	}
	per := func(d time.Duration, n int) time.Duration {
		if d < 0 {
			return -1
		}
		return d / time.Duration(n)
	}
	header := false
	for _, n := range b.ns {
		rs := pick(methodDaemon, n)
		if len(rs) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nCost of a full image change per replica (swiftdeployd, medians over runs; the daemon's CPU is getrusage of the whole process around the reconcile):")
			fmt.Fprintln(w, "\n| N | all new | per replica | tool done | per replica | engine, N at once | per replica | daemon reconcile | daemon CPU | CPU per replica |")
			fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
			header = true
		}
		allNew, done := med(rs, func(o outcome) time.Duration { return o.AllNew }), med(rs, func(o outcome) time.Duration { return o.Done })
		rec, cpu := med(rs, func(o outcome) time.Duration { return o.Reconcile }), med(rs, func(o outcome) time.Duration { return o.CPU })
		floorN := med(pick(methodFloorN, n), func(o outcome) time.Duration { return o.AllNew })
		if n == 1 {
			floorN = med(pick(methodFloor, n), func(o outcome) time.Duration { return o.AllNew })
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n, fmtDur(allNew), fmtMs(per(allNew, n)), fmtDur(done), fmtMs(per(done, n)),
			fmtDur(floorN), fmtMs(per(floorN, n)), fmtDur(rec), fmtMs(cpu), fmtMs(per(cpu, n)))
	}
	header = false
	for _, n := range b.ns {
		rs := pick(methodIdle, n)
		if len(rs) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nIdle daemon (converged, no requests; medians over runs):")
			fmt.Fprintln(w, "\n| N | watched | CPU used | share of one core | VmRSS | VmHWM (peak) |")
			fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|")
			header = true
		}
		cpu, took := med(rs, func(o outcome) time.Duration { return o.CPU }), med(rs, func(o outcome) time.Duration { return o.Done })
		var rss, peak []int
		for _, o := range rs {
			rss, peak = append(rss, int(o.RSS)), append(peak, int(o.PeakRSS))
		}
		fmt.Fprintf(w, "| %d | %s | %s | %.2f%% | %s | %s |\n", n, fmtDur(took), fmtMs(cpu), 100*cpu.Seconds()/took.Seconds(), mib(int64(medianInt(rss))), mib(int64(medianInt(peak))))
	}
}

// printReport writes the results as Markdown: per N the medians over runs,
// then the same-run ratios, then the swiftdeployd step breakdowns.
func printReport(w io.Writer, b *bench, machine string, all []outcome, heading bool) {
	if heading {
		fmt.Fprintf(w, "# Rollout benchmark results\n\n")
	}
	fmt.Fprintf(w, "\nImage change %s (%s) → %s (%s) under %d req/s open-loop load, made %s into the load; %d run(s), medians shown.\n",
		images.AppImage, images.AppVersion, images.AppImageV2, images.AppV2Version, b.rps, b.warmup, b.runs)
	fmt.Fprintf(w, "Measured %s UTC. Machine: %s; load average at the end %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04"), machine, loadAvg())

	fmt.Fprintln(w, "| N | method | failed / total | first new | all new | tool done |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|")
	for _, n := range b.ns {
		for _, m := range methodOrder {
			var rs []outcome
			for _, o := range all {
				if o.N == n && o.Method == m {
					rs = append(rs, o)
				}
			}
			if len(rs) == 0 {
				continue
			}
			var failed, totals []int
			var first, allNew, done []time.Duration
			errs := 0
			for _, o := range rs {
				if o.Err != "" {
					errs++
					continue
				}
				failed = append(failed, o.Failed)
				totals = append(totals, o.Total)
				first = append(first, o.FirstNew)
				allNew = append(allNew, o.AllNew)
				done = append(done, o.Done)
			}
			label := m
			if errs > 0 {
				label = fmt.Sprintf("%s (**%d of %d run(s) failed**, see below)", m, errs, len(rs))
			}
			fc := "—"
			if len(failed) > 0 {
				fc = failedCell(medianInt(failed), medianInt(totals))
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s |\n", n, label,
				fc, fmtDur(median(first)), fmtDur(median(allNew)), fmtDur(median(done)))
		}
	}

	fmt.Fprintln(w, "\nRatios (computed within each run, then the median over runs):")
	fmt.Fprintln(w, "\n| N | swiftdeployd / compose, first new | swiftdeployd / compose, all new | swiftdeployd / compose, tool done | swiftdeployd / floor, first new | swiftdeployd / floor, all new |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|")
	for _, n := range b.ns {
		var cf, ca, cd, ff, fa []float64
		for r := 1; r <= b.runs; r++ {
			d, okD := find(all, methodDaemon, n, r)
			c, okC := find(all, methodCompose, n, r)
			f, okF := find(all, methodFloor, n, r)
			okD = okD && d.Err == ""
			okC = okC && c.Err == ""
			okF = okF && f.Err == ""
			if okD && okC {
				cf, ca = appendRatio(cf, d.FirstNew, c.FirstNew), appendRatio(ca, d.AllNew, c.AllNew)
				cd = appendRatio(cd, d.Done, c.Done)
			}
			if okD && okF {
				ff, fa = appendRatio(ff, d.FirstNew, f.AllNew), appendRatio(fa, d.AllNew, f.AllNew)
			}
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s |\n", n, medianRatio(cf), medianRatio(ca), medianRatio(cd), medianRatio(ff), medianRatio(fa))
	}

	if b.compare != "" {
		fmt.Fprintf(w, "\nThis build against the -compare build (%s), both measured in each run (computed within each run, then the median over runs):\n", b.compare)
		fmt.Fprintln(w, "\n| N | this / compare, all new | this / compare, tool done | this / compare, daemon CPU |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|")
		for _, n := range b.ns {
			var ra, rd, rc []float64
			for r := 1; r <= b.runs; r++ {
				d, okD := find(all, methodDaemon, n, r)
				c, okC := find(all, methodCompare, n, r)
				if okD && okC && d.Err == "" && c.Err == "" {
					ra, rd, rc = appendRatio(ra, d.AllNew, c.AllNew), appendRatio(rd, d.Done, c.Done), appendRatio(rc, d.CPU, c.CPU)
				}
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s |\n", n, medianRatio(ra), medianRatio(rd), medianRatio(rc))
		}
	}

	printCost(w, b, all)

	fmt.Fprintln(w, "\nPer run:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| run | N | method | failed / total | failures by kind | first new | all new | tool done | p99 latency |")
	fmt.Fprintln(w, "|---:|---:|---|---:|---|---:|---:|---:|---:|")
	for _, o := range all {
		kinds, p99 := "—", "—"
		if o.Err != "" {
			fmt.Fprintf(w, "| %d | %d | %s | **failed** (see below) | | | | | |\n", o.Run, o.N, o.Method)
			continue
		}
		if o.Method == methodIdle {
			continue // its own table
		}
		if o.Failed >= 0 {
			kinds = failureKinds(o.Kinds)
			p99 = fmt.Sprintf("%d ms", o.P99.Milliseconds())
		}
		fmt.Fprintf(w, "| %d | %d | %s | %s | %s | %s | %s | %s | %s |\n", o.Run, o.N, o.Method,
			failedCell(o.Failed, o.Total), kinds, fmtDur(o.FirstNew), fmtDur(o.AllNew), fmtDur(o.Done), p99)
	}

	for _, o := range all {
		if len(o.Steps) == 0 && len(o.Notes) == 0 && len(o.Engine) == 0 && o.Err == "" {
			continue
		}
		fmt.Fprintf(w, "\n**Run %d, N=%d, %s**\n\n", o.Run, o.N, o.Method)
		if o.Err != "" {
			fmt.Fprintf(w, "- **failed**: %s\n", strings.ReplaceAll(strings.TrimSpace(o.Err), "\n", " ⏎ "))
		}
		for _, n := range o.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		if len(o.Steps) > 0 {
			fmt.Fprintln(w, "\n| step (the daemon's reconcile trace; offsets from the change) | from | to | took | count | each (median) | note |")
			fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---|")
			for _, s := range o.Steps {
				name, each, count := s.Name, "", ""
				if s.Child {
					name = "↳ " + name
				}
				if s.Count > 1 {
					count, each = strconv.Itoa(s.Count), fmtMs(s.Each)
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", name, fmtSec(s.From), fmtSec(s.To), fmtMs(s.To-s.From), count, each, s.Note)
			}
		}
		if len(o.Engine) > 0 {
			fmt.Fprintln(w, "\n| app container event (engine) | image | count | first | last |")
			fmt.Fprintln(w, "|---|---|---:|---:|---:|")
			for _, m := range o.Engine {
				fmt.Fprintf(w, "| %s | %s | %d | %s | %s |\n", m.Action, m.Image, m.Count, fmtDur(m.First), fmtDur(m.Last))
			}
		}
	}
	fmt.Fprintln(w)
}

// loadAvg is the 1, 5 and 15 minute load averages, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func find(all []outcome, method string, n, run int) (outcome, bool) {
	for _, o := range all {
		if o.Method == method && o.N == n && o.Run == run {
			return o, true
		}
	}
	return outcome{}, false
}

func appendRatio(rs []float64, a, b time.Duration) []float64 {
	if a < 0 || b <= 0 {
		return rs
	}
	return append(rs, a.Seconds()/b.Seconds())
}

func medianRatio(rs []float64) string {
	if len(rs) == 0 {
		return "—"
	}
	v := slices.Clone(rs)
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return fmt.Sprintf("%.2f×", m)
}
