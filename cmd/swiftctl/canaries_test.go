package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// The canary commands take an optional SERVICE (several web services may
// run a canary at once) and send it to the daemon; without it, the body
// is what it was before (the primary's canary).
func TestCanaryCommandsNameTheService(t *testing.T) {
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
	var mu sync.Mutex
	var got []string
	mux := http.NewServeMux()
	for _, p := range []string{api.PathPromote, api.PathAbort, api.PathRollback, api.PathPause, api.PathResume} {
		mux.HandleFunc("POST "+p, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			got = append(got, p+" "+strings.TrimSpace(string(b)))
			mu.Unlock()
			if p == api.PathPause || p == api.PathResume {
				json.NewEncoder(w).Encode(map[string]any{"paused": p == api.PathPause})
				return
			}
			json.NewEncoder(w).Encode(api.Progress{Done: true})
		})
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"promote", "web"}, api.PathPromote + ` {"service":"web"}`},
		{[]string{"promote", "web", "--full"}, api.PathPromote + ` {"full":true,"service":"web"}`},
		{[]string{"promote"}, api.PathPromote + ` `},
		{[]string{"abort", "web", "--reason", "slow"}, api.PathAbort + ` {"reason":"slow","service":"web"}`},
		{[]string{"rollback", "web"}, api.PathRollback + ` {"service":"web"}`},
		{[]string{"pause", "web"}, api.PathPause + ` {"service":"web"}`},
		{[]string{"resume"}, api.PathResume + ` {}`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			if _, stderr, code := runCLI(t, append(tc.args, "--socket", socket)...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("daemon got %q, want %q", got, tc.want)
			}
		})
	}
	if _, stderr, code := runCLI(t, "promote", "web", "api", "--socket", socket); code != 2 || !strings.Contains(stderr, "accepts at most 1 arg") {
		t.Errorf("two services: exit %d, %s", code, stderr)
	}
}
