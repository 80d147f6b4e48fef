package main

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path label values. Any other path is counted as pathOther, so random
// URLs from scanners cannot grow the number of series without bound.
const (
	pathRoot  = "/"
	pathChaos = "/chaos"
	pathOther = "other"
)

// durationBuckets include 0.5 and 1 so the canary policy's 500 ms p99
// threshold falls on a bucket boundary.
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// metrics are the app's Prometheus series, in a registry of their own so
// nothing else in the process can add to or collide with them.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newMetrics registers the five series the daemon scrapes. mode is the
// app_mode value (0 stable, 1 canary); uptime and chaosLevel are read at
// scrape time.
func newMetrics(mode float64, uptime, chaosLevel func() float64) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, excluding /healthz and /metrics.",
		}, []string{"method", "path", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, excluding /healthz and /metrics.",
			Buckets: durationBuckets,
		}, []string{"method", "path"}),
	}
	m.registry.MustRegister(
		m.requests,
		m.duration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "app_uptime_seconds",
			Help: "Seconds since the app started.",
		}, uptime),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "app_mode",
			Help: "Deployment track of this app: 0 stable, 1 canary.",
		}, func() float64 { return mode }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "chaos_active",
			Help: "Chaos currently injected: 0 none, 1 slow, 2 error, 3 hang (never scraped while it lasts).",
		}, chaosLevel),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// instrument counts and times every request except /healthz and /metrics:
// probes and scrapes arrive on a fixed schedule whatever the traffic, and
// counting them would dilute the error rate and latency the canary policy
// judges.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/metrics" {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		method, path := methodLabel(r.Method), pathLabel(r.URL.Path)
		m.requests.WithLabelValues(method, path, strconv.Itoa(rec.status)).Inc()
		m.duration.WithLabelValues(method, path).Observe(time.Since(start).Seconds())
	})
}

// countJob counts one job of the worker (-worker) in the standard
// families, as a request with method JOB and path "worker": 200 when it
// succeeded, 503 when its store failed. A worker serves no requests of
// its own, and its jobs are what a new revision of it is judged on.
func (m *metrics) countJob(err error, took time.Duration) {
	status := http.StatusOK
	if err != nil {
		status = http.StatusServiceUnavailable
	}
	m.requests.WithLabelValues(methodJob, pathWorker, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(methodJob, pathWorker).Observe(took.Seconds())
}

// The labels of a worker's jobs (countJob).
const (
	methodJob  = "JOB"
	pathWorker = "worker"
)

func pathLabel(path string) string {
	switch path {
	case pathRoot, pathChaos:
		return path
	default:
		return pathOther
	}
}

// methodLabel keeps the standard methods and folds anything else (methods
// are arbitrary tokens) into "OTHER".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	default:
		return "OTHER"
	}
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(status int) {
	if !r.wroteHeader {
		r.status = status
		r.wroteHeader = true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Hijack hands the connection to a WebSocket handler (/ws), recorded as
// 101 Switching Protocols. x/net/websocket asserts http.Hijacker itself
// rather than going through http.ResponseController.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil && !r.wroteHeader {
		r.status, r.wroteHeader = http.StatusSwitchingProtocols, true
	}
	return conn, rw, err
}
