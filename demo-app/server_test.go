package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRoot(t *testing.T) {
	for _, mode := range []string{modeStable, modeCanary} {
		t.Run(mode, func(t *testing.T) {
			s, url := startApp(t, mode)
			// A fixed clock makes the reported uptime exact.
			s.now = func() time.Time { return s.started.Add(42 * time.Second) }

			resp, body := do(t, http.MethodGet, url+"/", "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /: status %d, body %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if got := resp.Header.Get("X-App-Mode"); got != mode {
				t.Errorf("X-App-Mode = %q, want %q", got, mode)
			}
			if got := resp.Header.Get("X-App-Version"); got != "1.2.3-test" {
				t.Errorf("X-App-Version = %q, want 1.2.3-test", got)
			}
			got := decodeJSON[map[string]any](t, body)
			want := map[string]any{"mode": mode, "version": "1.2.3-test", "hostname": "test-host", "uptime_seconds": 42.0}
			if len(got) != len(want) {
				t.Errorf("GET / = %v, want exactly the keys of %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("GET / %s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   string // substring of the JSON body
		wantAllow  string
	}{
		{name: "root", method: "GET", path: "/", wantStatus: 200, wantBody: `"mode":"stable"`},
		{name: "root HEAD", method: "HEAD", path: "/", wantStatus: 200},
		{name: "healthz", method: "GET", path: "/healthz", wantStatus: 200, wantBody: `{"status":"ok"}`},
		{name: "healthz HEAD", method: "HEAD", path: "/healthz", wantStatus: 200},
		{name: "unknown path", method: "GET", path: "/nope", wantStatus: 404, wantBody: `"error":"no route for path \"/nope\""`},
		{name: "healthz with trailing slash", method: "GET", path: "/healthz/", wantStatus: 404, wantBody: `"error"`},
		{name: "nested unknown path", method: "GET", path: "/a/b/c", wantStatus: 404, wantBody: `"error"`},
		{name: "POST root", method: "POST", path: "/", wantStatus: 405, wantBody: `"error":"method POST not allowed`, wantAllow: "GET, HEAD"},
		{name: "DELETE healthz", method: "DELETE", path: "/healthz", wantStatus: 405, wantBody: `"error"`, wantAllow: "GET, HEAD"},
		{name: "POST metrics", method: "POST", path: "/metrics", wantStatus: 405, wantBody: `"error"`, wantAllow: "GET, HEAD"},
		{name: "GET chaos", method: "GET", path: "/chaos", wantStatus: 405, wantBody: `"error":"method GET not allowed`, wantAllow: "POST"},
	}
	_, url := startApp(t, modeStable)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.method, url+tt.path, "")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s: status %d, want %d (body %s)", tt.method, tt.path, resp.StatusCode, tt.wantStatus, body)
			}
			if tt.method == http.MethodHead {
				if len(body) != 0 {
					t.Errorf("HEAD %s returned a body: %q", tt.path, body)
				}
				return
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("%s %s body = %s, want it to contain %s", tt.method, tt.path, body, tt.wantBody)
			}
			if resp.StatusCode != http.StatusOK {
				if msg := decodeJSON[map[string]string](t, body)["error"]; msg == "" {
					t.Errorf("%s %s: error body %s has no \"error\" message", tt.method, tt.path, body)
				}
			}
			if got := resp.Header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

// TestGracefulShutdown cancels serve while a slowed request is in flight:
// the request must still be answered in full and serve must return nil.
func TestGracefulShutdown(t *testing.T) {
	s := newServer(modeCanary, "1.2.3-test", "test-host")
	s.chaos.set(chaosState{Mode: chaosSlow, Duration: 0.3})

	entered := make(chan struct{}, 1)
	h := s.handler()
	signalling := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		h.ServeHTTP(w, r)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- serve(ctx, ln, newHTTPServer(signalling)) }()

	type result struct {
		status int
		body   []byte
		err    error
	}
	answered := make(chan result, 1)
	url := "http://" + ln.Addr().String() + "/"
	go func() {
		resp, err := testClient.Get(url)
		if err != nil {
			answered <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		answered <- result{status: resp.StatusCode, body: body, err: err}
	}()

	<-entered
	cancel()

	if err := <-served; err != nil {
		t.Fatalf("serve() = %v, want nil after a graceful shutdown", err)
	}
	r := <-answered
	if r.err != nil {
		t.Fatalf("in-flight request failed during shutdown: %v", r.err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("in-flight request: status %d, want 200", r.status)
	}
	if got := decodeJSON[rootResponse](t, r.body); got.Mode != modeCanary {
		t.Errorf("in-flight request body = %+v, want mode canary", got)
	}
	if _, err := testClient.Get(url); err == nil {
		t.Errorf("GET after shutdown succeeded, want the listener closed")
	}
}

// TestRun drives run() as main does: a full server on PORT that the
// -healthcheck mode of a second run() finds healthy, then a clean stop.
func TestRun(t *testing.T) {
	port := freePort(t)
	env := map[string]string{"PORT": strconv.Itoa(port), "MODE": "canary"}
	getenv := func(k string) string { return env[k] }

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs strings.Builder
	stopped := make(chan error, 1)
	go func() { stopped <- run(ctx, nil, getenv, &logs) }()

	// Poll until the server is up; the probe itself is under test.
	var probeErr error
	for range 100 {
		if probeErr = run(t.Context(), []string{"-healthcheck"}, getenv, &logs); probeErr == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if probeErr != nil {
		t.Fatalf("run -healthcheck never succeeded: %v", probeErr)
	}
	resp, body := do(t, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+"/", "")
	if got := decodeJSON[rootResponse](t, body); resp.StatusCode != 200 || got.Mode != modeCanary || got.Version != version {
		t.Errorf("GET /: status %d, body %+v; want 200, mode canary, version %q", resp.StatusCode, got, version)
	}

	cancel()
	if err := <-stopped; err != nil {
		t.Fatalf("run() = %v after cancel, want nil; logs:\n%s", err, logs.String())
	}
	if err := run(t.Context(), []string{"-healthcheck"}, getenv, &logs); err == nil {
		t.Errorf("run -healthcheck succeeded after the server stopped")
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{name: "bad port", env: map[string]string{"PORT": "abc"}, wantErr: `PORT "abc"`},
		{name: "bad mode", env: map[string]string{"MODE": "beta"}, wantErr: `MODE "beta"`},
		{name: "bad mode with healthcheck", args: []string{"-healthcheck"}, env: map[string]string{"MODE": "beta"}, wantErr: `MODE "beta"`},
		{name: "unknown flag", args: []string{"-verbose"}, wantErr: "-verbose"},
		{name: "stray argument", args: []string{"serve"}, wantErr: `unexpected arguments ["serve"]`},
		{name: "worker without redis", args: []string{"-worker"}, wantErr: "-worker needs REDIS_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			err := run(t.Context(), tt.args, func(k string) string { return tt.env[k] }, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestProbeHealth(t *testing.T) {
	_, healthyURL := startApp(t, modeStable)
	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{name: "healthy app", url: healthyURL + "/healthz"},
		{name: "not found", url: healthyURL + "/missing", wantErr: "status 404"},
		{name: "nothing listening", url: "http://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/healthz", wantErr: "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := probeHealth(t.Context(), tt.url)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("probeHealth() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("probeHealth() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
