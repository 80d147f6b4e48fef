package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// fakeDaemon serves /v1/deploy on a Unix socket: attempt n (from 1) streams
// the lines and final progress script(n) returns. It returns the socket
// and the attempt counter.
func fakeDaemon(t *testing.T, script func(n int) ([]string, api.Progress)) (string, *atomic.Int32) {
	t.Helper()
	// A short directory: a socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "swiftctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "d.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	var attempts atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathDeploy, func(w http.ResponseWriter, _ *http.Request) {
		lines, final := script(int(attempts.Add(1)))
		enc := json.NewEncoder(w)
		for _, l := range lines {
			enc.Encode(api.Progress{Line: l})
		}
		final.Done = true
		enc.Encode(final)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return socket, &attempts
}

// fastRetries makes deploy --wait retry every d for the test.
func fastRetries(t *testing.T, d time.Duration) {
	t.Helper()
	old := waitRetryInterval
	waitRetryInterval = d
	t.Cleanup(func() { waitRetryInterval = old })
}

const (
	busy     = "CPU load 2.4 per core (4.8 on 2 CPUs) above 2.0"
	busier   = "CPU load 2.61 per core (5.22 on 2 CPUs) above 2.0"
	diskFull = "Disk space below 10GB"
)

func transient(reasons ...string) api.Progress {
	return api.Progress{Error: "denied by infrastructure policy: " + strings.Join(reasons, "; "), Denied: reasons, Transient: true}
}

func lasting(reasons ...string) api.Progress {
	return api.Progress{Error: "denied by infrastructure policy: " + strings.Join(reasons, "; "), Denied: reasons}
}

func TestDeployWait(t *testing.T) {
	fastRetries(t, 20*time.Millisecond)
	ok := []string{"Manifest valid", "Docker image found", "Deployment successful"}
	tests := []struct {
		name   string
		args   []string
		script func(n int) ([]string, api.Progress)
		// want* are checked exactly; waiting lines are compared with
		// their "(… left)" removed.
		wantCode     int
		wantStdout   string
		wantStderr   string
		wantAttempts int // 0: at least 2
	}{
		{
			name: "transient denial, then allowed",
			args: []string{"--wait", "10s"},
			script: func(n int) ([]string, api.Progress) {
				if n < 3 {
					return ok[:2], transient(busy)
				}
				return ok, api.Progress{}
			},
			wantCode:     exitOK,
			wantStdout:   "Manifest valid\nDocker image found\nwaiting for the host to settle: " + busy + "\nDeployment successful\n",
			wantAttempts: 3,
		},
		{
			name:         "transient forever",
			args:         []string{"--wait", "200ms"},
			script:       func(int) ([]string, api.Progress) { return ok[:1], transient(busy) },
			wantCode:     exitFailure,
			wantStdout:   "Manifest valid\nwaiting for the host to settle: " + busy + "\nDENIED: " + busy + "\n",
			wantStderr:   "swiftctl: deploy still denied after waiting 200ms\n",
			wantAttempts: 0,
		},
		{
			name:         "lasting denial fails at once",
			args:         []string{"--wait", "10s"},
			script:       func(int) ([]string, api.Progress) { return ok[:1], lasting(busy, diskFull) },
			wantCode:     exitFailure,
			wantStdout:   "Manifest valid\nDENIED: " + busy + "\nDENIED: " + diskFull + "\n",
			wantAttempts: 1,
		},
		{
			name: "a denial turning lasting fails at once",
			args: []string{"--wait", "10s"},
			script: func(n int) ([]string, api.Progress) {
				if n == 1 {
					return nil, transient(busy)
				}
				return nil, lasting(busy, diskFull)
			},
			wantCode:     exitFailure,
			wantStdout:   "waiting for the host to settle: " + busy + "\nDENIED: " + busy + "\nDENIED: " + diskFull + "\n",
			wantAttempts: 2,
		},
		{
			name: "another failure fails at once",
			args: []string{"--wait", "10s"},
			script: func(n int) ([]string, api.Progress) {
				if n == 1 {
					return nil, transient(busy)
				}
				return nil, api.Progress{Error: "health check of shop-stable-1 timed out"}
			},
			wantCode:     exitFailure,
			wantStdout:   "waiting for the host to settle: " + busy + "\n",
			wantStderr:   "swiftctl: deploy failed: health check of shop-stable-1 timed out\n",
			wantAttempts: 2,
		},
		{
			name:         "without --wait a transient denial fails as before",
			script:       func(int) ([]string, api.Progress) { return ok[:1], transient(busy) },
			wantCode:     exitFailure,
			wantStdout:   "Manifest valid\nDENIED: " + busy + "\n",
			wantAttempts: 1,
		},
		{
			// Not on a terminal, a new line only when the reasons change,
			// not when only their figures do.
			name: "a line per change of reasons",
			args: []string{"--wait", "10s"},
			script: func(n int) ([]string, api.Progress) {
				switch n {
				case 1:
					return nil, transient(busy)
				case 2:
					return nil, transient(busier)
				case 3:
					return nil, transient(busier, "Swap in use")
				}
				return ok[2:], api.Progress{}
			},
			wantCode: exitOK,
			wantStdout: "waiting for the host to settle: " + busy + "\n" +
				"waiting for the host to settle: " + busier + "; Swap in use\n" +
				"Deployment successful\n",
			wantAttempts: 4,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			socket, attempts := fakeDaemon(t, tc.script)
			// A wait that never ends fails the test instead of hanging it.
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			var out, errOut bytes.Buffer
			start := time.Now()
			err := run(ctx, append([]string{"deploy", "--socket", socket}, tc.args...), &out, &errOut)
			elapsed := time.Since(start)
			code := exitCode(&errOut, err)
			stdout, stderr := out.String(), errOut.String()
			if got := withoutTimeLeft(stdout); code != tc.wantCode || got != tc.wantStdout || stderr != tc.wantStderr {
				t.Errorf("exit %d\nstdout:\n%s\nstderr: %q\nwant exit %d\nstdout:\n%s\nstderr: %q", code, got, stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
			n := int(attempts.Load())
			switch {
			case tc.wantAttempts > 0 && n != tc.wantAttempts:
				t.Errorf("%d deploy attempts, want %d", n, tc.wantAttempts)
			case tc.wantAttempts == 0 && n < 2:
				t.Errorf("%d deploy attempts, want retries", n)
			}
			if tc.name == "transient forever" && (elapsed < 200*time.Millisecond || elapsed > 5*time.Second) {
				t.Errorf("gave up after %s, want about the 200ms of --wait", elapsed)
			}
		})
	}
}

// withoutTimeLeft drops the " (1m20s left)" of waiting lines, which
// depends on timing.
func withoutTimeLeft(s string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if rest, ok := strings.CutPrefix(line, "waiting for the host to settle ("); ok {
			if _, after, found := strings.Cut(rest, " left): "); found {
				line = "waiting for the host to settle: " + after
			}
		}
		b.WriteString(line)
	}
	return b.String()
}

