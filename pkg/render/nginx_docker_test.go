package render

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// TestNginxConfigAccepted runs the real `nginx -t` on every rendered config.
func TestNginxConfigAccepted(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)

	type testCase struct {
		name       string
		stack      stack.Stack
		edit       func(conf []byte) []byte // nil: the rendered config as is
		wantOK     bool
		wantOutput string
	}
	var tests []testCase
	for _, c := range goldenCases {
		tests = append(tests, testCase{name: c, stack: loadStack(t, c), wantOK: true, wantOutput: "test is successful"})
	}
	full := loadStack(t, "canary20")
	full.CanaryWeight = 100
	tests = append(tests,
		testCase{name: "canary at 100%", stack: full, wantOK: true, wantOutput: "test is successful"},
		// Proves the check can fail: a misspelt directive must be rejected.
		testCase{
			name:  "broken directive",
			stack: loadStack(t, "seed"),
			edit: func(conf []byte) []byte {
				return bytes.Replace(conf, []byte("proxy_read_timeout"), []byte("proxy_read_timeoutt"), 1)
			},
			wantOK:     false,
			wantOutput: `unknown directive "proxy_read_timeoutt"`,
		},
	)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := Nginx(tt.stack)
			if err != nil {
				t.Fatal(err)
			}
			if tt.edit != nil {
				conf = tt.edit(conf)
			}
			hosts := map[string]string{}
			for _, a := range tt.stack.Apps() {
				hosts[a.Name] = "127.0.0.1"
			}
			code, out := runNginx(t, cli, project, conf, hosts, "nginx", "-t", "-c", stack.ConfigDir+"/"+NginxConfigFile)
			if ok := code == 0; ok != tt.wantOK {
				t.Fatalf("nginx -t exit code %d, want success=%v; output:\n%s\nconfig:\n%s", code, tt.wantOK, out, conf)
			}
			if !strings.Contains(out, tt.wantOutput) {
				t.Errorf("nginx -t output does not mention %q:\n%s", tt.wantOutput, out)
			}
		})
	}
}

// runNginx runs cmd to completion in an nginx container that sees conf in
// stack.ConfigDir and resolves each host to its address, and returns the
// exit code and combined output.
func runNginx(t *testing.T, cli *client.Client, project string, conf []byte, hosts map[string]string, cmd ...string) (int64, string) {
	t.Helper()
	ctx := context.Background()
	id := startNginx(t, cli, project, conf, hosts, cmd...)
	wait := cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	var code int64
	select {
	case res := <-wait.Result:
		code = res.StatusCode
	case err := <-wait.Error:
		t.Fatalf("wait for container %s: %v", id, err)
	case <-time.After(time.Minute):
		t.Fatalf("container %s still running after a minute", id)
	}
	return code, containerOutput(t, cli, id)
}

// startNginx starts an nginx container labelled with the test project and
// removes it when the test ends.
func startNginx(t *testing.T, cli *client.Client, project string, conf []byte, hosts map[string]string, cmd ...string) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, NginxConfigFile), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	var extraHosts []string
	for name, addr := range hosts {
		extraHosts = append(extraHosts, name+":"+addr)
	}
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:  images.NginxImage,
			Cmd:    cmd,
			Labels: map[string]string{stack.LabelProject: project},
			// A TTY merges stdout and stderr into one plain log stream.
			Tty: true,
		},
		HostConfig: &container.HostConfig{
			Binds:      []string{dir + ":" + stack.ConfigDir + ":ro"},
			ExtraHosts: extraHosts,
		},
	})
	if err != nil {
		t.Fatalf("create nginx container: %v", err)
	}
	t.Cleanup(func() {
		if _, err := cli.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Errorf("remove container %s: %v", created.ID, err)
		}
	})
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start nginx container: %v", err)
	}
	return created.ID
}

