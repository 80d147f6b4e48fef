package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// converged waits until the daemon reports a converged stack with the
// given running app containers per image.
func (e *env) converged(want map[string]int) {
	e.t.Helper()
	e.waitFor(90*time.Second, fmt.Sprintf("converged with %v", want), func() (bool, string) {
		var s api.Status
		if err := e.api.Get(context.Background(), api.PathStatus, &s); err != nil {
			return false, err.Error()
		}
		got := e.running(s)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return false, fmt.Sprintf("running %v, last reconcile %+v", got, s.LastReconcile)
		}
		var d api.Diff
		if err := e.api.Get(context.Background(), api.PathDiff, &d); err != nil {
			return false, err.Error()
		}
		return len(d.Plan) == 0 && d.Blocked == "", fmt.Sprintf("plan %v %s", d.Plan, d.Blocked)
	})
}

func (e *env) serves(version string) {
	e.t.Helper()
	e.waitFor(30*time.Second, "nginx serving version "+version, func() (bool, string) {
		code, info, err := get(e.url("/"))
		if err != nil {
			return false, err.Error()
		}
		return code == 200 && info.Version == version, fmt.Sprintf("status %d version %q", code, info.Version)
	})
}

func TestDeployEditSelfHealAndRollout(t *testing.T) {
	e := newEnv(t)
	e.writeManifest(e.manifest(images.AppImage, 1, ""))
	e.startDaemon()

	// Deploy from nothing, with the article's output.
	out, code := e.swiftctl("deploy")
	for _, want := range []string{"Manifest valid", "Docker image found", "Deployment successful"} {
		if code != 0 || !contains(out, want) {
			t.Errorf("swiftctl deploy: exit %d, lacks %q:\n%s", code, want, out)
		}
	}
	out, code = e.swiftctl("validate")
	for _, want := range []string{"Manifest valid", "Docker image found", "Nginx config valid"} {
		if code != 0 || !contains(out, want) {
			t.Errorf("swiftctl validate: exit %d, lacks %q:\n%s", code, want, out)
		}
	}
	e.converged(map[string]int{images.AppImage: 1})
	e.serves("1.0.0")
	for _, path := range []string{"/chaos", "/chaos/", "/%63haos", "//chaos", "/internal/x", "/debug/pprof/"} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req, _ := http.NewRequest(method, e.url(path), strings.NewReader(`{"mode":"error","rate":1}`))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s through nginx: status %d, want 403", method, path, resp.StatusCode)
			}
		}
	}
	if code, _, err := get(e.url("/metrics")); err != nil || code != 200 {
		t.Errorf("GET /metrics through nginx: %d %v", code, err)
	}
	for _, f := range []string{"docker-compose.yml", "nginx.conf", "history.jsonl"} {
		if _, err := os.Stat(filepath.Join(e.dir, f)); err != nil {
			t.Errorf("generated file: %v", err)
		}
	}
	fi, err := os.Stat(e.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("control socket mode %v is accessible to others", fi.Mode().Perm())
	}

	// Scale 1→3 by editing the manifest, with no command.
	e.writeManifest(e.manifest(images.AppImage, 3, ""))
	e.converged(map[string]int{images.AppImage: 3})
	before := e.status().Containers

	// An invalid edit changes nothing and status says why.
	e.writeManifest(strings.Replace(e.manifest(images.AppImage, 3, ""), "port: 3000", "port: 70000", 1))
	e.waitFor(20*time.Second, "manifest error in status", func() (bool, string) {
		s := e.status()
		return len(s.ManifestErrors) > 0 && strings.Contains(strings.Join(s.ManifestErrors, ";"), "services.port"), fmt.Sprint(s.ManifestErrors)
	})
	time.Sleep(2 * time.Second)
	if after := e.status().Containers; fmt.Sprint(names(after)) != fmt.Sprint(names(before)) {
		t.Errorf("invalid manifest changed containers: before %v after %v", names(before), names(after))
	}
	e.serves("1.0.0")
	e.writeManifest(e.manifest(images.AppImage, 3, ""))
	e.waitFor(20*time.Second, "manifest errors cleared", func() (bool, string) {
		s := e.status()
		return len(s.ManifestErrors) == 0, fmt.Sprint(s.ManifestErrors)
	})

	// Self-heal: a killed container and a removed one come back.
	apps := appNames(e.status())
	ctx := context.Background()
	if _, err := e.cli.ContainerKill(ctx, apps[0], client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.ContainerRemove(ctx, apps[1], client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	e.converged(map[string]int{images.AppImage: 3})
	e.serves("1.0.0")

	// Image change under steady load: zero failed requests.
	l := startLoad(e.url("/"), 20*time.Millisecond)
	start := time.Now()
	e.writeManifest(e.manifest(images.AppImageV2, 3, ""))
	e.serves("2.0.0")
	t.Logf("manifest edit → new version serving: %s", time.Since(start).Round(time.Millisecond))
	e.converged(map[string]int{images.AppImageV2: 3})
	ok, failed, samples := l.finish()
	t.Logf("requests during image change: %d ok, %d failed", ok, failed)
	if failed != 0 {
		t.Errorf("%d requests failed during the image change (e.g. %v)", failed, samples)
	}
	if ok < 50 {
		t.Errorf("only %d requests succeeded: load did not run", ok)
	}

	// nginx port change.
	old := e.port
	e.port = freePort(t)
	e.writeManifest(e.manifest(images.AppImageV2, 3, ""))
	e.serves("2.0.0")
	if _, _, err := get(fmt.Sprintf("http://127.0.0.1:%d/", old)); err == nil {
		t.Errorf("old port %d still answers after the port change", old)
	}

	// down removes everything the project owns, each container once, and
	// the daemon does not bring it back until the next deploy, not even
	// after a restart.
	out, code = e.swiftctl("down")
	if code != 0 {
		t.Fatalf("swiftctl down: exit %d\n%s", code, out)
	}
	// Ask Docker, not the daemon: what runs is the truth.
	for _, c := range e.dockerContainers() {
		t.Errorf("after down: %s still exists", c)
	}
	if s := e.status(); !s.Down || s.Mode != "" || len(s.Containers) != 0 {
		t.Errorf("status after down: down=%v mode=%q containers=%v", s.Down, s.Mode, names(s.Containers))
	}
	// promote and rollback do not undo down.
	for _, cmd := range []string{"promote", "rollback"} {
		if out, code := e.swiftctl(cmd); code == 0 {
			t.Errorf("swiftctl %s after down: exit 0\n%s", cmd, out)
		}
	}
	if n := strings.Count(out, "Removed "+e.project+"-nginx\n"); n != 1 {
		t.Errorf("down reported removing nginx %d times:\n%s", n, out)
	}
	e.stopDaemon(syscall.SIGTERM)
	e.startDaemon()
	time.Sleep(3 * time.Second)
	if got := e.dockerContainers(); len(got) != 0 {
		t.Errorf("stack came back after down, promote/rollback and a daemon restart: %v", got)
	}
	if out, code := e.swiftctl("deploy"); code != 0 || !contains(out, "Deployment successful") {
		t.Fatalf("deploy after down: exit %d\n%s", code, out)
	}
	e.converged(map[string]int{images.AppImageV2: 3})
	e.serves("2.0.0")
}

// The daemon is killed with SIGKILL while the engine is creating the
// first new container of an image change (not after the rollout): the old
// version keeps serving, and the restarted daemon finishes the rollout
// with exactly the wanted containers: no duplicate, orphan or half-made
// one.
func TestDaemonKilledMidRollout(t *testing.T) {
	e := newEnv(t)
	e.writeManifest(e.manifest(images.AppImage, 2, ""))
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})

	l := startLoad(e.url("/"), 20*time.Millisecond)
	killed := make(chan time.Time, 1)
	stop := e.onCreate(images.AppImageV2, func() {
		_ = e.daemon.Process.Signal(syscall.SIGKILL)
		killed <- time.Now()
	})
	e.writeManifest(e.manifest(images.AppImageV2, 2, ""))
	select {
	case <-killed:
	case <-time.After(30 * time.Second):
		t.Fatal("no v2 container was created within 30s")
	}
	stop()
	<-e.exited
	e.daemon = nil
	// Mid-rollout, nginx still serves v1.
	e.serves("1.0.0")

	e.startDaemon()
	e.converged(map[string]int{images.AppImageV2: 2})
	e.serves("2.0.0")
	ok, failed, samples := l.finish()
	t.Logf("requests across the kill and the resumed rollout: %d ok, %d failed", ok, failed)
	if failed != 0 {
		t.Errorf("%d requests failed (e.g. %v)", failed, samples)
	}
	all := e.dockerContainers()
	nginx, apps := 0, 0
	for _, c := range all {
		switch {
		case strings.HasPrefix(c, e.project+"-nginx/"):
			nginx++
		case strings.Contains(c, "-stable-"):
			apps++
		}
	}
	if nginx != 1 || apps != 2 || len(all) != 3 {
		t.Errorf("after restart: %v, want 2 apps + 1 nginx, all running", all)
	}
	for _, c := range all {
		if !strings.HasSuffix(c, "/running") {
			t.Errorf("container %s is not running", c)
		}
	}
	// SIGTERM stops the daemon and leaves the workload running.
	e.stopDaemon(syscall.SIGTERM)
	e.serves("2.0.0")
}

func names(cs []api.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name+"/"+c.State)
	}
	return out
}

func appNames(s api.Status) []string {
	var out []string
	for _, c := range s.Containers {
		if c.Role == "app" {
			out = append(out, c.Name)
		}
	}
	return out
}
