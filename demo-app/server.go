package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Server timeouts. WriteTimeout must outlast the longest chaos delay, or a
// slowed request would be cut off instead of answered late.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = maxSlowDelay + 10*time.Second
	idleTimeout       = 60 * time.Second
	// shutdownTimeout stays below Docker's default 10 s stop grace period,
	// so in-flight requests finish before the engine sends SIGKILL.
	shutdownTimeout = 8 * time.Second
)

// server holds the app's handlers and state.
type server struct {
	mode     string
	version  string
	hostname string
	started  time.Time
	now      func() time.Time // replaced in tests for a deterministic uptime
	chaos    *chaos
	metrics  *metrics
	sockets  sockets // open WebSockets, closed with a close frame at shutdown
}

func newServer(mode, version, hostname string) *server {
	s := &server{
		mode:     mode,
		version:  version,
		hostname: hostname,
		now:      time.Now,
		chaos:    newChaos(),
	}
	s.started = s.now()
	modeValue := 0.0
	if mode == modeCanary {
		modeValue = 1
	}
	s.metrics = newMetrics(modeValue, s.uptimeSeconds, s.chaos.activeLevel)
	return s
}

func (s *server) uptimeSeconds() float64 {
	return s.now().Sub(s.started).Seconds()
}

// handler routes requests. Slow and error chaos wrap the app routes only:
// /healthz, /metrics and /chaos keep answering so the daemon can probe,
// scrape and recover a sick canary. Hang chaos stands for a stuck process
// and holds everything but /chaos, outside the instrumentation.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.handleHealthz)
	mux.Handle("/metrics", allowMethods(s.metrics.handler(), http.MethodGet, http.MethodHead))
	mux.Handle("/chaos", allowMethods(http.HandlerFunc(s.handleChaos), http.MethodPost))
	mux.Handle("/upload", allowMethods(s.chaos.middleware(http.HandlerFunc(s.handleUpload)), http.MethodPost, http.MethodPut))
	mux.Handle("/ws", s.websocket())
	mux.Handle("/live", allowMethods(http.HandlerFunc(handleLive), http.MethodGet, http.MethodHead))
	mux.Handle("/", s.chaos.middleware(http.HandlerFunc(s.handleRoot)))
	return s.chaos.hang(s.metrics.instrument(mux))
}

type rootResponse struct {
	Mode          string  `json:"mode"`
	Version       string  `json:"version"`
	Hostname      string  `json:"hostname"`
	UptimeSeconds float64 `json:"uptime_seconds"`
}

func (s *server) handleRoot(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route for path %q", r.URL.Path))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r.Method, http.MethodGet, http.MethodHead)
		return
	}
	// The headers let traffic tests count the canary's share without
	// parsing bodies.
	w.Header().Set("X-App-Version", s.version)
	w.Header().Set("X-App-Mode", s.mode)
	writeJSON(w, http.StatusOK, rootResponse{
		Mode:          s.mode,
		Version:       s.version,
		Hostname:      s.hostname,
		UptimeSeconds: s.uptimeSeconds(),
	})
}

func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r.Method, http.MethodGet, http.MethodHead)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// allowMethods answers 405 with a JSON body for any other method.
func allowMethods(next http.Handler, methods ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range methods {
			if r.Method == m {
				next.ServeHTTP(w, r)
				return
			}
		}
		methodNotAllowed(w, r.Method, methods...)
	})
}

func methodNotAllowed(w http.ResponseWriter, method string, allowed ...string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed,
		fmt.Sprintf("method %s not allowed (allowed: %s)", method, strings.Join(allowed, ", ")))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A write error means the client went away; there is no one to tell.
	_ = json.NewEncoder(w).Encode(v)
}

func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	}
}

// serve runs srv on ln until ctx is cancelled, then stops accepting and
// waits up to shutdownTimeout for in-flight requests to finish.
func serve(ctx context.Context, ln net.Listener, srv *http.Server) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		closeErr := srv.Close()
		return fmt.Errorf("graceful shutdown of %s: %w", ln.Addr(), errors.Join(err, closeErr))
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	}
	return nil
}
