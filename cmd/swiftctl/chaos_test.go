package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// chaosDaemon serves /v1/chaos on a Unix socket with answer, recording
// the request it got.
func chaosDaemon(t *testing.T, answer api.ChaosResult, got *api.ChaosRequest) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "swiftctl") // short: a socket path fits in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "d.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathChaos, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(got)
		_ = json.NewEncoder(w).Encode(answer)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return socket
}

// chaos --dry-run prints the plan and the chaos policy's answer: a denial
// with its reasons ends with exit 1, as the chaos itself would; an
// allowed plan, or recover's (not gated), with 0.
func TestChaosDryRunPrintsTheDecision(t *testing.T) {
	no, yes := false, true
	plan := []string{"chaos          demo-stable-1   chaos error rate 0.5 on stable track [gated]"}
	for _, c := range []struct {
		name     string
		answer   api.ChaosResult
		args     []string
		want     string
		wantCode int
	}{
		{"denied", api.ChaosResult{Mode: "error", Track: "stable", Plan: plan, Gated: true, Allowed: &no, Reasons: []string{"No chaos on Fridays"}},
			[]string{"chaos", "error", "--rate", "0.5", "--dry-run"}, "DENIED by chaos policy: No chaos on Fridays\n", exitFailure},
		{"allowed", api.ChaosResult{Mode: "error", Track: "stable", Plan: plan, Gated: true, Allowed: &yes},
			[]string{"chaos", "error", "--rate", "0.5", "--dry-run"}, "The chaos policy allows it now.\n", exitOK},
		{"recover", api.ChaosResult{Mode: "recover", Track: "stable", Plan: plan},
			[]string{"chaos", "recover", "--dry-run"}, "(not gated (recover undoes chaos))", exitOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got api.ChaosRequest
			socket := chaosDaemon(t, c.answer, &got)
			stdout, stderr, code := runCLI(t, append(c.args, "--socket", socket)...)
			if code != c.wantCode || !strings.Contains(stdout, c.want) || !strings.Contains(stdout, plan[0]) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, the plan and %q", code, stdout, stderr, c.wantCode, c.want)
			}
			if !got.DryRun {
				t.Errorf("request %+v, want a dry run", got)
			}
		})
	}
}