func TestDeployWaitShowsTimeLeft(t *testing.T) {
	fastRetries(t, 20*time.Millisecond)
	socket, _ := fakeDaemon(t, func(n int) ([]string, api.Progress) {
		if n == 1 {
			return nil, transient(busy)
		}
		return nil, api.Progress{}
	})
	stdout, _, code := runCLI(t, "deploy", "--socket", socket, "--wait", "10m")
	if want := "waiting for the host to settle (10m0s left): " + busy + "\n"; code != exitOK || stdout != want {
		t.Errorf("exit %d, stdout %q; want exit 0 and %q", code, stdout, want)
	}
}

func TestDeployWaitInterrupted(t *testing.T) {
	fastRetries(t, time.Hour)
	socket, attempts := fakeDaemon(t, func(int) ([]string, api.Progress) { return nil, transient(busy) })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for attempts.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	var out, errOut bytes.Buffer
	err := run(ctx, []string{"deploy", "--socket", socket, "--wait", "10m"}, &out, &errOut)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitFailure || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("err = %v, want exit %d: interrupted", err, exitFailure)
	}
}

// TestStatusLine checks the terminal form: one line redrawn in place,
// cut to the terminal's width, ended before anything else is printed.
func TestStatusLine(t *testing.T) {
	var b bytes.Buffer
	s := &statusLine{w: &b, term: true, width: 20}
	s.show("waiting: first", nil)
	s.show("waiting: second, much longer than twenty columns", nil)
	s.println("Deployment successful")
	s.show("waiting: third", nil)
	s.end()
	s.end() // idempotent
	want := "\rwaiting: first\x1b[K" +
		"\rwaiting: second, m…\x1b[K" +
		"\r\x1b[KDeployment successful\n" +
		"\rwaiting: third\x1b[K\n"
	if b.String() != want {
		t.Errorf("got  %q\nwant %q", b.String(), want)
	}
}
