// Command rollout benchmarks an image change under steady load on one
// Docker host, side by side:
//
//   - docker-compose: `up -d` after editing the image tag of a service
//     scaled to N behind nginx (Docker DNS re-resolved every second);
//   - swiftdeployd: converging the same change from a manifest edit;
//   - the floor: the bare engine creating and starting one container of the
//     new image until it answers its health check;
//   - a swiftdeployd canary promotion (`swiftctl promote`) under the same load.
//
// For each it reports the failed requests out of all sent, and the time from
// the change to the first answer from the new version and to the point after
// which every answer is from the new version. Run it from the module root:
//
//	go run ./bench/rollout [-n 2,10] [-rps 100] [-runs 1] [-out table.md]
//
// It builds what it needs (bin/swiftdeployd, bin/swiftctl, the images) and
// removes every container, network and file it creates, also those a killed
// earlier run left behind. See docs/benchmarks.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/loadgen"
)

const (
	methodCompose   = "docker-compose up -d"
	methodDaemon    = "swiftdeployd (manifest edit)"
	methodFloor     = "floor: engine, 1 container"
	methodFloorN    = "engine, N containers at once"
	methodCanary    = "swiftdeployd canary promote"
	methodIdle      = "swiftdeployd idle"
	methodCompare   = "swiftdeployd, the -compare build"
	defaultBinDir   = "bin"
	imagesTimeout   = 10 * time.Minute
	settleCheckTick = 50 * time.Millisecond
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rollout:", err)
		os.Exit(1)
	}
}

// bench holds one invocation's settings and shared state.
type bench struct {
	ns           []int
	rps          int
	runs         int
	out          string
	warmup       time.Duration
	tail         time.Duration
	phaseTimeout time.Duration
	binDir       string
	verbose      bool
	skip         map[string]bool
	failed       int // phases that failed
	floorReps    int
	logsDir      string
	idle         time.Duration
	compare      string // another swiftdeployd binary, measured beside this build's

	cli          *client.Client
	runID        string
	dir          string
	swiftdeployd string
	swiftctl     string
	log          io.Writer
}