func containerOutput(t *testing.T, cli *client.Client, id string) string {
	t.Helper()
	logs, err := cli.ContainerLogs(context.Background(), id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("logs of container %s: %v", id, err)
	}
	defer logs.Close()
	out, err := io.ReadAll(logs)
	if err != nil {
		t.Fatalf("read logs of container %s: %v", id, err)
	}
	return string(out)
}

// testBackends are server blocks added to a rendered config so that one
// nginx container is also the app: each track answers on its own loopback
// address (stable hosts resolve to 127.0.0.1, canary ones to 127.0.0.2)
// with its name and the headers the front door set.
const testBackends = `
    server {
        listen 127.0.0.1:%[1]d;
        return 200 "stable $request_uri real-ip=$http_x_real_ip xff=$http_x_forwarded_for proto=$http_x_forwarded_proto\n";
    }
    server {
        listen 127.0.0.2:%[1]d;
        return 200 "canary $request_uri real-ip=$http_x_real_ip xff=$http_x_forwarded_for proto=$http_x_forwarded_proto\n";
    }
`

const (
	stableAddr = "127.0.0.1"
	canaryAddr = "127.0.0.2"
	deadAddr   = "127.0.0.3" // nothing listens there
)

// serveNginx runs the rendered config for s with testBackends and returns
// the front door's address.
func serveNginx(t *testing.T, cli *client.Client, project string, s stack.Stack, hosts map[string]string) string {
	t.Helper()
	conf, err := Nginx(s)
	if err != nil {
		t.Fatal(err)
	}
	// Insert the backends before the brace closing the http block.
	end := bytes.LastIndexByte(conf, '}')
	conf = append(conf[:end:end], append([]byte(fmt.Sprintf(testBackends, s.Stable[0].Port)), conf[end:]...)...)

	id := startNginx(t, cli, project, conf, hosts, "nginx", "-c", stack.ConfigDir+"/"+NginxConfigFile, "-g", "daemon off;")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nginx output (last lines):\n%s", lastLines(containerOutput(t, cli, id), 40))
		}
	})
	inspect, err := cli.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect nginx container: %v", err)
	}
	var ip netip.Addr
	for _, ep := range inspect.Container.NetworkSettings.Networks {
		ip = ep.IPAddress
	}
	if !ip.IsValid() {
		t.Fatalf("nginx container has no IP address")
	}
	addr := net.JoinHostPort(ip.String(), fmt.Sprint(s.Nginx.Port))
	// Readiness, not a timing assertion: wait for nginx to listen.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx never listened on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get sends a GET for the raw request target, exactly as written (Go's
// client would clean "//chaos" or re-encode "/%63haos").
func get(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n", target); err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", target, err)
	}
	return resp.StatusCode, string(body)
}

// resolveTracks maps stable containers to stableAddr and canary ones to canaryAddr.
func resolveTracks(s stack.Stack) map[string]string {
	hosts := map[string]string{}
	for _, a := range s.Stable {
		hosts[a.Name] = stableAddr
	}
	for _, a := range s.Canary {
		hosts[a.Name] = canaryAddr
	}
	return hosts
}

