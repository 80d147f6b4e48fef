package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/loadgen"
)

// Connection modes of a cell.
const (
	keepAlive = "keep-alive"
	newConns  = "new"
	closed    = "closed loop"
)

// target is one way to the app: the address dialled (whatever the URL's
// host, which stays the bench host name for Host and SNI) and its ports.
type target struct {
	name      string
	ip        string
	plain     int
	tls       int
	breakdown bool // a breakdown row, in the second table
}

// cell is one target, scheme and connection mode, and the target whose
// cell of the same scheme and mode its ratios are taken against.
type cell struct {
	t      target
	scheme string
	conns  string
	ref    string
}

func (c cell) key() string { return c.t.name + "|" + c.scheme + "|" + c.conns }

func (c cell) url() string {
	port := c.t.plain
	if c.scheme == "https" {
		port = c.t.tls
	}
	return fmt.Sprintf("%s://%s:%d/", c.scheme, host, port)
}

// breakdownCells takes the front door's plain-HTTP path apart, each step
// beside its reference in the same rounds: the published port against the
// container's own address (the engine's port forwarding, which kamal-proxy
// is measured through too, so it is reached both ways), and copies of the
// front door's nginx with one setting changed against an unchanged copy.
func breakdownCells(ctx context.Context, st *stack, fd, kp target) ([]cell, error) {
	fdIP, err := st.containerIP(ctx, st.nginxName)
	if err != nil {
		return nil, err
	}
	const fdAddr, kpAddr = "front door, container address", "kamal-proxy, container address"
	var cells []cell
	add := func(t target, ref string) {
		for _, c := range []string{keepAlive, newConns} {
			cells = append(cells, cell{t, "http", c, ref})
		}
	}
	add(target{name: fdAddr, ip: fdIP, plain: st.port, breakdown: true}, fd.name)
	if kp.name != "" {
		kpIP, err := st.containerIP(ctx, st.kamal)
		if err != nil {
			return nil, err
		}
		add(target{name: kpAddr, ip: kpIP, plain: 80, breakdown: true}, fdAddr)
	}
	ports, err := st.startVariants(ctx)
	if err != nil {
		return nil, err
	}
	copyName := variants[0].name
	for _, v := range variants {
		ref := copyName
		if v.name == copyName {
			ref = fd.name
		}
		add(target{name: v.name, ip: "127.0.0.1", plain: ports[v.name], breakdown: true}, ref)
	}
	// The variants' nginx must answer before the rounds start.
	for _, c := range cells {
		if err := waitOK(ctx, st.client(c.t.ip, false), c.url()); err != nil {
			logs, _ := docker(ctx, "logs", "--tail", "20", st.variantOf(c.t.name))
			return nil, fmt.Errorf("%s: %w; its log: %s", c.t.name, err, logs)
		}
	}
	return cells, nil
}

// waitOK polls url until it answers 200, for up to 20 s.
func waitOK(ctx context.Context, client *http.Client, url string) error {
	var last error
	for range 100 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("not answering 200 at %s: %w", url, last)
}

// writeTable writes the rows of the cells that keep selects, in the cells'
// order, with medians over rounds and ratios to each row's reference.
func writeTable(b *strings.Builder, cells []cell, results map[string][]loadgen.Result, keep func(cell) bool) {
	b.WriteString("| target | scheme | connections | ok req/s | p50 | p99 | p99 over rounds | failed | reference | req/s ratio | p99 ratio | p99 < reference's |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cells {
		if !keep(c) {
			continue
		}
		rs := results[c.key()]
		if len(rs) == 0 {
			continue
		}
		rps, p50, p99, lo, hi, failed := medians(rs)
		refKey := cell{target{name: c.ref}, c.scheme, c.conns, ""}.key()
		ratioRPS, ratioP99, wins := "-", "-", "-"
		if refs := results[refKey]; len(refs) == len(rs) && refKey != c.key() {
			rRPS, _, rP99, _, _, _ := medians(refs)
			ratioRPS = fmt.Sprintf("%.2f", rps/rRPS)
			ratioP99 = fmt.Sprintf("%.2f", float64(p99)/float64(rP99))
			n := 0
			for i := range rs {
				if rs[i].P99 < refs[i].P99 {
					n++
				}
			}
			wins = fmt.Sprintf("%d/%d", n, len(rs))
		}
		ref := c.ref
		if refKey == c.key() {
			ref = "-"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %.0f | %s | %s | %s-%s | %d | %s | %s | %s | %s |\n", c.t.name, c.scheme, c.conns, rps, ms(p50), ms(p99),
			strings.TrimSuffix(ms(lo), " ms"), ms(hi), failed, ref, ratioRPS, ratioP99, wins)
	}
}

// medians of a cell's rounds: req/s answered, p50, p99; the p99's range;
// failed requests summed.
func medians(rs []loadgen.Result) (rps float64, p50, p99, lo, hi time.Duration, failed int) {
	var rv []float64
	var a, c []time.Duration
	for _, r := range rs {
		rv = append(rv, float64(r.Success)/r.Elapsed.Seconds())
		a, c = append(a, r.P50), append(c, r.P99)
		failed += r.Failed()
	}
	slices.Sort(rv)
	slices.Sort(a)
	slices.Sort(c)
	return median(rv), median(a), median(c), c[0], c[len(c)-1], failed
}

// median of sorted values: the mean of the two middle ones for an even count.
func median[T float64 | time.Duration](s []T) T {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
