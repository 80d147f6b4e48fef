package render

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
)

// TestComposeUp runs the rendered docker-compose.yml and nginx.conf with
// docker-compose and reaches the app through nginx: the two files really
// do run the stack without the daemon.
func TestComposeUp(t *testing.T) {
	bin := composeV1(t)
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli) // its cleanup removes what compose leaves
	port := freePort(t)
	// Published on one loopback address only, so that the test can see the
	// bind work: the rest of 127.0.0.0/8 reaches the host too, but must
	// find nothing on the port.
	const bindAddr, otherAddr = "127.0.0.2", "127.0.0.1"

	s := parseStack(t, fmt.Sprintf(`
project: %[1]s
services:
  image: %[2]q
  port: 3000
  replicas: 2
  canary: {image: %[3]q, weight: 50}
nginx: {image: %[4]q, port: %[5]d, bind: %[6]s}
network: {name: %[1]s-net}
`, project, images.AppImage, images.AppImageV2, images.NginxImage, port, bindAddr))

	dir := t.TempDir()
	for name, render := range map[string]func() ([]byte, error){
		"docker-compose.yml": func() ([]byte, error) { return Compose(s) },
		NginxConfigFile:      func() ([]byte, error) { return Nginx(s) },
	} {
		data, err := render()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	compose := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"-p", project}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if out, err := compose("down", "--timeout", "1"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	if out, err := compose("up", "-d"); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}

	base := fmt.Sprintf("http://%s:%d", bindAddr, port)
	httpClient := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string, error) {
		resp, err := httpClient.Get(base + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}

	// Readiness, not a timing assertion: the apps may take a moment.
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, _, err := get("/healthz")
		if err == nil && status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := compose("logs", "--no-color", "--tail", "20")
			t.Fatalf("GET /healthz through nginx never answered 200 (last: %d, %v)\n%s", status, err, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}

	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/healthz", http.StatusOK, ""},
		{"/metrics", http.StatusOK, "app_uptime_seconds"},
		{"/chaos", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body, err := get(tt.path)
			if err != nil {
				t.Fatalf("GET %s: %v", tt.path, err)
			}
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Errorf("GET %s = %d %.200q, want %d with %q", tt.path, status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}

	t.Run("published on nginx.bind only", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(otherAddr, fmt.Sprint(port)), 2*time.Second)
		if err == nil {
			conn.Close()
			t.Errorf("nginx.bind is %s, yet %s:%d accepts connections", bindAddr, otherAddr, port)
		}
	})

	t.Run("both tracks serve", func(t *testing.T) {
		// At weight 50, 100 requests all landing on one track has odds of 2^-99.
		modes := trackShares(t, httpClient, base+"/", 100)
		if modes["stable"] == 0 || modes["canary"] == 0 || len(modes) != 2 {
			t.Errorf("X-App-Mode over 100 requests = %v, want both stable and canary", modes)
		}
	})
}

// trackShares counts X-App-Mode over n requests to url.
func trackShares(t *testing.T, c *http.Client, url string, n int) map[string]int {
	t.Helper()
	modes := map[string]int{}
	for range n {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", url, resp.StatusCode)
		}
		modes[resp.Header.Get("X-App-Mode")]++
	}
	return modes
}

// freePort returns a host TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
