// Package loadgen sends HTTP GET requests to one URL at a constant rate, for
// demos and tests of a SwiftDeploy stack, and summarises what came back:
// successes, failures by status or error, latency percentiles and the share
// of responses per X-App-Mode header (which track answered).
//
// The generator is open-loop: request i is sent at start + i/RPS whether or
// not earlier requests have finished, so a slow server shows up as latency
// and failures rather than as a silently lower rate. In-flight requests are
// bounded; a request that would exceed the bound is not sent and is counted
// as a failure ("skipped") so the shortfall is visible.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Limits keep one run bounded in time, request count and memory (one
// latency sample is kept per answered request).
const (
	MaxRPS      = 10000
	MaxDuration = time.Hour
	MaxRequests = 1_000_000
)

// Defaults for the optional Config fields.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultMaxInFlight = 256
)

// ModeHeader is the response header the demo app sets to its track.
const ModeHeader = "X-App-Mode"

// NoMode is the Modes key for responses without a ModeHeader.
const NoMode = "(none)"

// FailureSkipped counts requests not sent because MaxInFlight were pending.
const FailureSkipped = "skipped: too many requests in flight"

// Config describes one run.
type Config struct {
	// URL is the only address requests are sent to; redirects are not
	// followed, so a run never reaches another host.
	URL string
	// RPS is the target request rate, at most MaxRPS.
	RPS float64
	// Duration is how long requests are sent for; RPS*Duration requests are
	// planned, at most MaxRequests.
	Duration time.Duration
	// Timeout bounds each request, body included. Default DefaultTimeout.
	Timeout time.Duration
	// MaxInFlight bounds concurrent requests. Default DefaultMaxInFlight.
	MaxInFlight int
	// Client sends the requests; nil means a client sized for MaxInFlight.
	// Its redirect policy is respected as is.
	Client *http.Client
}

// Result summarises a run.
type Result struct {
	URL     string
	Planned int // requests the rate and duration called for
	Total   int // requests accounted for: Success + failures, skipped included
	Success int // answered with a status below 400
	// Failures counts failed requests by kind: "HTTP 503", "timeout",
	// "connection refused", FailureSkipped, ...
	Failures map[string]int
	// Modes counts answered requests (any status) by their ModeHeader
	// value; NoMode for responses without one.
	Modes map[string]int
	// Elapsed runs from the first request to the last completion.
	Elapsed time.Duration
	// AchievedRPS is the number of requests actually sent per second of
	// Elapsed.
	AchievedRPS float64
	// P50 and P99 are latency percentiles of answered requests (any
	// status); zero when nothing was answered.
	P50, P99 time.Duration
}

// Failed is the number of failed requests of every kind.
func (r Result) Failed() int {
	n := 0
	for _, c := range r.Failures {
		n += c
	}
	return n
}

// Share is one X-App-Mode value and its part of the answered requests.
type Share struct {
	Mode     string
	Count    int
	Fraction float64 // of all answered requests, 0-1
}

// ModeShares returns Modes as shares, largest first (ties by name).
func (r Result) ModeShares() []Share {
	answered := 0
	for _, c := range r.Modes {
		answered += c
	}
	out := make([]Share, 0, len(r.Modes))
	for m, c := range r.Modes {
		out = append(out, Share{Mode: m, Count: c, Fraction: float64(c) / float64(answered)})
	}
	slices.SortFunc(out, func(a, b Share) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Mode, b.Mode)
	})
	return out
}