// TestNginxRouting serves real traffic through a rendered config: what is
// proxied, what is refused, which headers reach the app, and that a dead
// container is routed around.
func TestNginxRouting(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)

	s := parseStack(t, `
project: shop
services: {image: "app:1", port: 3000, replicas: 2}
nginx: {image: "nginx:latest", port: 8080}
network: {name: shop-net}
`)
	hosts := resolveTracks(s)
	// The first replica is gone: its requests must fail over to the second.
	hosts[s.Stable[0].Name] = deadAddr
	addr := serveNginx(t, cli, project, s, hosts)

	tests := []struct {
		target     string
		wantStatus int
		wantBody   string // prefix of the body, for proxied requests
	}{
		{"/", 200, "stable / "},
		{"/api/orders?id=1", 200, "stable /api/orders?id=1 "},
		{"/metrics", 200, "stable /metrics "},
		{"/healthz", 200, "stable /healthz "},
		{"/chaos", 403, ""},
		{"/chaos/slow", 403, ""},
		{"/chaos?mode=error", 403, ""},
		{"/%63haos", 403, ""},
		{"//chaos", 403, ""},
		{"/x/../chaos", 403, ""},
		{"/./chaos", 403, ""},
		{"/CHAOS", 403, ""},
		{"/Chaos/x", 403, ""},
		{"/chaos/", 403, ""},
		{"/internal", 403, ""},
		{"/internal/", 403, ""},
		{"/internal/state", 403, ""},
		{"/INTERNAL", 403, ""},
		{"/Internal/state", 403, ""},
		{"/internal?x=1", 403, ""},
		{"/%69nternal/state", 403, ""},
		{"/debug", 403, ""},
		{"/debug/", 403, ""},
		{"/debug/x", 403, ""},
		{"/debug/pprof/", 403, ""},
		{"/Debug/", 403, ""},
		{"/DEBUG", 403, ""},
		{"/x/../Debug", 403, ""},
		{"/admin", 403, ""},
		{"/admin/users", 403, ""},
		// Only the /internal and /debug segments are refused, not every
		// path that starts with the same letters.
		{"/internals", 200, "stable /internals "},
		{"/debugger/x", 200, "stable /debugger/x "},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			// Several requests, so both replicas are picked and the dead one
			// is retried on the live one.
			for range 4 {
				status, body := get(t, addr, tt.target)
				if status != tt.wantStatus || !strings.HasPrefix(body, tt.wantBody) {
					t.Fatalf("GET %s = %d %q, want %d %q...", tt.target, status, body, tt.wantStatus, tt.wantBody)
				}
			}
		})
	}

	t.Run("client address headers", func(t *testing.T) {
		_, body := get(t, addr, "/")
		fields := map[string]string{}
		for _, f := range strings.Fields(body) {
			if k, v, ok := strings.Cut(f, "="); ok {
				fields[k] = v
			}
		}
		if _, err := netip.ParseAddr(fields["real-ip"]); err != nil {
			t.Errorf("X-Real-IP %q is not the client address (body %q)", fields["real-ip"], body)
		}
		if fields["xff"] != fields["real-ip"] {
			t.Errorf("X-Forwarded-For = %q, want the client address %q", fields["xff"], fields["real-ip"])
		}
		if fields["proto"] != "http" {
			t.Errorf("X-Forwarded-Proto = %q, want http", fields["proto"])
		}
	})
}

// TestNginxCanarySplit checks that the share of requests reaching the canary
// follows CanaryWeight.
func TestNginxCanarySplit(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)

	const requests = 2000
	tests := []struct {
		weight int
		// Bounds on canary responses. At 20% the expected count is 400
		// with a standard deviation of about 18: 300-500 is over 5 of them
		// either way, so a correct split practically never fails, while
		// 15% or 25% fall outside about half the time and 30% always.
		min, max int
	}{
		{0, 0, 0},
		{20, 300, 500},
		{100, requests, requests},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("weight %d", tt.weight), func(t *testing.T) {
			s := parseStack(t, fmt.Sprintf(`
project: shop
services:
  image: "app:1"
  port: 3000
  replicas: 2
  canary: {image: "app:2", weight: %d}
nginx: {image: "nginx:latest", port: 8080}
network: {name: shop-net}
`, tt.weight))
			addr := serveNginx(t, cli, project, s, resolveTracks(s))
			canary := 0
			for range requests {
				status, body := get(t, addr, "/")
				switch {
				case status != 200:
					t.Fatalf("GET / = %d %q", status, body)
				case strings.HasPrefix(body, "canary "):
					canary++
				case !strings.HasPrefix(body, "stable "):
					t.Fatalf("GET / answered by neither track: %q", body)
				}
			}
			t.Logf("%d of %d requests reached the canary", canary, requests)
			if canary < tt.min || canary > tt.max {
				t.Errorf("%d of %d requests reached the canary at weight %d, want %d-%d", canary, requests, tt.weight, tt.min, tt.max)
			}
		})
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
