package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
)

// A compose file imported with swiftctl import runs as is: the daemon
// deploys the manifest it wrote (the project's name, nginx on the
// published port, the replicas and the health path from the compose
// file) and the app answers through nginx. What it could not express is
// listed, and the manifest says so at its top.
func TestImportedComposeFileDeploys(t *testing.T) {
	e := newEnv(t)
	compose := fmt.Sprintf(`name: %s
services:
  app:
    image: %s
    ports: ["127.0.0.1:%d:3000"]
    environment:
      GREETING: hello
    healthcheck:
      test: ["CMD", "/app", "-healthcheck", "http://localhost:3000/healthz"]
      interval: 3s
    deploy:
      replicas: 2
    cap_add: [NET_ADMIN]
`, e.project, images.AppImage, e.port)
	src := filepath.Join(e.dir, "docker-compose.yml")
	if err := os.WriteFile(src, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := e.swiftctl("import", src)
	if code != 0 || !contains(out, "services.app.cap_add: [\"NET_ADMIN\"] (no such setting in the manifest)") || !contains(out, "wrote ") {
		t.Fatalf("swiftctl import: exit %d, output:\n%s", code, out)
	}
	path := filepath.Join(e.dir, "manifest.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "#   services.app.cap_add:") {
		t.Errorf("the manifest does not list what it left out:\n%s", b)
	}
	// The busy test host needs the gate's thresholds of every e2e test
	// (they are the manifest's defaults otherwise).
	withPolicy := string(b) + "policy:\n  max_cpu_load: 1000\n  min_disk_gb: 0.1\n"
	e.writeManifest(withPolicy)
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})
	if code, info, err := get(e.url("/")); err != nil || code != 200 || info.Mode != "stable" {
		t.Fatalf("GET / through nginx: %d %+v %v", code, info, err)
	}
	if s := e.status(); s.Project != e.project {
		t.Errorf("project %q, want the compose file's name %q", s.Project, e.project)
	}
}

// A compose file of several services imports into the named form and
// runs: the web service behind nginx, the service it depends on (no
// published port) as an accessory started first; swiftctl logs SERVICE
// reads one service's containers only.
func TestImportedServicesDeployAndLogByService(t *testing.T) {
	e := newEnv(t)
	compose := fmt.Sprintf(`name: %s
services:
  web:
    image: %s
    ports: ["%d:3000"]
    depends_on: [cache]
    deploy: {replicas: 2}
  cache:
    image: %s
    expose: ["3000"]
`, e.project, images.AppImage, e.port, images.AppImage)
	src := filepath.Join(e.dir, "docker-compose.yml")
	if err := os.WriteFile(src, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := e.swiftctl("import", "--strict", src)
	if code != 0 || !contains(out, "(services cache, web)") {
		t.Fatalf("swiftctl import --strict: exit %d, output:\n%s", code, out)
	}
	b, err := os.ReadFile(filepath.Join(e.dir, "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "kind: accessory") || !strings.Contains(string(b), "depends_on: [cache]") {
		t.Fatalf("manifest:\n%s", b)
	}
	e.writeManifest(string(b) + "policy:\n  max_cpu_load: 1000\n  min_disk_gb: 0.1\n")
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 3})
	if code, _, err := get(e.url("/")); err != nil || code != 200 {
		t.Fatalf("GET / through nginx: %d %v", code, err)
	}
	for _, tc := range []struct {
		service string
		want    int
	}{{"web", 2}, {"cache", 1}} {
		out, code := e.swiftctl("logs", tc.service)
		names := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			name, _, ok := strings.Cut(l, " | ")
			if !ok || !strings.Contains(name, "-"+tc.service+"-") {
				t.Errorf("swiftctl logs %s: line %q is not from a %s container", tc.service, l, tc.service)
			}
			names[name] = true
		}
		if code != 0 || len(names) != tc.want {
			t.Errorf("swiftctl logs %s: exit %d, containers %v, want %d; output:\n%s", tc.service, code, names, tc.want, out)
		}
	}
}
