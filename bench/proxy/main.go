// Command proxy benchmarks the data plane: the same app container reached
// directly, through SwiftDeploy's front door (nginx as swiftdeployd renders
// it) and through kamal-proxy, over plain HTTP and TLS, with keep-alive and
// with a new connection per request. Load comes from pkg/loadgen (open
// loop, a fixed offered rate), on loopback only; closed-loop cells (32
// workers back to back) measure the highest rate each target gives. Every
// cell is bounded in rate and time and preceded by an unmeasured warm-up;
// the cells run in several rounds, each round in its own seeded order, so
// a busy host weighs on all of them alike and no cell always follows the
// same one. It prints markdown tables of medians with same-run ratios.
//
// -breakdown adds cells that take the front door's plain-HTTP path apart,
// each beside its reference in the same rounds: nginx and kamal-proxy
// reached at their container addresses instead of the published port, and
// copies of the front door's nginx with one setting changed (access log,
// workers, response buffering, upstream keep-alive, reuseport) beside an
// unchanged copy.
//
//	go run ./bench/proxy [-duration 3s] [-warmup 500ms] [-rounds 3] [-seed N] [-rps 3000] [-conn-rps 800] [-saturate=true] [-breakdown] [-kamal /path/to/kamal-proxy]
//
// kamal-proxy is not part of this module: build it from its public source
// (github.com/basecamp/kamal-proxy, CGO_ENABLED=0 go build ./cmd/kamal-proxy)
// outside the tree and pass the binary with -kamal (or KAMAL_PROXY_BIN);
// without it its rows are left out. It runs in a container on the stack's
// network, published on 127.0.0.1 only, as Kamal runs it. Everything the
// run creates (containers, the kamal-proxy image, the stack, files) is
// removed at the end. See docs/benchmarks.md.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/loadgen"
)

// host is the name every target is asked for (SNI and Host).
const host = "bench.swiftdeploy.test"

// keepAliveConns is the connection pool of keep-alive cells; maxInFlight
// bounds the requests of a cell in flight (loadgen counts one more as
// skipped).
const (
	keepAliveConns = 32
	maxInFlight    = 512
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/proxy:", err)
		os.Exit(1)
	}
}

type options struct {
	duration  time.Duration
	warmup    time.Duration
	rounds    int
	rps       float64 // keep-alive cells
	connRPS   float64 // new-connection cells
	seed      uint64
	saturate  bool
	breakdown bool
	kamal     string
	out       string
}

func run() error {
	var o options
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "length of one cell (at most 30s)")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured load on the same client before each cell")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of all cells, each round in its own shuffled order; the table shows medians")
	flag.Float64Var(&o.rps, "rps", 3000, "offered rate of keep-alive cells (at most loadgen.MaxRPS)")
	flag.Float64Var(&o.connRPS, "conn-rps", 800, "offered rate of new-connection cells")
	flag.Uint64Var(&o.seed, "seed", 0, "seed of the per-round cell order (0: from the clock; printed either way)")
	flag.BoolVar(&o.saturate, "saturate", true, "add closed-loop cells (32 workers back to back, keep-alive) that measure the highest req/s")
	flag.BoolVar(&o.breakdown, "breakdown", false, "add the plain-HTTP breakdown cells: container addresses and nginx variants (docs/benchmarks.md)")
	flag.StringVar(&o.kamal, "kamal", os.Getenv("KAMAL_PROXY_BIN"), "kamal-proxy binary (static), built outside this tree")
	flag.StringVar(&o.out, "out", "", "also write the tables to this file")
	flag.Parse()
	if o.duration <= 0 || o.duration > 30*time.Second || o.rounds < 1 || o.rounds > 20 || o.warmup < 0 || o.warmup > 5*time.Second {
		return errors.New("-duration must be 1ms-30s, -warmup 0-5s and -rounds 1-20")
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	ctx, cancel := signalContext()
	defer cancel()

	st, err := startStack(ctx)
	if err != nil {
		return err
	}
	defer st.close()
	const fdName, kpName = "front door (nginx)", "kamal-proxy"
	app := target{name: "app directly", ip: st.appIP, plain: 3000}
	fd := target{name: fdName, ip: "127.0.0.1", plain: st.port, tls: st.tlsPort}
	cells := []cell{{app, "http", keepAlive, fdName}, {app, "http", newConns, fdName}}
	for _, sc := range []string{"http", "https"} {
		for _, c := range []string{keepAlive, newConns} {
			cells = append(cells, cell{fd, sc, c, fdName})
		}
	}
	var kp target
	if o.kamal != "" {
		ports, err := st.startKamal(ctx, o.kamal)
		if err != nil {
			return fmt.Errorf("kamal-proxy: %w", err)
		}
		kp = target{name: kpName, ip: "127.0.0.1", plain: ports.port, tls: ports.tlsPort}
		for _, sc := range []string{"http", "https"} {
			for _, c := range []string{keepAlive, newConns} {
				cells = append(cells, cell{kp, sc, c, fdName})
			}
		}
	} else {
		fmt.Fprintln(os.Stderr, "no -kamal binary: kamal-proxy rows left out")
	}
	if o.saturate {
		cells = append(cells, cell{app, "http", closed, fdName}, cell{fd, "http", closed, fdName}, cell{fd, "https", closed, fdName})
		if kp.name != "" {
			cells = append(cells, cell{kp, "http", closed, fdName}, cell{kp, "https", closed, fdName})
		}
	}
	if o.breakdown {
		more, err := breakdownCells(ctx, st, fd, kp)
		if err != nil {
			return fmt.Errorf("breakdown: %w", err)
		}
		cells = append(cells, more...)
	}

	load, _ := os.ReadFile("/proc/loadavg")
	loadStart := strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " ")
	fmt.Fprintf(os.Stderr, "%d cells a round, %d rounds, seed %d, load average %s\n", len(cells), o.rounds, o.seed, loadStart)
	rng := rand.New(rand.NewPCG(o.seed, 0x5eed))
	results := map[string][]loadgen.Result{}
	for round := 1; round <= o.rounds; round++ {
		// A new order every round: no cell always follows the same one
		// (a cell right after another target's new-connection cell meets
		// the host still busy with its TIME_WAITs and the other proxy's
		// wake-ups).
		order := slices.Clone(cells)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, c := range order {
			r, err := runCell(ctx, st, c, o)
			if err != nil {
				return fmt.Errorf("%s: %w", c.key(), err)
			}
			fmt.Fprintf(os.Stderr, "round %d %-32s %-5s %-11s %7.0f req/s ok, p50 %v p99 %v, failed %v\n", round, c.t.name, c.scheme, c.conns, float64(r.Success)/r.Elapsed.Seconds(), r.P50, r.P99, r.Failures)
			results[c.key()] = append(results[c.key()], r)
		}
	}
	load, _ = os.ReadFile("/proc/loadavg")
	loadEnd := strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " ")

	var b strings.Builder
	fmt.Fprintf(&b, "Offered: %.0f req/s keep-alive, %.0f req/s new connections (open loop); closed loop: %d workers back to back over %d keep-alive connections. %s per cell after %s of unmeasured warm-up on the same client, %d rounds, each in its own order (seed %d), medians. Load average %s at the start, %s at the end. \"ratio\" divides the row's req/s and p99 by the reference row's in this run; \"p99 < reference's\" counts the rounds in which the row's p99 was below the reference's of the same round. \"failed\" counts requests not answered, the load generator's skips (%d in flight) included.\n\n",
		o.rps, o.connRPS, keepAliveConns, keepAliveConns, o.duration, o.warmup, o.rounds, o.seed, loadStart, loadEnd, maxInFlight)
	writeTable(&b, cells, results, func(c cell) bool { return !c.t.breakdown })
	if o.breakdown {
		b.WriteString("\nBreakdown of the plain-HTTP path (same run, same rounds):\n\n")
		writeTable(&b, cells, results, func(c cell) bool { return c.t.breakdown })
	}
	fmt.Print(b.String())
	if o.out != "" {
		return os.WriteFile(o.out, []byte(b.String()), 0o644)
	}
	return nil
}

