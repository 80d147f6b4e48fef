package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// procCPU is the CPU time (user + system) process pid has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a /proc/<pid>/stat
// line. The command name (field 2) is in parentheses and may hold spaces:
// the fields are counted after its closing parenthesis.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc stat line %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat line %q", b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected /proc stat line %q: %w", b, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// procMem is the resident set (VmRSS) and its peak (VmHWM) of pid, in bytes.
func procMem(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatusMem(b)
}

func parseStatusMem(b []byte) (rss, peak int64, err error) {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("unexpected %s line %q", k, line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("unexpected %s line %q: %w", k, line, err)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			peak = n << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc status")
	}
	return rss, peak, nil
}

// runIdle watches a converged daemon with n replicas and no traffic for
// b.idle: the CPU time it used and its resident memory at the end.
func (b *bench) runIdle(ctx context.Context, n int) (outcome, error) {
	res := outcome{Method: methodIdle, N: n, Failed: -1, FirstNew: -1, AllNew: -1, Done: -1, Reconcile: -1, CPU: -1}
	d, teardown, err := b.newDaemonEnv(ctx, "i", n)
	defer teardown()
	if err != nil {
		return res, err
	}
	// Let the start-up settle (the first scrapes, the journal flush).
	if err := sleep(ctx, 3*time.Second); err != nil {
		return res, err
	}
	pid := d.cmd.Process.Pid
	cpu0, err := procCPU(pid)
	if err != nil {
		return res, err
	}
	start := time.Now()
	b.logf("idle N=%d: watching swiftdeployd (pid %d) for %s", n, pid, b.idle)
	if err := sleep(ctx, b.idle); err != nil {
		return res, err
	}
	cpu1, err := procCPU(pid)
	if err != nil {
		return res, err
	}
	took := time.Since(start)
	rss, peak, err := procMem(pid)
	if err != nil {
		return res, err
	}
	res.CPU, res.Done, res.RSS, res.PeakRSS = cpu1-cpu0, took, rss, peak
	res.Notes = append(res.Notes, fmt.Sprintf("converged daemon (%d × %s, nginx), no requests, scraping every 1 s, resync every 30 s: %s of CPU in %s (%.2f%% of one core), VmRSS %s (peak %s)",
		n, images.AppImage, fmtMs(res.CPU), fmtDur(took), 100*res.CPU.Seconds()/took.Seconds(), mib(rss), mib(peak)))
	return res, nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
