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