func (b *bench) logf(format string, a ...any) {
	fmt.Fprintf(b.log, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
}

func (b *bench) debugf(format string, a ...any) {
	if b.verbose {
		b.logf(format, a...)
	}
}

// maxLoad bounds one phase's load: warmup, the change, the tail.
func (b *bench) maxLoad() time.Duration { return b.warmup + 2*b.phaseTimeout + b.tail }

func run() error {
	b := &bench{log: os.Stderr}
	nList := flag.String("n", "2,10", "comma-separated app replica counts to measure")
	flag.IntVar(&b.rps, "rps", 100, "steady open-loop request rate (requests per second)")
	flag.IntVar(&b.runs, "runs", 1, "repetitions of every measurement; the table shows medians")
	flag.StringVar(&b.out, "out", "", "also write the results as Markdown to this file")
	flag.DurationVar(&b.warmup, "change-after", 5*time.Second, "load time before the change")
	flag.DurationVar(&b.tail, "tail", 3*time.Second, "how long every answer must have been the new version before a phase ends")
	flag.DurationVar(&b.phaseTimeout, "phase-timeout", 3*time.Minute, "bound on each wait of a phase (stack up, change settled, promotion allowed)")
	flag.StringVar(&b.binDir, "bin", defaultBinDir, "where swiftdeployd and swiftctl are built (relative to the module root)")
	flag.BoolVar(&b.verbose, "v", false, "log command output and every promote attempt")
	flag.IntVar(&b.floorReps, "floor-reps", 3, "floor measurements per run (the median is reported)")
	flag.StringVar(&b.logsDir, "logs", "", "keep each daemon's log in this directory")
	flag.DurationVar(&b.idle, "idle", time.Minute, "how long the idle phase watches a converged daemon's CPU and memory")
	flag.StringVar(&b.compare, "compare", "", "another swiftdeployd binary (e.g. an older build) whose manifest-edit rollout is measured in every run beside this build's, in alternating order")
	skip := flag.String("skip", "", "comma-separated phases to leave out: compose, daemon, floor, canary, idle")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(flag.Args(), " "))
	}
	var err error
	if b.ns, err = parseNs(*nList); err != nil {
		return err
	}
	b.skip = map[string]bool{}
	for _, s := range strings.Split(*skip, ",") {
		switch s = strings.TrimSpace(s); s {
		case "":
		case "compose", "daemon", "floor", "canary", "idle":
			b.skip[s] = true
		default:
			return fmt.Errorf("-skip: unknown phase %q (want compose, daemon, floor, canary or idle)", s)
		}
	}
	switch {
	case b.rps < 1 || b.rps > loadgen.MaxRPS:
		return fmt.Errorf("-rps: must be 1-%d, got %d", loadgen.MaxRPS, b.rps)
	case b.runs < 1 || b.runs > 20:
		return fmt.Errorf("-runs: must be 1-20, got %d", b.runs)
	case b.warmup < time.Second:
		return fmt.Errorf("-change-after: at least 1s, got %s", b.warmup)
	case b.tail < 500*time.Millisecond:
		return fmt.Errorf("-tail: at least 500ms, got %s", b.tail)
	case b.phaseTimeout < 10*time.Second:
		return fmt.Errorf("-phase-timeout: at least 10s, got %s", b.phaseTimeout)
	case b.floorReps < 1 || b.floorReps > 20:
		return fmt.Errorf("-floor-reps: must be 1-20, got %d", b.floorReps)
	case b.idle < 10*time.Second:
		return fmt.Errorf("-idle: at least 10s, got %s", b.idle)
	}
	if b.logsDir != "" {
		if err := os.MkdirAll(b.logsDir, 0o755); err != nil {
			return err
		}
	}
	if b.compare != "" {
		abs, err := filepath.Abs(b.compare)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(abs); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("-compare: %s is not an executable file", b.compare)
		}
		b.compare = abs
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if b.cli, err = client.New(client.FromEnv); err != nil {
		return fmt.Errorf("create Docker client: %w", err)
	}
	defer b.cli.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = b.cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true})
	cancel()
	if err != nil {
		return fmt.Errorf("reach Docker engine: %w", err)
	}
	if !b.skip["compose"] {
		if _, err := exec.LookPath("docker-compose"); err != nil {
			return errors.New("docker-compose (v1) not found in PATH: install it (Debian: apt-get install docker-compose) or pass -skip compose")
		}
	}

	// Leftovers of runs that were killed.
	if err := sweep(ctx, b.cli, "", false); err != nil {
		b.logf("removing leftovers of earlier runs: %v", err)
	}
	b.runID = newRunID()
	if b.dir, err = os.MkdirTemp("", b.runID+"-"); err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if err := sweep(cctx, b.cli, b.runID, true); err != nil {
			b.logf("clean up: %v", err)
		}
		os.RemoveAll(b.dir)
	}()
	b.logf("run %s, work dir %s", b.runID, b.dir)

	if err := b.build(ctx); err != nil {
		return err
	}
	machine := b.machine(ctx)
	b.logf("%s", machine)

	var all []outcome
	for r := 1; r <= b.runs; r++ {
		for _, n := range b.ns {
			got, err := b.measure(ctx, n, r)
			all = append(all, got...)
			if err != nil {
				// Print what was measured before stopping.
				printReport(os.Stdout, b, machine, all, false)
				if ctx.Err() != nil {
					return errors.New("interrupted (everything created was removed)")
				}
				return err
			}
		}
	}
	printReport(os.Stdout, b, machine, all, false)
	if b.out != "" {
		var md bytes.Buffer
		printReport(&md, b, machine, all, true)
		if err := os.WriteFile(b.out, md.Bytes(), 0o644); err != nil {
			return err
		}
		b.logf("Markdown written to %s", b.out)
	}
	if b.failed > 0 {
		return fmt.Errorf("%d phase(s) failed; see the table", b.failed)
	}
	return nil
}

func parseNs(s string) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 50 {
			return nil, fmt.Errorf("-n: want comma-separated replica counts of 1-50, got %q", s)
		}
		if !slices.Contains(ns, n) {
			ns = append(ns, n)
		}
	}
	return ns, nil
}

// build compiles the two binaries into binDir and ensures the images.
func (b *bench) build(ctx context.Context) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bin := b.binDir
	if !filepath.IsAbs(bin) {
		bin = filepath.Join(root, bin)
	}
	b.logf("go build -o %s/ ./cmd/swiftdeployd ./cmd/swiftctl", bin)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "./cmd/swiftdeployd", "./cmd/swiftctl")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build binaries: %w\n%s", err, out)
	}
	b.swiftdeployd = filepath.Join(bin, "swiftdeployd")
	b.swiftctl = filepath.Join(bin, "swiftctl")

	b.logf("ensuring images %s, %s, %s", images.AppImage, images.AppImageV2, images.NginxImage)
	ictx, cancel := context.WithTimeout(ctx, imagesTimeout)
	defer cancel()
	var log bytes.Buffer
	if err := images.EnsureAll(ictx, b.cli, &log); err != nil {
		return fmt.Errorf("ensure images: %w\n%s", err, log.Bytes())
	}
	for _, line := range strings.Split(log.String(), "\n") {
		for _, ref := range []string{images.AppImage, images.AppImageV2, images.NginxImage} {
			if strings.HasPrefix(line, ref+":") {
				b.logf("%s", line)
			}
		}
	}
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from the SwiftDeploy source tree (no go.mod found)")
	}
	return filepath.Dir(mod), nil
}

