// Command proxy benchmarks the data plane: the same app container reached
// directly, through SwiftDeploy's front door (nginx as swiftdeployd renders
// it) and through kamal-proxy, over plain HTTP and TLS, with keep-alive and
// with a new connection per request. Load comes from pkg/loadgen (open
// loop, a fixed offered rate), on loopback only; every cell is bounded in
// rate and time, and the cells are interleaved over several rounds so that
// a busy host weighs on all of them alike. It prints one markdown table of
// medians with same-run ratios.
//
//	go run ./bench/proxy [-duration 3s] [-rounds 3] [-rps 3000] [-conn-rps 800] [-kamal /path/to/kamal-proxy]
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
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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
	duration time.Duration
	rounds   int
	rps      float64 // keep-alive cells
	connRPS  float64 // new-connection cells
	kamal    string
	out      string
}

func run() error {
	var o options
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "length of one cell (at most 30s)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of all cells, interleaved; the table shows medians")
	flag.Float64Var(&o.rps, "rps", 3000, "offered rate of keep-alive cells (at most loadgen.MaxRPS)")
	flag.Float64Var(&o.connRPS, "conn-rps", 800, "offered rate of new-connection cells")
	flag.StringVar(&o.kamal, "kamal", os.Getenv("KAMAL_PROXY_BIN"), "kamal-proxy binary (static), built outside this tree")
	flag.StringVar(&o.out, "out", "", "also write the table to this file")
	flag.Parse()
	if o.duration <= 0 || o.duration > 30*time.Second || o.rounds < 1 || o.rounds > 10 {
		return errors.New("-duration must be 1ms-30s and -rounds 1-10")
	}
	ctx, cancel := signalContext()
	defer cancel()

	st, err := startStack(ctx)
	if err != nil {
		return err
	}
	defer st.close()
	targets := []target{
		{name: "app directly", plain: fmt.Sprintf("http://%s:3000/", st.appIP)},
		{name: "front door (nginx)", plain: fmt.Sprintf("http://%s:%d/", host, st.port), tls: fmt.Sprintf("https://%s:%d/", host, st.tlsPort)},
	}
	if o.kamal != "" {
		kp, err := st.startKamal(ctx, o.kamal)
		if err != nil {
			return fmt.Errorf("kamal-proxy: %w", err)
		}
		targets = append(targets, target{name: "kamal-proxy", plain: fmt.Sprintf("http://%s:%d/", host, kp.port), tls: fmt.Sprintf("https://%s:%d/", host, kp.tlsPort)})
	} else {
		fmt.Fprintln(os.Stderr, "no -kamal binary: kamal-proxy rows left out")
	}

	type cellKey struct{ target, scheme, conns string }
	results := map[cellKey][]loadgen.Result{}
	var order []cellKey
	for round := 1; round <= o.rounds; round++ {
		for _, t := range targets {
			for _, scheme := range []string{"http", "https"} {
				url := t.plain
				if scheme == "https" {
					url = t.tls
				}
				if url == "" {
					continue
				}
				for _, keep := range []bool{true, false} {
					conns, rps := "keep-alive", o.rps
					if !keep {
						conns, rps = "new", o.connRPS
					}
					k := cellKey{t.name, scheme, conns}
					if round == 1 {
						order = append(order, k)
					}
					r, err := loadgen.Run(ctx, loadgen.Config{URL: url, RPS: rps, Duration: o.duration, Client: st.client(keep), MaxInFlight: maxInFlight})
					if err != nil {
						return fmt.Errorf("%s %s %s: %w", t.name, scheme, conns, err)
					}
					fmt.Fprintf(os.Stderr, "round %d %-20s %-5s %-10s %7.0f req/s ok, p50 %v p99 %v, failed %v\n", round, t.name, scheme, conns, float64(r.Success)/r.Elapsed.Seconds(), r.P50, r.P99, r.Failures)
					results[k] = append(results[k], r)
				}
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Offered: %.0f req/s keep-alive, %.0f req/s new connections; %s per cell, %d rounds interleaved, medians. The two ratio columns divide the row's req/s and p99 by the front door's for the same scheme and connections in this run (req/s above 1: more than the front door; p99 above 1: slower). \"failed\" counts requests not answered, the load generator's skips (%d in flight) included.\n\n", o.rps, o.connRPS, o.duration, o.rounds, maxInFlight)
	b.WriteString("| target | scheme | connections | ok req/s | p50 | p99 | failed | req/s vs front door | p99 vs front door |\n|---|---|---|---|---|---|---|---|---|\n")
	med := func(k cellKey) (rps float64, p50, p99 time.Duration, failed int) {
		rs := results[k]
		var rv []float64
		var a, c []time.Duration
		for _, r := range rs {
			rv = append(rv, float64(r.Success)/r.Elapsed.Seconds())
			a, c = append(a, r.P50), append(c, r.P99)
			failed += r.Failed()
		}
		sort.Float64s(rv)
		sort.Slice(a, func(i, j int) bool { return a[i] < a[j] })
		sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
		return rv[len(rv)/2], a[len(a)/2], c[len(c)/2], failed
	}
	for _, k := range order {
		rps, p50, p99, failed := med(k)
		fdRPS, _, fdP99, _ := med(cellKey{"front door (nginx)", k.scheme, k.conns})
		ratio := func(x, y float64) string {
			if y == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", x/y)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %s | %s | %d | %s | %s |\n", k.target, k.scheme, k.conns, rps, ms(p50), ms(p99), failed,
			ratio(rps, fdRPS), ratio(float64(p99), float64(fdP99)))
	}
	fmt.Print(b.String())
	if o.out != "" {
		return os.WriteFile(o.out, []byte(b.String()), 0o644)
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

type target struct {
	name       string
	plain, tls string
}

// client dials 127.0.0.1 whatever the URL's host (the name is for Host and
// SNI), trusts the run's CA only, and keeps connections alive or not.
func (s *stack) client(keepAlive bool) *http.Client {
	dial := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if h, port, err := net.SplitHostPort(addr); err == nil && h == host {
				addr = net.JoinHostPort("127.0.0.1", port)
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
