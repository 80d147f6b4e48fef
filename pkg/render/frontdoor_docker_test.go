package render

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/hold"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// The front door for real web apps, served by real nginx with the
// rendered config: uploads, refused paths, the sticky split, match, the
// client address behind a load balancer, and swiftctl traffic.

const frontDoorDoc = `
project: shop
services:
  image: "app:1"
  port: 3000
  replicas: 2
%s
nginx:
  image: "nginx:latest"
  port: 8080
%s
network: {name: shop-net}
`

func frontDoorStack(t *testing.T, services, nginx string) stack.Stack {
	t.Helper()
	return parseStack(t, fmt.Sprintf(frontDoorDoc, services, nginx))
}

// do sends req to the front door on a fresh connection and returns the
// status, headers and body.
func do(t *testing.T, c *http.Client, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// acceptingWorkers are the PIDs of nginx's workers that may still accept
// a connection: a worker told to quit by a reload retitles itself "worker
// process is shutting down" as it closes its listening sockets.
func acceptingWorkers(t *testing.T, cli *client.Client, id string) map[string]bool {
	t.Helper()
	res, err := cli.ContainerTop(context.Background(), id, client.ContainerTopOptions{})
	if err != nil {
		t.Fatalf("list nginx's processes: %v", err)
	}
	pid, cmd := -1, -1
	for i, title := range res.Titles {
		switch title {
		case "PID":
			pid = i
		case "CMD", "COMMAND":
			cmd = i
		}
	}
	out := map[string]bool{}
	for _, p := range res.Processes {
		if pid >= 0 && cmd >= 0 && strings.TrimSpace(p[cmd]) == "nginx: worker process" {
			out[p[pid]] = true
		}
	}
	return out
}

// reloadNginx installs s's config in the running container and waits for
// nginx to report it loaded and for the workers of the config before to
// stop accepting: until then a new connection may still land on one (seen:
// a request answered by the app right after a pause was loaded).
func reloadNginx(t *testing.T, cli *client.Client, ngx servedNginx, s stack.Stack) {
	t.Helper()
	old := acceptingWorkers(t, cli, ngx.id)
	conf, err := Nginx(s)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := NginxRevision(conf)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(ngx.confDir, NginxConfigFile+".new")
	if err := os.WriteFile(tmp, withBackends(conf, s.Stable[0].Port), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(ngx.confDir, NginxConfigFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerKill(context.Background(), ngx.id, client.ContainerKillOptions{Signal: "HUP"}); err != nil {
		t.Fatalf("signal nginx to reload: %v", err)
	}
	sock := filepath.Join(ngx.runDir, stack.NginxStatusSocket)
	deadline := time.Now().Add(30 * time.Second) // readiness, not a timing assertion
	for {
		_, _, body := unixGet(t, sock, stack.NginxStatusPath)
		if c, err := ParseLoadedConfig([]byte(body)); err == nil && c.Revision == rev {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx never loaded revision %s", rev)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		still := 0
		for pid := range acceptingWorkers(t, cli, ngx.id) {
			if old[pid] {
				still++
			}
		}
		if still == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers of the config before the reload still accept connections", still)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestNginxUploads(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)
	body := bytes.Repeat([]byte("x"), 5_000_000)
	c := &http.Client{Timeout: 30 * time.Second}

	for _, tt := range []struct {
		name, nginx string
		want        int
	}{
		// nginx's own default (1 MB) answered 413 before
		// client_max_body_size existed; the default is now 100m.
		{"default limit", "", 200},
		{"limit set below the body", "  client_max_body_size: 1m", 413},
		{"streamed to the app", "  request_buffering: false", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := frontDoorStack(t, "", tt.nginx)
			addr := serveNginx(t, cli, project, s, resolveTracks(s)).addr
			status, _, resp := do(t, c, newRequest(t, "POST", "http://"+addr+"/upload", bytes.NewReader(body)))
			if status != tt.want {
				t.Fatalf("POST of %d bytes = %d %.80q, want %d", len(body), status, resp, tt.want)
			}
		})
	}
}

func TestNginxDenyPaths(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)

	always := []string{"/chaos", "/CHAOS", "/%63haos", "/Chaos/x", "//chaos", "/swiftdeploy/x", "/SwiftDeploy/config", "/swiftdeploy"}
	for _, tt := range []struct {
		name, nginx        string
		refused, reachable []string
	}{
		{"default", "",
			append([]string{"/debug", "/Debug/x", "/internal/state", "/%69nternal/"}, always...),
			[]string{"/admin", "/admin/", "/administrator", "/adminer", "/Admin/users", "/internals", "/"}},
		{"admin listed", "  deny_paths: [/admin]",
			append([]string{"/admin", "/ADMIN/users", "/%61dmin", "/administrator"}, always...),
			[]string{"/debug/x", "/internal/state", "/"}},
		{"nothing listed", "  deny_paths: []",
			always,
			[]string{"/debug/pprof/", "/internal/", "/admin"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := frontDoorStack(t, "", tt.nginx)
			addr := serveNginx(t, cli, project, s, resolveTracks(s)).addr
			for _, p := range tt.refused {
				if status, body := get(t, addr, p); status != 403 {
					t.Errorf("GET %s = %d %q, want 403", p, status, body)
				}
			}
			for _, p := range tt.reachable {
				if status, body := get(t, addr, p); status != 200 || !strings.HasPrefix(body, "stable ") {
					t.Errorf("GET %s = %d %q, want the app's 200", p, status, body)
				}
			}
		})
	}
}

// track asks the front door for / as a client holding cookie (none when
// empty) and returns the track that answered and the Set-Cookie header.
func track(t *testing.T, c *http.Client, addr, cookie string, header map[string]string) (string, string) {
	t.Helper()
	req := newRequest(t, "GET", "http://"+addr+"/", nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	status, h, body := do(t, c, req)
	if status != 200 {
		t.Fatalf("GET / = %d %q", status, body)
	}
	name, _, _ := strings.Cut(body, " ")
	return name, h.Get("Set-Cookie")
}

const canaryAt = "  canary: {image: \"app:2\", weight: %d}"

// TestNginxStickySplit: a client stays on its track, the canary's share
// of clients follows the weight, and a client on the canary stays there as
// the weight rises.
func TestNginxStickySplit(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)
	s := frontDoorStack(t, fmt.Sprintf(canaryAt, 10), "")
	ngx := serveNginx(t, cli, project, s, resolveTracks(s))
	// A fresh connection per request after a reload (below): an idle
	// keep-alive connection may belong to a worker of the old config.
	c := &http.Client{Timeout: 10 * time.Second}
	fresh := func() { c.CloseIdleConnections() }

	// A new client is given its cookie once.
	_, set := track(t, c, ngx.addr, "", nil)
	first, _, ok := strings.Cut(set, ";")
	if !ok || !strings.HasPrefix(first, "swiftdeploy_client=") {
		t.Fatalf("first response's Set-Cookie = %q, want swiftdeploy_client=...", set)
	}
	if _, again := track(t, c, ngx.addr, first, nil); again != "" {
		t.Errorf("a client with the cookie is sent Set-Cookie %q again", again)
	}

	// clients are deterministic cookie values, so the shares cannot flake.
	const clients = 10000
	cookie := func(i int) string { return fmt.Sprintf("swiftdeploy_client=client-%05d", i) }
	onCanary := map[int]bool{}
	for _, weight := range []int{10, 25, 50} {
		if weight != 10 {
			reloadNginx(t, cli, ngx, frontDoorStack(t, fmt.Sprintf(canaryAt, weight), ""))
			fresh()
		}
		n := 0
		for i := range clients {
			name, _ := track(t, c, ngx.addr, cookie(i), nil)
			switch {
			case name == "canary":
				n++
				onCanary[i] = true
			case onCanary[i]:
				t.Fatalf("client %d was on the canary at a lower weight, on %s at %d%%", i, name, weight)
			}
		}
		share := 100 * float64(n) / clients
		t.Logf("weight %d%%: %d of %d clients (%.2f%%) on the canary", weight, n, clients, share)
		if share < float64(weight)-1 || share > float64(weight)+1 {
			t.Errorf("weight %d%%: %.2f%% of clients on the canary, want %d%% ± 1 pp", weight, share, weight)
		}
	}

	// A client sees one version across 50 requests while the weight steps
	// 10 → 25 → 50: one given its cookie by nginx that lands on the canary
	// at 10%, and one still on stable at 50%.
	stableClient := ""
	for i := range clients {
		if !onCanary[i] {
			stableClient = strings.SplitN(cookie(i), ";", 2)[0]
			break
		}
	}
	reloadNginx(t, cli, ngx, frontDoorStack(t, fmt.Sprintf(canaryAt, 10), ""))
	fresh()
	var canaryClient string
	for i := 0; canaryClient == ""; i++ {
		_, set := track(t, c, ngx.addr, "", nil)
		ck, _, _ := strings.Cut(set, ";")
		if name, _ := track(t, c, ngx.addr, ck, nil); name == "canary" {
			canaryClient = ck
		}
		if i > 2000 {
			t.Fatal("no client of 2000 landed on the canary at 10%")
		}
	}
	seen := map[string]map[string]bool{canaryClient: {}, stableClient: {}}
	for step, weight := range []int{10, 25, 50} {
		if step > 0 {
			reloadNginx(t, cli, ngx, frontDoorStack(t, fmt.Sprintf(canaryAt, weight), ""))
			fresh()
		}
		for range 17 {
			for ck := range seen {
				name, _ := track(t, c, ngx.addr, ck, nil)
				seen[ck][name] = true
			}
		}
	}
	if len(seen[canaryClient]) != 1 || !seen[canaryClient]["canary"] {
		t.Errorf("a client on the canary at 10%% saw %v across the steps, want the canary only", seen[canaryClient])
	}
	if len(seen[stableClient]) != 1 || !seen[stableClient]["stable"] {
		t.Errorf("a client on stable at 50%% saw %v across the steps, want stable only", seen[stableClient])
	}

	// After an abort (no canary) every client is back on stable.
	reloadNginx(t, cli, ngx, frontDoorStack(t, "", ""))
	fresh()
	if name, _ := track(t, c, ngx.addr, canaryClient, nil); name != "stable" {
		t.Errorf("after the abort the canary client reached %s, want stable", name)
	}
}

func TestNginxCanaryMatch(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)
	c := &http.Client{Timeout: 10 * time.Second}

	for _, tt := range []struct {
		name, match string
		hit, miss   map[string]string // request headers
		hitCookie   string
		missCookie  string
	}{
		{"header", "{header: X-Canary, value: always}",
			map[string]string{"X-Canary": "always"}, map[string]string{"X-Canary": "never"}, "", ""},
		{"cookie", "{cookie: beta, value: \"yes\"}",
			nil, nil, "beta=yes", "beta=no"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := frontDoorStack(t, fmt.Sprintf("  canary: {image: \"app:2\", weight: 0, match: %s}", tt.match), "")
			addr := serveNginx(t, cli, project, s, resolveTracks(s)).addr
			for range 20 {
				if name, _ := track(t, c, addr, tt.hitCookie, tt.hit); name != "canary" {
					t.Fatalf("a matching request at weight 0 reached %s, want the canary", name)
				}
				if name, _ := track(t, c, addr, tt.missCookie, tt.miss); name != "stable" {
					t.Fatalf("a request that does not match reached %s at weight 0, want stable", name)
				}
				if name, _ := track(t, c, addr, "", nil); name != "stable" {
					t.Fatalf("a plain request reached %s at weight 0, want stable", name)
				}
			}
		})
	}
}

// rawGet sends a raw GET with extra header lines, after prefix (a PROXY
// protocol line), and returns the app's echoed fields.
func rawGet(t *testing.T, addr, prefix, headers string) map[string]string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%sGET / HTTP/1.1\r\nHost: shop.test\r\n%sConnection: close\r\n\r\n", prefix, headers)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET /: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET / = %d %q", resp.StatusCode, body)
	}
	fields := map[string]string{}
	for _, f := range strings.Fields(string(body)) {
		if k, v, ok := strings.Cut(f, "="); ok {
			fields[k] = v
		}
	}
	// xff holds ", " between hops: read it whole.
	if i := strings.Index(string(body), "xff="); i >= 0 {
		rest := string(body)[i+4:]
		fields["xff"] = rest[:strings.Index(rest, " proto=")]
	}
	return fields
}