// machine describes the host for the report.
func (b *bench) machine(ctx context.Context) string {
	parts := []string{fmt.Sprintf("nproc %d", runtime.NumCPU())}
	if v, err := b.cli.ServerVersion(ctx, client.ServerVersionOptions{}); err == nil {
		parts = append(parts, fmt.Sprintf("Docker Engine %s (API %s)", v.Version, v.APIVersion))
	}
	if out, err := exec.CommandContext(ctx, "docker-compose", "version", "--short").Output(); err == nil {
		parts = append(parts, "docker-compose "+strings.TrimSpace(string(out)))
	}
	parts = append(parts, runtime.Version())
	parts = append(parts, "load average at start "+loadAvg())
	return strings.Join(parts, ", ")
}

// measure runs every phase once for n replicas.
func (b *bench) measure(ctx context.Context, n, r int) ([]outcome, error) {
	var out []outcome
	type phase struct {
		key string
		fn  func(context.Context, int) (outcome, error)
	}
	phases := []phase{
		{"floor", b.runFloor},
		{"compose", b.runCompose},
		{"daemon", b.runDaemon},
		{"canary", b.runCanary},
		{"idle", b.runIdle},
	}
	if b.compare != "" {
		// Beside this build's rollout; every other run first, so that
		// neither always runs on the host the other left behind.
		cmp := phase{"compare", b.runCompare}
		if r%2 == 1 {
			phases = slices.Insert(phases, 3, cmp)
		} else {
			phases = slices.Insert(phases, 2, cmp)
		}
	}
	for _, p := range phases {
		if b.skip[p.key] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		b.logf("=== run %d, N=%d: %s", r, n, p.key)
		res, err := p.fn(ctx, n)
		res.Run = r
		if err != nil {
			if ctx.Err() != nil {
				return append(out, res), err
			}
			// One phase failing (a timeout on an overloaded host, say)
			// does not void the others: it is reported in the table.
			b.logf("    FAILED: %v", err)
			res.Err = err.Error()
			b.failed++
		} else {
			b.logf("    %s", res.summary())
		}
		out = append(out, res)
		if res.extra != nil {
			res.extra.Run = r
			out = append(out, *res.extra)
		}
		// Let the engine settle between phases.
		if err := sleep(ctx, 2*time.Second); err != nil {
			return out, err
		}
	}
	return out, nil
}

// runFloor measures (c), the median of floorReps tries with one container,
// and N containers at once for reference.
func (b *bench) runFloor(ctx context.Context, n int) (outcome, error) {
	res := outcome{Method: methodFloor, N: n, Failed: -1, FirstNew: -1, AllNew: -1}
	one, err := b.floorTries(ctx, fmt.Sprintf("%s-f%d", b.runID, n), 1)
	if err != nil {
		return res, err
	}
	m := median(one)
	res.FirstNew, res.AllNew, res.Done = m, m, m
	res.Notes = append(res.Notes, fmt.Sprintf("median of %d tries: %s", len(one), durList(one)))
	if n > 1 {
		many, err := b.floorTries(ctx, fmt.Sprintf("%s-g%d", b.runID, n), n)
		if err != nil {
			return res, err
		}
		m := median(many)
		res.extra = &outcome{Method: methodFloorN, N: n, Failed: -1, FirstNew: -1, AllNew: m, Done: m,
			Notes: []string{fmt.Sprintf("%d containers created and started concurrently, time until the last answered; median of %d tries: %s", n, len(many), durList(many))}}
	}
	return res, nil
}

// floorTries measures the floor floorReps times, each with fresh containers.
func (b *bench) floorTries(ctx context.Context, name string, count int) ([]time.Duration, error) {
	var out []time.Duration
	for i := range b.floorReps {
		tryName := fmt.Sprintf("%s-%d", name, i+1)
		took, err := measureFloor(ctx, b.cli, tryName, floorImage, count, b.phaseTimeout)
		sweepProject(ctx, b.cli, tryName)
		if err != nil {
			return out, err
		}
		out = append(out, took)
	}
	return out, nil
}

func durList(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmtDur(d))
	}
	return strings.Join(s, ", ")
}

// sweepProject removes everything carrying the bench label or the project
// name prefix of one phase.
func sweepProject(ctx context.Context, cli *client.Client, project string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return sweep(cctx, cli, project, true)
}

// waitServes waits until url answers 10 times in a row with version.
func waitServes(ctx context.Context, url, version string, timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	streak, last := 0, ""
	for streak < 10 {
		resp, err := c.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got := resp.Header.Get(VersionHeader); resp.StatusCode == 200 && got == version {
				streak++
				continue
			} else {
				last = fmt.Sprintf("status %d version %q", resp.StatusCode, got)
			}
		} else {
			last = err.Error()
		}
		streak = 0
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not serve version %s after %s; last: %s", url, version, timeout, last)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// waitSettled waits until every answer has been the new version for tail.
func waitSettled(ctx context.Context, rec *recorder, tail time.Duration, t0 time.Time, timeout time.Duration) error {
	deadline := t0.Add(timeout)
	for !rec.settled(tail) {
		if time.Now().After(deadline) {
			return fmt.Errorf("not every answer was version %s for %s within %s of the change", rec.newVersion, tail, timeout)
		}
		if err := sleep(ctx, settleCheckTick); err != nil {
			return err
		}
	}
	return nil
}