// runCell warms the cell's client up unmeasured, then measures.
func runCell(ctx context.Context, st *stack, c cell, o options) (loadgen.Result, error) {
	client := st.client(c.t.ip, c.conns != newConns)
	defer client.CloseIdleConnections()
	url := c.url()
	measure := func(d time.Duration) (loadgen.Result, error) {
		switch c.conns {
		case closed:
			return closedLoop(ctx, client, url, keepAliveConns, d)
		case newConns:
			return loadgen.Run(ctx, loadgen.Config{URL: url, RPS: o.connRPS, Duration: d, Client: client, MaxInFlight: maxInFlight})
		default:
			return loadgen.Run(ctx, loadgen.Config{URL: url, RPS: o.rps, Duration: d, Client: client, MaxInFlight: maxInFlight})
		}
	}
	if o.warmup > 0 {
		if _, err := measure(o.warmup); err != nil {
			return loadgen.Result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	return measure(o.duration)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// client dials ip whatever the URL's host (the name is for Host and SNI),
// trusts the run's CA only, and keeps connections alive or not.
func (s *stack) client(ip string, keepAlive bool) *http.Client {
	dial := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if h, port, err := net.SplitHostPort(addr); err == nil && h == host {
				addr = net.JoinHostPort(ip, port)
			}
			return dial.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: s.ca.pool(), ClientSessionCache: tls.NewLRUClientSessionCache(64)},
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: keepAliveConns,
		MaxIdleConns:        keepAliveConns,
	}
	if keepAlive {
		// A fixed pool of connections, as a browser fleet or a load
		// balancer keeps: without the bound, every request sent while all
		// connections are busy opens one more, and a keep-alive cell turns
		// into hundreds of simultaneous TLS handshakes.
		tr.MaxConnsPerHost = keepAliveConns
	}
	if !keepAlive {
		// A new connection is a new TLS session too: resumption is what
		// ssl_session_cache buys, so it is left on (as a browser would).
		tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// status polls the daemon until cond holds.
func waitStatus(ctx context.Context, c *api.Client, timeout time.Duration, what string, cond func(api.Status) bool) (api.Status, error) {
	deadline := time.Now().Add(timeout)
	var s api.Status
	for time.Now().Before(deadline) {
		s = api.Status{}
		if err := c.Get(ctx, api.PathStatus, &s); err == nil && cond(s) {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return s, fmt.Errorf("timed out after %s waiting for %s (last reconcile %+v)", timeout, what, s.LastReconcile)
}

func docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args[:min(2, len(args))], " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func writeFile(dir, name string, b []byte, mode os.FileMode) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, b, mode)
}
