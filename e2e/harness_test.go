// Package e2e runs swiftdeployd and swiftctl as real processes against the
// real Docker Engine and real nginx.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "swiftdeploy-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "../cmd/swiftdeployd", "../cmd/swiftctl")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's project: a directory with a manifest, a daemon, and
// the Docker objects it owns (removed by label when the test ends).
type env struct {
	t       *testing.T
	cli     *client.Client
	dir     string
	project string
	network string
	port    int
	socket  string
	api     *api.Client
	daemon  *exec.Cmd
	exited  chan struct{}
	// dockerHost, when set, is the DOCKER_HOST the daemon is started with.
	dockerHost string
	// daemonArgs are added to the daemon's command line; daemonCred, when
	// set, is the credential it runs with (its gid owns the socket).
	daemonArgs []string
	daemonCred *syscall.Credential
	// logPath is the daemon's log (default daemon.log in dir).
	logPath string
	// daemonEnv is added to the daemon's environment.
	daemonEnv []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)
	dir := t.TempDir()
	e := &env{
		t: t, cli: cli, dir: dir, project: project,
		network: project + "-net",
		port:    freePort(t),
		socket:  filepath.Join(dir, "sd.sock"),
	}
	e.api = api.NewClient(e.socket)
	return e
}

// manifest returns a manifest for this test's project; extra is appended
// under services (indented two spaces) and top level as given.
func (e *env) manifest(image string, replicas int, extra string) string {
	return fmt.Sprintf(`project: %s
services:
  image: %s
  port: 3000
  replicas: %d
nginx:
  image: %s
  port: %d
network:
  name: %s
  driver_type: bridge
metrics:
  scrape_interval: 1s
  window: 10s
policy:
  max_cpu_load: 1000
  min_disk_gb: 0.1
%s`, e.project, image, replicas, images.NginxImage, e.port, e.network, extra)
}

// writeManifest replaces the manifest the way editors do: write a temp
// file, then rename it over the old one.
func (e *env) writeManifest(content string) {
	e.t.Helper()
	tmp := filepath.Join(e.dir, ".manifest.yaml.swp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.dir, "manifest.yaml")); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) startDaemon() {
	e.t.Helper()
	if e.logPath == "" {
		e.logPath = filepath.Join(e.dir, "daemon.log")
	}
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	args := append([]string{"--manifest", filepath.Join(e.dir, "manifest.yaml"), "--socket", e.socket}, e.daemonArgs...)
	cmd := exec.Command(filepath.Join(binDir, "swiftdeployd"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if e.daemonCred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.daemonCred}
	}
	if e.dockerHost != "" {
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.dockerHost)
	}
	if len(e.daemonEnv) > 0 {
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, e.daemonEnv...)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.daemon = cmd
	e.exited = make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(e.exited) }()
	e.t.Cleanup(func() { e.stopDaemon(syscall.SIGTERM) })
	e.waitFor(15*time.Second, "daemon socket", func() (bool, string) {
		var s api.Status
		err := e.api.Get(context.Background(), api.PathStatus, &s)
		return err == nil, fmt.Sprint(err)
	})
}