func TestNginxTrustedProxies(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)
	const spoof = "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"

	t.Run("untrusted peer", func(t *testing.T) {
		s := frontDoorStack(t, "", "  trusted_proxies: [192.0.2.0/24]")
		ngx := serveNginx(t, cli, project, s, resolveTracks(s))
		f := rawGet(t, ngx.addr, "", spoof)
		if f["real-ip"] == "203.0.113.7" || f["xff"] != f["real-ip"] || f["proto"] != "http" {
			t.Errorf("an untrusted peer's claim was believed: %v", f)
		}
	})
	t.Run("trusted peer", func(t *testing.T) {
		s := frontDoorStack(t, "", "  trusted_proxies: [0.0.0.0/0]")
		ngx := serveNginx(t, cli, project, s, resolveTracks(s))
		f := rawGet(t, ngx.addr, "", spoof)
		if f["real-ip"] != "203.0.113.7" || !strings.HasPrefix(f["xff"], "203.0.113.7, ") || f["proto"] != "https" {
			t.Errorf("a trusted peer's claim was not used: %v", f)
		}
		// The access log records the real client.
		waitLog(t, cli, ngx.id, "203.0.113.7 [")
	})
	t.Run("proxy protocol", func(t *testing.T) {
		s := frontDoorStack(t, "", "  trusted_proxies: [0.0.0.0/0]\n  proxy_protocol: true")
		ngx := serveNginx(t, cli, project, s, resolveTracks(s))
		f := rawGet(t, ngx.addr, "PROXY TCP4 198.51.100.9 10.0.0.1 5555 8080\r\n", spoof)
		if f["real-ip"] != "198.51.100.9" || f["xff"] != "198.51.100.9" {
			t.Errorf("the PROXY header's client was not used (or the client's X-Forwarded-For was): %v", f)
		}
		waitLog(t, cli, ngx.id, "198.51.100.9 [")
	})
}

