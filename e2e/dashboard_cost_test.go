package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
)

// procCPU is a process's user+system CPU time, from /proc (in clock
// ticks of 10 ms, Linux's USER_HZ).
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command (which may hold spaces) start at ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// procRSS is a process's resident memory in KiB.
func procRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

// The dashboard's cost to the daemon: its CPU and memory over equal
// windows with no dashboard open and with three (three swiftctl
// dashboard processes, each with a page's event stream open), under
// load, alternated to spread the host's noise. A measurement, run on
// demand (SWIFTDEPLOY_DASHBOARD_COST=1; COST_WINDOW, default 60s):
// the figures are in docs/monitoring.md.
func TestDashboardCost(t *testing.T) {
	if os.Getenv("SWIFTDEPLOY_DASHBOARD_COST") == "" {
		t.Skip("a measurement: SWIFTDEPLOY_DASHBOARD_COST=1 runs it")
	}
	window := 60 * time.Second
	if d, err := time.ParseDuration(os.Getenv("COST_WINDOW")); err == nil {
		window = d
	}
	e := newEnv(t)
	e.writeManifest(withCanary(e.manifest(images.AppImage, 2, ""), images.AppImageV2, 20))
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2, images.AppImageV2: 1})
	l := startTimedLoad(e.url("/"), 20*time.Millisecond)
	defer l.finish()
	pid := e.daemon.Process.Pid
	time.Sleep(10 * time.Second)

	measure := func() (time.Duration, int) {
		c0 := procCPU(t, pid)
		time.Sleep(window)
		return procCPU(t, pid) - c0, procRSS(t, pid)
	}
	open3 := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		var stops []func()
		for range 3 {
			dctx, dcancel := context.WithCancel(ctx)
			url, stopCLI := startDashboard(t, filepath.Join(binDir, "swiftctl"), e.socket, e.dir, nil)
			go func() {
				req, _ := http.NewRequestWithContext(dctx, http.MethodGet, strings.Replace(url, "/?token=", "/events?token=", 1), nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(make([]byte, 1<<20), 16<<20)
				for sc.Scan() {
				}
			}()
			stops = append(stops, dcancel, stopCLI)
		}
		return func() {
			for _, s := range stops {
				s()
			}
			cancel()
		}
	}
	var none, three time.Duration
	var rssNone, rssThree int
	for round := 1; round <= 2; round++ {
		c, r := measure()
		none += c
		rssNone = max(rssNone, r)
		t.Logf("round %d, no dashboard: daemon CPU %s in %s (%.2f%% of a core), RSS %d KiB", round, c, window, 100*c.Seconds()/window.Seconds(), r)
		stop := open3()
		time.Sleep(3 * time.Second)
		c, r = measure()
		stop()
		three += c
		rssThree = max(rssThree, r)
		t.Logf("round %d, three dashboards: daemon CPU %s in %s (%.2f%% of a core), RSS %d KiB", round, c, window, 100*c.Seconds()/window.Seconds(), r)
	}
	ratio := three.Seconds() / none.Seconds()
	t.Logf("daemon CPU with three dashboards / none: %.3f (%s / %s); RSS max %d KiB vs %d KiB", ratio, three, none, rssThree, rssNone)
	if ratio > 1.10 {
		t.Errorf("three dashboards cost the daemon %.0f%% more CPU, want within 10%%", 100*(ratio-1))
	}
	if float64(rssThree) > 1.10*float64(rssNone) {
		t.Errorf("three dashboards: daemon RSS %d KiB vs %d KiB, want within 10%%", rssThree, rssNone)
	}
}