func (e *env) stopDaemon(sig syscall.Signal) {
	if e.daemon == nil {
		return
	}
	_ = e.daemon.Process.Signal(sig)
	select {
	case <-e.exited:
	case <-time.After(20 * time.Second):
		_ = e.daemon.Process.Kill()
		<-e.exited
	}
	e.daemon = nil
	if e.t.Failed() {
		b, _ := os.ReadFile(e.logPath)
		e.t.Logf("daemon log:\n%s", lastLines(string(b), 60))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (e *env) status() api.Status {
	e.t.Helper()
	var s api.Status
	if err := e.api.Get(context.Background(), api.PathStatus, &s); err != nil {
		e.t.Fatalf("status: %v", err)
	}
	return s
}

// swiftctl runs the CLI and returns its combined output and exit code.
func (e *env) swiftctl(args ...string) (string, int) {
	e.t.Helper()
	full := append([]string{"--manifest", filepath.Join(e.dir, "manifest.yaml"), "--socket", e.socket}, args...)
	cmd := exec.Command(filepath.Join(binDir, "swiftctl"), full...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("swiftctl %v: %v", args, err)
	}
	return string(out), code
}

func (e *env) waitFor(timeout time.Duration, what string, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
}

// appContainers counts running app containers by image.
func (e *env) running(s api.Status) map[string]int {
	out := map[string]int{}
	for _, c := range s.Containers {
		if c.Role == "app" && c.State == "running" {
			out[c.Image]++
		}
	}
	return out
}

func (e *env) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", e.port, path) }

type appInfo struct {
	Mode     string `json:"mode"`
	Version  string `json:"version"`
	Hostname string `json:"hostname"`
}

func get(url string) (int, appInfo, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, appInfo{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var info appInfo
	_ = json.Unmarshal(b, &info)
	return resp.StatusCode, info, nil
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// load sends requests at a steady rate until stopped and counts failures.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	modes      map[string]int // responses per X-App-Mode
	stop       func()
}

// openLoop sends a GET to url every period, whether or not earlier ones
// answered, and reports each result to fn (sent time, X-App-Mode of a 200,
// or the error). The returned stop waits for requests in flight.
func openLoop(url string, every time.Duration, fn func(sent time.Time, mode string, err error)) (stop func()) {
	return openLoopHost(url, "", every, fn)
}

// openLoopHost is openLoop with a Host header (a service routed by host;
// "" sends the URL's).
func openLoopHost(url, host string, every time.Duration, fn func(sent time.Time, mode string, err error)) (stop func()) {
	stopc, done := make(chan struct{}), make(chan struct{})
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stopc:
				wg.Wait()
				return
			case <-tick.C:
				wg.Add(1)
				go func() {
					defer wg.Done()
					sent := time.Now()
					req, err := http.NewRequest(http.MethodGet, url, nil)
					if err != nil {
						fn(sent, "", err)
						return
					}
					if host != "" {
						req.Host = host
					}
					resp, err := c.Do(req)
					mode := ""
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						mode = resp.Header.Get("X-App-Mode")
						if resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("status %d", resp.StatusCode)
						}
					}
					fn(sent, mode, err)
				}()
			}
		}
	}()
	return func() { close(stopc); <-done }
}

func startLoad(url string, every time.Duration) *load {
	return startLoadHost(url, "", every)
}

// startLoadHost is startLoad with a Host header ("" sends the URL's).
func startLoadHost(url, host string, every time.Duration) *load {
	l := &load{modes: map[string]int{}}
	l.stop = openLoopHost(url, host, every, func(_ time.Time, mode string, err error) {
		if err == nil {
			l.ok.Add(1)
			l.mu.Lock()
			l.modes[mode]++
			l.mu.Unlock()
			return
		}
		l.failed.Add(1)
		l.mu.Lock()
		if len(l.failures) < 20 {
			l.failures = append(l.failures, err.Error())
		}
		l.mu.Unlock()
	})
	return l
}

// modeShares returns the responses per X-App-Mode so far.
func (l *load) modeShares() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.modes {
		out[k] = v
	}
	return out
}

func (l *load) finish() (ok, failed int64, samples []string) {
	l.stop()
	return l.ok.Load(), l.failed.Load(), l.failures
}

func contains(s, sub string) bool { return bytes.Contains([]byte(s), []byte(sub)) }

// dockerContainers lists the project's containers as Docker sees them,
// bypassing the daemon (whose status is not refreshed while down).
func (e *env) dockerContainers() []string {
	e.t.Helper()
	res, err := e.cli.ContainerList(context.Background(), client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", "io.swiftdeploy.project="+e.project),
	})
	if err != nil {
		e.t.Fatalf("list containers: %v", err)
	}
	var out []string
	for _, c := range res.Items {
		name := c.ID[:12]
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, name+"/"+string(c.State))
	}
	return out
}

// onCreate calls fn once, on the first container the engine creates for
// this project with the given image label, while the engine is still
// working on it.
func (e *env) onCreate(image string, fn func()) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	res := e.cli.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).
		Add("type", "container").Add("event", "create").
		Add("label", "io.swiftdeploy.project="+e.project).
		Add("label", "io.swiftdeploy.image="+image)})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-res.Messages:
			fn()
		case <-res.Err:
		case <-ctx.Done():
		}
	}()
	return func() { cancel(); <-done }
}
