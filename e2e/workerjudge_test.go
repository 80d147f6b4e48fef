package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// TestWorkerJudgedOnItsMetrics: a worker exposing metrics (the demo app
// with -worker, counting its jobs) whose new revision fails its jobs is
// rolled back on the real engine: the deploy fails naming the judgement,
// the new container is gone, the old one (same ID) still runs, and the
// failure is journaled once and shown in status.
func TestWorkerJudgedOnItsMetrics(t *testing.T) {
	e := newEnv(t)
	v1, v2 := kvAppImages(t)
	// The worker's store refuses every connection: every job fails (503).
	manifest := func(worker string) string {
		return fmt.Sprintf(`project: %s
services:
  web:
    image: %s
    port: 3000
  jobs:
    image: %s
    command: ["-worker"]
    env: {REDIS_ADDR: "127.0.0.1:1"}
    metrics: {port: 3000}
nginx:
  image: %s
  port: %d
network:
  name: %s
metrics:
  scrape_interval: 1s
  window: 5s
policy:
  max_cpu_load: 1000
  min_disk_gb: 0.1
  min_requests: 3
  max_p99_ms: 3000
`, e.project, v1, worker, images.NginxImage, e.port, e.network)
	}
	e.writeManifest(manifest(v1))
	e.startDaemon()
	// A first start has nothing to go back to: judged by running.
	if out, code := e.swiftctl("deploy"); code != 0 || !contains(out, "Deployment successful") {
		t.Fatalf("first deploy: exit %d:\n%s", code, out)
	}
	before := e.serviceIDs()["jobs"]
	if len(before) != 1 {
		t.Fatalf("jobs runs %v, want one container", before)
	}

	e.writeManifest(manifest(v2))
	began := time.Now()
	out, code := e.swiftctl("deploy")
	took := time.Since(began)
	t.Logf("judged deploy of the failing worker: exit %d after %s:\n%s", code, took.Round(time.Millisecond), out)
	if code == 0 || !contains(out, "judge-worker jobs") || !contains(out, "Error rate exceeds") {
		t.Fatalf("deploy of a failing worker: exit %d, want a failure naming judge-worker jobs and its error rate:\n%s", code, out)
	}
	if after := e.serviceIDs()["jobs"]; !slices.Equal(after, before) {
		t.Errorf("jobs containers %v after the failed roll, want the old one %v still running alone", after, before)
	}
	s := e.status()
	if s.Denial == nil || !strings.Contains(strings.Join(s.Denial.Reasons, "; "), "worker jobs") {
		t.Errorf("status denial %+v, want the worker's judgement", s.Denial)
	}
	failed := 0
	err := journal.Read(filepath.Join(e.dir, "history.jsonl"), journal.Filter{Types: []string{journal.TypeEvent}}, func(r journal.Record) error {
		if r.Event == journal.EventDeployFailed {
			failed++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if failed != 1 {
		t.Errorf("deploy_failed journaled %d times, want once", failed)
	}
}
