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
	"reflect"
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
		// The longest container names and the most of them: nginx refuses
		// any one parameter longer than its 4 KiB parse buffer.
		testCase{name: "largest stack", stack: largestStack(t), wantOK: true, wantOutput: "test is successful"},
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
	id := startNginx(t, cli, project, conf, hosts, cmd...).id
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

// nginxContainer is a started nginx test container and the host
// directories mounted into it.
type nginxContainer struct {
	id      string
	confDir string // at stack.ConfigDir, read-only
	runDir  string // at stack.NginxRunDir, read-write: holds the status socket
}

// startNginx starts an nginx container labelled with the test project and
// removes it when the test ends. Like the daemon's, it has a host
// directory at stack.NginxRunDir, without which nginx cannot create its
// status socket and refuses to start.
func startNginx(t *testing.T, cli *client.Client, project string, conf []byte, hosts map[string]string, cmd ...string) nginxContainer {
	t.Helper()
	ctx := context.Background()
	dir, runDir := t.TempDir(), t.TempDir()
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
			Binds:      []string{dir + ":" + stack.ConfigDir + ":ro", runDir + ":" + stack.NginxRunDir + ":rw"},
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
	return nginxContainer{id: created.ID, confDir: dir, runDir: runDir}
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

// withBackends inserts testBackends into a rendered config, before the
// brace closing the http block.
func withBackends(conf []byte, port int) []byte {
	end := bytes.LastIndexByte(conf, '}')
	return append(conf[:end:end], append([]byte(fmt.Sprintf(testBackends, port)), conf[end:]...)...)
}

// servedNginx is a running front door under test.
type servedNginx struct {
	nginxContainer
	addr string // the front door's host:port
}

// serveNginx runs the rendered config for s with testBackends and returns
// the container once the front door listens.
func serveNginx(t *testing.T, cli *client.Client, project string, s stack.Stack, hosts map[string]string) servedNginx {
	t.Helper()
	conf, err := Nginx(s)
	if err != nil {
		t.Fatal(err)
	}
	return serveConf(t, cli, project, withBackends(conf, s.Stable[0].Port), s.Nginx.Port, hosts)
}

// serveConf runs conf, the front door listening on port, and returns the
// container once it listens.
func serveConf(t *testing.T, cli *client.Client, project string, conf []byte, port int, hosts map[string]string) servedNginx {
	t.Helper()
	c := startNginx(t, cli, project, conf, hosts, "nginx", "-c", stack.ConfigDir+"/"+NginxConfigFile, "-g", "daemon off;")
	id := c.id
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
	addr := net.JoinHostPort(ip.String(), fmt.Sprint(port))
	// Readiness, not a timing assertion: wait for nginx to listen.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return servedNginx{nginxContainer: c, addr: addr}
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
	addr := serveNginx(t, cli, project, s, hosts).addr

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
		// Not refused unless nginx.deny_paths lists it.
		{"/admin", 200, "stable /admin "},
		{"/admin/users", 200, "stable /admin/users "},
		// The status location lives on the Unix socket only.
		{"/swiftdeploy/config", 403, ""},
		{"/swiftdeploy", 403, ""},
		{"/SwiftDeploy/config", 403, ""},
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
			addr := serveNginx(t, cli, project, s, resolveTracks(s)).addr
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

// unixGet sends GET path to the HTTP server on the Unix socket sock.
func unixGet(t *testing.T, sock, path string) (int, http.Header, string) {
	t.Helper()
	c := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://nginx" + path)
	if err != nil {
		t.Fatalf("GET %s on %s: %v", path, sock, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s on %s: read body: %v", path, sock, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// TestNginxStatusSocket reads what nginx has loaded over its status
// socket, from the host through the bind-mounted run directory as the
// daemon does, and checks that it reports the running config, not the
// file on disk, until nginx reloads.
func TestNginxStatusSocket(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)

	const doc = `
project: shop
services:
  image: "app:1"
  port: 3000
  replicas: 2
  canary: {image: "app:2", weight: %d}
nginx: {image: "nginx:latest", port: 8080}
network: {name: shop-net}
`
	s := parseStack(t, fmt.Sprintf(doc, 20))
	ngx := serveNginx(t, cli, project, s, resolveTracks(s))
	sock := filepath.Join(ngx.runDir, stack.NginxStatusSocket)

	// loaded reads and parses the status body.
	loaded := func() (LoadedConfig, string) {
		t.Helper()
		status, header, body := unixGet(t, sock, stack.NginxStatusPath)
		if status != 200 {
			t.Fatalf("GET %s on the status socket = %d %q", stack.NginxStatusPath, status, body)
		}
		if ct := header.Get("Content-Type"); ct != "text/plain" {
			t.Errorf("Content-Type = %q, want text/plain", ct)
		}
		c, err := ParseLoadedConfig([]byte(body))
		if err != nil {
			t.Fatalf("status body %q: %v", body, err)
		}
		return c, body
	}
	revisionOf := func(s stack.Stack) string {
		t.Helper()
		conf, err := Nginx(s)
		if err != nil {
			t.Fatal(err)
		}
		rev, err := NginxRevision(conf)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}

	rev := revisionOf(s)
	t.Run("reports the loaded config", func(t *testing.T) {
		got, body := loaded()
		want := fmt.Sprintf("revision %s\nweight 20\nstable %s,%s\ncanary %s\n", rev, s.Stable[0].Name, s.Stable[1].Name, s.Canary[0].Name)
		if body != want {
			t.Errorf("status body = %q, want %q", body, want)
		}
		if got.Revision != rev || got.Weight != 20 {
			t.Errorf("loaded revision %s weight %d, want %s weight 20", got.Revision, got.Weight, rev)
		}
	})
	t.Run("nothing else on the socket", func(t *testing.T) {
		if status, _, body := unixGet(t, sock, "/"); status != 404 {
			t.Errorf("GET / on the status socket = %d %q, want 404", status, body)
		}
	})
	t.Run("not on the public port", func(t *testing.T) {
		if status, body := get(t, ngx.addr, stack.NginxStatusPath); status != 403 {
			t.Errorf("GET %s on the front door = %d %q, want 403", stack.NginxStatusPath, status, body)
		}
	})

	t.Run("largest stack", func(t *testing.T) {
		// Its lists are assembled over several set directives.
		big := largestStack(t)
		sock := filepath.Join(serveNginx(t, cli, project, big, resolveTracks(big)).runDir, stack.NginxStatusSocket)
		status, _, body := unixGet(t, sock, stack.NginxStatusPath)
		if status != 200 {
			t.Fatalf("GET %s on the status socket = %d %q", stack.NginxStatusPath, status, body)
		}
		got, err := ParseLoadedConfig([]byte(body))
		if err != nil {
			t.Fatalf("status body %q: %v", body, err)
		}
		want := LoadedConfig{Revision: revisionOf(big), Weight: 50, Stable: containerNames(big.Stable), Canary: containerNames(big.Canary)}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("status of the largest stack = %+v\nwant %+v", got, want)
		}
	})

	t.Run("the file on disk is not what runs until a reload", func(t *testing.T) {
		next := parseStack(t, fmt.Sprintf(doc, 50))
		nextRev := revisionOf(next)
		conf, err := Nginx(next)
		if err != nil {
			t.Fatal(err)
		}
		// Renamed into place, as the daemon installs a config.
		tmp := filepath.Join(ngx.confDir, NginxConfigFile+".new")
		if err := os.WriteFile(tmp, withBackends(conf, next.Stable[0].Port), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(ngx.confDir, NginxConfigFile)); err != nil {
			t.Fatal(err)
		}
		if got, _ := loaded(); got.Revision != rev {
			t.Fatalf("before the reload nginx reports revision %s, want the loaded %s", got.Revision, rev)
		}
		if _, err := cli.ContainerKill(context.Background(), ngx.id, client.ContainerKillOptions{Signal: "HUP"}); err != nil {
			t.Fatalf("signal nginx to reload: %v", err)
		}
		// Readiness, not a timing assertion: new workers take a moment.
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, _ := loaded()
			if got.Revision == nextRev {
				if got.Weight != 50 {
					t.Errorf("after the reload weight = %d, want 50", got.Weight)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx still reports revision %s after a reload, want %s", got.Revision, nextRev)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