func waitLog(t *testing.T, cli *client.Client, id, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(containerOutput(t, cli, id), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the access log never has %q:\n%s", want, lastLines(containerOutput(t, cli, id), 10))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestNginxTrafficHold(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)
	// A fresh connection per request: an idle keep-alive connection may
	// still belong to a worker of the config before the last reload.
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	run := frontDoorStack(t, "", "")
	ngx := serveNginx(t, cli, project, run, resolveTracks(run))
	// nginx's workers (nobody) reach the hold socket through this directory.
	if err := os.Chmod(ngx.confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	with := func(tr stack.Traffic) stack.Stack {
		s := run
		s.FrontDoor.Traffic = tr
		return s
	}
	url := "http://" + ngx.addr + "/orders"

	t.Run("stop", func(t *testing.T) {
		reloadNginx(t, cli, ngx, with(stack.Traffic{Mode: stack.TrafficStop, Message: "Back at 14:00: migrating"}))
		status, h, body := do(t, c, newRequest(t, "GET", url, nil))
		if status != 503 || body != "Back at 14:00: migrating\n" || h.Get("Retry-After") == "" {
			t.Errorf("stopped: GET = %d %q Retry-After %q, want 503 with the message and a Retry-After", status, body, h.Get("Retry-After"))
		}
		reloadNginx(t, cli, ngx, run)
		if status, _, body := do(t, c, newRequest(t, "GET", url, nil)); status != 200 {
			t.Errorf("resumed: GET = %d %q, want 200", status, body)
		}
	})

	t.Run("pause answers held requests after resume", func(t *testing.T) {
		var h hold.Hold
		if err := h.Open(ngx.confDir); err != nil {
			t.Fatal(err)
		}
		defer h.Release()
		reloadNginx(t, cli, ngx, with(stack.Traffic{Mode: stack.TrafficPause, Max: time.Minute}))
		type result struct {
			status int
			body   string
		}
		done := make(chan result, 2)
		for _, method := range []string{"GET", "POST"} {
			go func() {
				resp, err := c.Do(newRequest(t, method, url, strings.NewReader("order=1")))
				if err != nil {
					done <- result{0, err.Error()}
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				done <- result{resp.StatusCode, string(b)}
			}()
		}
		// Held: nothing comes back while paused (an answer would arrive in
		// milliseconds; a second is generous on a loaded host).
		select {
		case r := <-done:
			t.Fatalf("a request was answered while paused: %d %q", r.status, r.body)
		case <-time.After(time.Second):
		}
		reloadNginx(t, cli, ngx, run)
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			select {
			case r := <-done:
				if r.status != 200 || !strings.HasPrefix(r.body, "stable /orders") {
					t.Errorf("a held request was answered %d %q after resume, want the app's 200", r.status, r.body)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("a held request was never answered after resume")
			}
		}
	})

	t.Run("pause bound", func(t *testing.T) {
		var h hold.Hold
		if err := h.Open(ngx.confDir); err != nil {
			t.Fatal(err)
		}
		defer h.Release()
		reloadNginx(t, cli, ngx, with(stack.Traffic{Mode: stack.TrafficPause, Max: 2 * time.Second}))
		start := time.Now()
		status, header, body := do(t, c, newRequest(t, "GET", url, nil))
		if status != 503 || header.Get("Retry-After") == "" || time.Since(start) < 2*time.Second {
			t.Errorf("held past the bound: %d %q after %s, want 503 with Retry-After after 2s", status, body, time.Since(start))
		}
		reloadNginx(t, cli, ngx, run)
	})
}