// Validate reports the first unusable field of c, naming it and its value.
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return errors.New("url: required")
	case err != nil:
		return fmt.Errorf("url: %q is not a URL: %w", c.URL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("url: %q must start with http:// or https://", c.URL)
	case u.Host == "":
		return fmt.Errorf("url: %q has no host", c.URL)
	}
	switch {
	case math.IsNaN(c.RPS) || c.RPS <= 0:
		return fmt.Errorf("rps: must be more than 0, got %v", c.RPS)
	case c.RPS > MaxRPS:
		return fmt.Errorf("rps: at most %d, got %v", MaxRPS, c.RPS)
	case c.Duration <= 0:
		return fmt.Errorf("duration: must be more than 0, got %s", c.Duration)
	case c.Duration > MaxDuration:
		return fmt.Errorf("duration: at most %s, got %s", MaxDuration, c.Duration)
	case c.Timeout < 0:
		return fmt.Errorf("timeout: must not be negative, got %s", c.Timeout)
	case c.MaxInFlight < 0:
		return fmt.Errorf("max in flight: must not be negative, got %d", c.MaxInFlight)
	}
	if n := c.planned(); n > MaxRequests {
		return fmt.Errorf("rps × duration: %d requests exceeds the limit of %d; lower --rps or --duration", n, MaxRequests)
	}
	if c.planned() == 0 {
		return fmt.Errorf("rps × duration: %v/s for %s sends no request", c.RPS, c.Duration)
	}
	return nil
}

func (c Config) planned() int {
	return int(math.Floor(c.RPS * c.Duration.Seconds()))
}

// Run sends the planned requests and waits for them to finish. When ctx is
// cancelled it stops sending, cancels pending requests and returns the
// partial Result with ctx's error.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	client := cfg.Client
	if client == nil {
		client = newClient(cfg.MaxInFlight)
		defer client.CloseIdleConnections()
	}

	planned := cfg.planned()
	rec := &recorder{
		res:       Result{URL: cfg.URL, Planned: planned, Failures: map[string]int{}, Modes: map[string]int{}},
		latencies: make([]time.Duration, 0, planned),
	}
	slots := make(chan struct{}, cfg.MaxInFlight)
	var wg sync.WaitGroup
	interval := float64(time.Second) / cfg.RPS
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C

	sent := 0
	var stopErr error
send:
	for i := range planned {
		// Scheduling from start rather than from the previous send keeps
		// timer jitter from accumulating into a lower rate.
		if wait := time.Until(start.Add(time.Duration(float64(i) * interval))); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				stopErr = ctx.Err()
				break send
			}
		} else if err := ctx.Err(); err != nil {
			stopErr = err
			break send
		}
		select {
		case slots <- struct{}{}:
		default:
			rec.fail(FailureSkipped)
			continue
		}
		sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			rec.do(ctx, client, cfg.URL, cfg.Timeout)
		}()
	}
	wg.Wait()

	res := rec.result()
	res.Elapsed = time.Since(start)
	if res.Elapsed > 0 {
		res.AchievedRPS = float64(sent) / res.Elapsed.Seconds()
	}
	return res, stopErr
}

// newClient returns a client that keeps enough idle connections for
// maxInFlight concurrent requests and never follows redirects.
func newClient(maxInFlight int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = maxInFlight
	tr.MaxIdleConnsPerHost = maxInFlight
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// recorder collects outcomes from concurrent requests.
type recorder struct {
	mu        sync.Mutex
	res       Result
	latencies []time.Duration
}

func (r *recorder) do(ctx context.Context, client *http.Client, target string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		r.fail(classify(err))
		return
	}
	began := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		r.fail(classify(err))
		return
	}
	// Reading the body to the end lets the connection be reused; the limit
	// keeps a huge response from stalling the run.
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		r.fail(classify(err))
		return
	}
	r.answer(resp.StatusCode, resp.Header.Get(ModeHeader), time.Since(began))
}

func (r *recorder) fail(kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Total++
	r.res.Failures[kind]++
}

func (r *recorder) answer(status int, mode string, latency time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Total++
	if status < 400 {
		r.res.Success++
	} else {
		r.res.Failures[fmt.Sprintf("HTTP %d", status)]++
	}
	if mode == "" {
		mode = NoMode
	}
	r.res.Modes[mode]++
	r.latencies = append(r.latencies, latency)
}

func (r *recorder) result() Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	slices.Sort(r.latencies)
	res := r.res
	res.P50 = percentile(r.latencies, 0.50)
	res.P99 = percentile(r.latencies, 0.99)
	return res
}

// percentile is the nearest-rank percentile of sorted; 0 when empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// classify names a transport error by kind, so that thousands of failures
// group into a few lines instead of one line per connection.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "host not found"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
