package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
)

// namedManifest is a named-form manifest for this test's project: web
// routed by host, api by path prefix (stripped), a worker, and an
// accessory db both web and the worker depend on.
func (e *env) namedManifest(web, api, worker, db string) string {
	return fmt.Sprintf(`project: %s
services:
  web:
    image: %s
    port: 3000
    route: {host: web.test}
    depends_on: [db]
  api:
    image: %s
    port: 3000
    replicas: 2
    route: {path_prefix: /v2, strip_prefix: true}
  worker:
    image: %s
    depends_on: [db]
  db:
    kind: accessory
    image: %s
    port: 3000
    volumes: ["dbdata:/data"]
nginx:
  image: %s
  port: %d
network:
  name: %s
metrics:
  scrape_interval: 1s
  window: 10s
policy:
  max_cpu_load: 1000
  min_disk_gb: 0.1
`, e.project, web, api, worker, db, images.NginxImage, e.port, e.network)
}

// serviceIDs maps each service to the IDs of its running containers, as
// Docker sees them.
func (e *env) serviceIDs() map[string][]string {
	e.t.Helper()
	res, err := e.cli.ContainerList(context.Background(), client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", "io.swiftdeploy.project="+e.project).Add("label", "io.swiftdeploy.role=app"),
	})
	if err != nil {
		e.t.Fatalf("list containers: %v", err)
	}
	out := map[string][]string{}
	for _, c := range res.Items {
		svc := c.Labels["io.swiftdeploy.service"]
		out[svc] = append(out[svc], c.ID)
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

// getHost is GET path through nginx with the Host header host ("" for
// 127.0.0.1).
func (e *env) getHost(host, path string) (int, appInfo, error) {
	req, err := http.NewRequest(http.MethodGet, e.url(path), nil)
	if err != nil {
		return 0, appInfo{}, err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, appInfo{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var info appInfo
	_ = json.Unmarshal(b, &info)
	return resp.StatusCode, info, nil
}

// routes checks what nginx answers for each host and path: the version
// of the service routed there, or the status when none is.
func (e *env) routes(want []routeWant) {
	e.t.Helper()
	e.waitFor(30*time.Second, fmt.Sprintf("routes %v", want), func() (bool, string) {
		for _, w := range want {
			code, info, err := e.getHost(w.host, w.path)
			if err != nil {
				return false, err.Error()
			}
			if code != w.code || w.version != "" && info.Version != w.version {
				return false, fmt.Sprintf("%s%s: status %d version %q, want %d %q", w.host, w.path, code, info.Version, w.code, w.version)
			}
		}
		return true, ""
	})
}

type routeWant struct {
	host, path string
	code       int
	version    string
}

// TestSeveralServices runs a web service, a second web service, a worker
// and an accessory from one manifest on the real engine and nginx: each
// web service routed by host or by path prefix, a change of one service
// never restarting another (container IDs compared), the accessory
// replaced stop-first and reachable by its service name.
func TestSeveralServices(t *testing.T) {
	e := newEnv(t)
	v1, v2 := images.AppImage, images.AppImageV2
	// db's env holds a secret: every service's env values are kept out of
	// the journal, the log and the answers, as the single service's are.
	secret := canary("DBPW")
	manifest := func(web, api, worker, db string) string {
		return strings.Replace(e.namedManifest(web, api, worker, db), "    kind: accessory\n",
			fmt.Sprintf("    kind: accessory\n    env: {DB_PASSWORD: %q}\n", secret), 1)
	}
	e.writeManifest(manifest(v1, v2, v1, v1))
	e.startDaemon()
	if out, code := e.swiftctl("deploy"); code != 0 || !contains(out, "Deployment successful") {
		t.Fatalf("swiftctl deploy: exit %d:\n%s", code, out)
	}
	e.converged(map[string]int{v1: 3, v2: 2})
	if out, code := e.swiftctl("validate"); code != 0 || !contains(out, "Nginx config valid") {
		t.Errorf("swiftctl validate of the named form: exit %d:\n%s", code, out)
	}
	routed := []routeWant{
		{"web.test", "/", 200, "1.0.0"},    // web, by host
		{"", "/v2/", 200, "2.0.0"},         // api, by prefix, stripped to /
		{"", "/v2", 200, "2.0.0"},          // the prefix itself
		{"web.test", "/v2/", 200, "2.0.0"}, // a host-less route serves every host
		{"", "/", 404, ""},                 // nothing routes / without the host
		{"", "/v2x", 404, ""},              // a prefix is a path segment
		{"web.test", "/debug/x", 403, ""},  // the front door's refusals hold on every server
	}
	e.routes(routed)
	before := e.serviceIDs()
	for svc, n := range map[string]int{"web": 1, "api": 2, "worker": 1, "db": 1} {
		if len(before[svc]) != n {
			t.Fatalf("service %s runs %d containers, want %d: %v", svc, len(before[svc]), n, before)
		}
	}

	// The accessory is reachable by its service name: a network alias.
	ctx := context.Background()
	ins, err := e.cli.ContainerInspect(ctx, before["db"][0], client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ep := ins.Container.NetworkSettings.Networks[e.network]; ep == nil || !slices.Contains(ep.Aliases, "db") {
		t.Errorf("db container is not reachable as db on %s: %+v", e.network, ep)
	}

	// A change of api under load: zero failed requests, and web, the
	// worker and db keep their containers.
	l := startLoad(e.url("/v2/"), 20*time.Millisecond)
	e.writeManifest(manifest(v1, v1, v1, v1))
	e.routes([]routeWant{{"", "/v2/", 200, "1.0.0"}})
	e.converged(map[string]int{v1: 5})
	ok, failed, samples := l.finish()
	t.Logf("api image change under load: %d ok, %d failed", ok, failed)
	if failed > 0 || ok == 0 {
		t.Errorf("api image change: %d ok, %d failed requests: %v", ok, failed, samples)
	}
	after := e.serviceIDs()
	for _, svc := range []string{"web", "worker", "db"} {
		if !slices.Equal(before[svc], after[svc]) {
			t.Errorf("a change of api restarted %s: containers %v -> %v", svc, before[svc], after[svc])
		}
	}
	if slices.Equal(before["api"], after["api"]) {
		t.Errorf("api's containers did not change with its image")
	}
	e.routes([]routeWant{{"web.test", "/", 200, "1.0.0"}})

	// A change of the accessory replaces it (stop-first) and nothing else.
	before = after
	e.writeManifest(manifest(v1, v1, v1, v2))
	e.converged(map[string]int{v1: 4, v2: 1})
	after = e.serviceIDs()
	for _, svc := range []string{"web", "api", "worker"} {
		if !slices.Equal(before[svc], after[svc]) {
			t.Errorf("a change of db restarted %s: containers %v -> %v", svc, before[svc], after[svc])
		}
	}
	if slices.Equal(before["db"], after["db"]) || len(after["db"]) != 1 {
		t.Errorf("db's containers %v -> %v: want one new container", before["db"], after["db"])
	}
	// The new db mounts the named volume the old one had: data stays.
	if len(after["db"]) == 1 {
		ins, err := e.cli.ContainerInspect(ctx, after["db"][0], client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		mounted := false
		for _, mp := range ins.Container.Mounts {
			mounted = mounted || mp.Name == e.project+"_dbdata" && mp.Destination == "/data"
		}
		if !mounted {
			t.Errorf("the new db container does not mount %s_dbdata at /data: %+v", e.project, ins.Container.Mounts)
		}
	}
	// The journal names the stop-first replacement.
	hist, code := e.swiftctl("history", "--limit", "500")
	if code != 0 || !strings.Contains(hist, "accessory db replaced stop-first") {
		t.Errorf("swiftctl history (exit %d) lacks the db's stop-first replacement:\n%s", code, hist)
	}

	// A worker change: the web services keep serving from their containers.
	before = after
	e.writeManifest(manifest(v1, v1, v2, v2))
	e.converged(map[string]int{v1: 3, v2: 2})
	after = e.serviceIDs()
	for _, svc := range []string{"web", "api", "db"} {
		if !slices.Equal(before[svc], after[svc]) {
			t.Errorf("a change of worker restarted %s: containers %v -> %v", svc, before[svc], after[svc])
		}
	}
	e.routes([]routeWant{{"web.test", "/", 200, "1.0.0"}, {"", "/v2/", 200, "1.0.0"}})

	// kill -9 of the daemon: the one restarted finds every service as it
	// left it and restarts none.
	before = after
	e.stopDaemon(syscall.SIGKILL)
	e.startDaemon()
	e.converged(map[string]int{v1: 3, v2: 2})
	if after = e.serviceIDs(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a daemon restart changed containers: %v -> %v", before, after)
	}

	// An invalid edit naming db's env is refused without quoting it, and
	// nothing the daemon wrote or answered holds the secret.
	e.writeManifest(strings.Replace(manifest(v1, v1, v2, v2), "DB_PASSWORD", "DB PASSWORD", 1))
	e.waitFor(20*time.Second, "manifest error in status", func() (bool, string) {
		s := e.status()
		return strings.Contains(strings.Join(s.ManifestErrors, ";"), "services.db.env"), fmt.Sprint(s.ManifestErrors)
	})
	var outputs []string
	for _, args := range [][]string{{"status", "-o", "json"}, {"history", "--limit", "1000"}, {"diff"}, {"validate"}} {
		out, _ := e.swiftctl(args...)
		outputs = append(outputs, strings.Join(args, " ")+": "+out)
	}
	for _, f := range []string{"history.jsonl", "daemon.log"} {
		b, err := os.ReadFile(filepath.Join(e.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, f+": "+string(b))
	}
	for _, out := range outputs {
		if strings.Contains(out, secret) {
			name, _, _ := strings.Cut(out, ":")
			t.Errorf("db's env secret leaked into %s", name)
		}
	}
}

// TestServiceCanary runs a canary of one named web service (api, routed
// by path prefix) beside the other services: nginx splits api's requests
// only, its canary is judged on its own figures and promoted, and web,
// the worker and db keep their containers throughout.
func TestServiceCanary(t *testing.T) {
	e := newEnv(t)
	v1, v2 := images.AppImage, images.AppImageV2
	base := e.namedManifest(v1, v1, v1, v1)
	withAPICanary := strings.Replace(base, "    route: {path_prefix: /v2, strip_prefix: true}\n",
		fmt.Sprintf("    route: {path_prefix: /v2, strip_prefix: true}\n    canary: {image: %s, weight: 50}\n", v2), 1)
	if withAPICanary == base {
		t.Fatal("the api canary was not written into the manifest")
	}
	e.writeManifest(base)
	e.startDaemon()
	if out, code := e.swiftctl("deploy"); code != 0 {
		t.Fatalf("swiftctl deploy: exit %d:\n%s", code, out)
	}
	e.converged(map[string]int{v1: 5})
	before := e.serviceIDs()

	e.writeManifest(withAPICanary)
	e.converged(map[string]int{v1: 5, v2: 1})
	if s := e.status(); s.Mode != "canary" || s.CanaryWeight != 50 || s.StableImage != v1 || s.CanaryImage != v2 {
		t.Errorf("status mode %q weight %d stable %q canary %q, want canary 50 of api", s.Mode, s.CanaryWeight, s.StableImage, s.CanaryImage)
	}

	// api's requests are split; web's are not.
	api := startLoad(e.url("/v2/"), 10*time.Millisecond)
	var webCanary, webOK int
	webGet := func() {
		req, _ := http.NewRequest(http.MethodGet, e.url("/"), nil)
		req.Host = "web.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			webOK++
		}
		if resp.Header.Get("X-App-Mode") == "canary" {
			webCanary++
		}
	}
	for range 100 {
		webGet()
	}
	if webOK != 100 || webCanary != 0 {
		t.Errorf("web (not canaried): %d/100 ok, %d answered by a canary", webOK, webCanary)
	}
	e.waitFor(90*time.Second, "api's canary judged safe on its own figures", func() (bool, string) {
		allowed, reasons, _ := canaryVerdict(e.status())
		return allowed, fmt.Sprint(reasons)
	})
	shares := api.modeShares()
	t.Logf("api requests by track at weight 50: %v", shares)
	if shares["canary"] == 0 || shares["stable"] == 0 {
		t.Errorf("api's requests by track %v: want both tracks served", shares)
	}
	if s := e.status(); len(s.Tracks) == 0 {
		t.Errorf("status has no per-track figures for api")
	} else {
		for _, tr := range s.Tracks {
			if tr.Track == "canary" && (tr.Proxy == nil || tr.Proxy.Requests == 0) {
				t.Errorf("api's canary has no figures of nginx's: %+v", tr)
			}
		}
	}

	// nginx's view per service and revision: api's two tracks and web's
	// stable each have their own requests.
	e.waitFor(30*time.Second, "per-service figures in status", func() (bool, string) {
		// nginx's figures are windowed: web's requests above can age out
		// while api's canary is judged (seen on a loaded host: web/stable 0).
		webGet()
		got := map[string]float64{}
		for _, svc := range e.status().Services {
			for _, r := range svc.Revisions {
				if r.Proxy != nil {
					got[svc.Name+"/"+r.Track] = r.Proxy.Requests
				}
			}
		}
		return got["api/stable"] > 0 && got["api/canary"] > 0 && got["web/stable"] > 0, fmt.Sprint(got)
	})
	if out, _ := e.swiftctl("status"); !strings.Contains(out, "Services:") {
		t.Errorf("swiftctl status lacks the services:\n%s", out)
	}

	p := e.promote()
	if p.Error != "" || len(p.Denied) > 0 {
		t.Fatalf("promote of api's healthy canary: %+v", p)
	}
	e.converged(map[string]int{v1: 3, v2: 2})
	ok, failed, samples := api.finish()
	t.Logf("api requests across the canary and its promotion: %d ok, %d failed", ok, failed)
	if failed != 0 {
		t.Errorf("%d of api's requests failed (e.g. %v)", failed, samples)
	}
	if s := e.status(); s.Mode != "stable" || s.StableImage != v2 {
		t.Errorf("after promote: mode %q stable %q, want stable %s", s.Mode, s.StableImage, v2)
	}
	e.routes([]routeWant{{"", "/v2/", 200, "2.0.0"}, {"web.test", "/", 200, "1.0.0"}})
	after := e.serviceIDs()
	for _, svc := range []string{"web", "worker", "db"} {
		if !slices.Equal(before[svc], after[svc]) {
			t.Errorf("api's canary and promotion restarted %s: containers %v -> %v", svc, before[svc], after[svc])
		}
	}
}

// TestSeedToServices moves a running single-service project to the named
// form under load: the seed's containers are replaced by web's, start-
// first, with no failed request, and the project then runs a worker too.
func TestSeedToServices(t *testing.T) {
	e := newEnv(t)
	v1 := images.AppImage
	e.writeManifest(e.manifest(v1, 2, ""))
	e.startDaemon()
	if out, code := e.swiftctl("deploy"); code != 0 {
		t.Fatalf("swiftctl deploy: exit %d:\n%s", code, out)
	}
	e.converged(map[string]int{v1: 2})
	l := startLoad(e.url("/"), 20*time.Millisecond)
	named := strings.Replace(e.manifest(v1, 2, ""), "services:\n  image: "+v1+"\n  port: 3000\n  replicas: 2\n",
		"services:\n  web:\n    image: "+v1+"\n    port: 3000\n    replicas: 2\n  worker:\n    image: "+v1+"\n", 1)
	if !strings.Contains(named, "  web:\n") {
		t.Fatal("the named form was not written")
	}
	e.writeManifest(named)
	e.converged(map[string]int{v1: 3})
	time.Sleep(time.Second)
	ok, failed, samples := l.finish()
	t.Logf("requests across the move to the named form: %d ok, %d failed", ok, failed)
	if failed != 0 || ok == 0 {
		t.Errorf("move to the named form: %d ok, %d failed (e.g. %v)", ok, failed, samples)
	}
	ids := e.serviceIDs()
	if len(ids[""]) != 0 || len(ids["web"]) != 2 || len(ids["worker"]) != 1 {
		t.Errorf("containers by service after the move: %v, want web 2, worker 1 and no seed container", ids)
	}
	e.serves("1.0.0")
}

// TestServicesTraffic holds and stops the traffic of every route of the
// named form: a held request to api's stripped prefix and one to web's
// host are answered by their own service after resume; a stop answers 503
// on both.
func TestServicesTraffic(t *testing.T) {
	e := newEnv(t)
	v1, v2 := images.AppImage, images.AppImageV2
	e.writeManifest(e.namedManifest(v1, v2, v1, v1))
	e.startDaemon()
	if out, code := e.swiftctl("deploy"); code != 0 {
		t.Fatalf("swiftctl deploy: exit %d:\n%s", code, out)
	}
	e.converged(map[string]int{v1: 3, v2: 2})
	if out, code := e.swiftctl("traffic", "pause", "--max", "60s"); code != 0 {
		t.Fatalf("swiftctl traffic pause: exit %d\n%s", code, out)
	}
	// nginx's old workers may take one more connection in the moment
	// after the reload (seen once: a request answered right after pause
	// returned); wait until a probe is held on each route.
	for _, r := range []struct{ host, path string }{{"web.test", "/"}, {"", "/v2/"}} {
		e.waitFor(30*time.Second, "the pause holding "+r.host+r.path, func() (bool, string) {
			req, _ := http.NewRequest(http.MethodGet, e.url(r.path), nil)
			if r.host != "" {
				req.Host = r.host
			}
			resp, err := (&http.Client{Timeout: time.Second}).Do(req)
			if err != nil {
				return true, "" // held until the client gave up
			}
			resp.Body.Close()
			return false, fmt.Sprintf("answered %d", resp.StatusCode)
		})
	}
	type result struct {
		route   string
		code    int
		version string
		err     error
	}
	held := make(chan result, 2)
	for _, r := range []struct{ host, path, want string }{{"web.test", "/", "1.0.0"}, {"", "/v2/", "2.0.0"}} {
		go func() {
			code, info, err := e.getHost(r.host, r.path)
			held <- result{r.host + r.path + " wants " + r.want, code, info.Version, err}
		}()
	}
	select {
	case r := <-held:
		t.Fatalf("a request was answered while paused: %+v", r)
	case <-time.After(2 * time.Second):
	}
	if out, code := e.swiftctl("traffic", "resume"); code != 0 {
		t.Fatalf("swiftctl traffic resume: exit %d\n%s", code, out)
	}
	for range 2 {
		select {
		case r := <-held:
			if r.err != nil || r.code != 200 || !strings.HasSuffix(r.route, r.version) {
				t.Errorf("a held request after resume: %+v", r)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a held request was never answered after resume")
		}
	}
	if out, code := e.swiftctl("traffic", "stop"); code != 0 {
		t.Fatalf("swiftctl traffic stop: exit %d\n%s", code, out)
	}
	e.routes([]routeWant{{"web.test", "/", 503, ""}, {"", "/v2/", 503, ""}})
	if out, code := e.swiftctl("traffic", "resume"); code != 0 {
		t.Fatalf("swiftctl traffic resume: exit %d\n%s", code, out)
	}
	e.routes([]routeWant{{"web.test", "/", 200, "1.0.0"}, {"", "/v2/", 200, "2.0.0"}})
}
