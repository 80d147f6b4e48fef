package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// threeServiceManifest is a small real app: web (the demo app, two
// replicas, reading and writing keys in db through /kv), a worker (the
// same image with -worker, counting in db, no port) and db, the Redis
// accessory with its data on the named volume data. webExtra is added
// under web (indented four spaces), e.g. a canary; worker is its image.
func (e *env) threeServiceManifest(web, webExtra, worker string) string {
	return fmt.Sprintf(`project: %s
services:
  web:
    image: %s
    port: 3000
    replicas: 2
    env: {REDIS_ADDR: "db:6379"}
    depends_on: [db]
%s  worker:
    image: %s
    command: ["-worker"]
    env: {REDIS_ADDR: "db:6379"}
    depends_on: [db]
  db:
    kind: accessory
    image: %s
    port: 6379
    volumes:
      - data:/data
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
  min_requests: 10
  max_p99_ms: 3000
`, e.project, web, webExtra, worker, images.RedisImage, images.NginxImage, e.port, e.network)
}

// kvAppImages builds the demo app of this worktree as two images of the
// test's own (versions 1.0.0 and 2.0.0), removed when the test ends: the
// shared AppImage tags are rebuilt by whichever checkout's tests ran last,
// and the /kv endpoint and -worker must be this one's.
func kvAppImages(t *testing.T) (v1, v2 string) {
	t.Helper()
	cli := testenv.Docker(t)
	tag := "swiftdeploy-e2e-kvapp:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	v1, v2 = tag+"-1", tag+"-2"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, ref := range []string{v1, v2} {
			if _, err := cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !strings.Contains(err.Error(), "No such image") {
				t.Errorf("remove image %s: %v", ref, err)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for ref, version := range map[string]string{v1: images.AppVersion, v2: images.AppV2Version} {
		var log strings.Builder
		if err := images.EnsureApp(ctx, cli, ref, version, &log); err != nil {
			t.Fatalf("build %s: %v\n%s", ref, err, log.String())
		}
	}
	return v1, v2
}

// kv is GET /kv/key through nginx: the status (200, or 404 when the app
// says the key is unset) and the value. Any other answer is an error.
func (e *env) kv(key string) (int, string, error) {
	var v struct{ Value string }
	err := e.getJSON("/kv/"+key, &v)
	if err != nil {
		if strings.Contains(err.Error(), ": 404 ") && strings.Contains(err.Error(), "no key "+key) {
			return 404, "", nil
		}
		return 0, "", err
	}
	return 200, v.Value, nil
}

// putKV is PUT /kv/key through nginx.
func (e *env) putKV(key, value string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPut, e.url("/kv/"+key), strings.NewReader(value))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		e.t.Fatalf("PUT /kv/%s: %v", key, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("PUT /kv/%s: %d %s", key, resp.StatusCode, b)
	}
}

// keeps waits until GET /kv/key through nginx answers value (Redis may be
// coming back), then checks it once more.
func (e *env) keeps(what, key, value string) {
	e.t.Helper()
	e.waitFor(60*time.Second, fmt.Sprintf("%s: /kv/%s answering", what, key), func() (bool, string) {
		code, _, err := e.kv(key)
		if err != nil {
			return false, err.Error()
		}
		// A 404 is an answer: the value is gone, which is the failure.
		return code == 200 || code == 404, fmt.Sprint(code)
	})
	if code, got, err := e.kv(key); err != nil || code != 200 || got != value {
		e.t.Errorf("%s: /kv/%s = %d %q (%v), want %q", what, key, code, got, err, value)
	}
}

// workerCounts waits until the worker has counted past its count now.
func (e *env) workerCounts(what string) {
	e.t.Helper()
	_, before, _ := e.kv("worker:ticks")
	n0, _ := strconv.Atoi(before)
	e.waitFor(60*time.Second, what+": the worker counting", func() (bool, string) {
		_, got, err := e.kv("worker:ticks")
		n, _ := strconv.Atoi(got)
		return err == nil && n > n0, fmt.Sprintf("ticks %q (was %d) %v", got, n0, err)
	})
}

// TestThreeServiceAppKeepsItsData runs web, a worker and a Redis accessory
// with a named volume from one manifest on the real engine. A value
// written through nginx survives an image change of web (0 failed
// requests under load), a canary of web walked to its second step and
// aborted (0 failed), a kill -9 of the daemon, a kill of the accessory
// (brought back by the daemon, from its events alone: the resync is an
// hour), a docker restart of it, and down + deploy; it is gone after down
// --volumes. No change of web restarts db (container IDs compared).
func TestThreeServiceAppKeepsItsData(t *testing.T) {
	// Before newEnv: the images go after the project's containers.
	v1, v2 := kvAppImages(t)
	e := newEnv(t)
	testenv.Redis(t, e.cli)
	redis := images.RedisImage
	const key, value = "greeting", "hello, state"
	volume := e.project + "_data"
	deploy := func(what string) {
		t.Helper()
		if out, code := e.swiftctl("deploy"); code != 0 {
			t.Fatalf("%s: deploy: exit %d\n%s", what, code, out)
		}
	}
	sameDB := func(what string, before map[string][]string) {
		t.Helper()
		if after := e.serviceIDs(); !slices.Equal(before["db"], after["db"]) || len(after["db"]) != 1 {
			t.Errorf("%s restarted db: containers %v -> %v", what, before["db"], after["db"])
		}
	}

	e.writeManifest(e.threeServiceManifest(v1, "", v1))
	// No safety-net resync within the test: what heals the killed db
	// is the engine's events.
	e.daemonArgs = []string{"--resync", "1h"}
	e.startDaemon()
	start := time.Now()
	deploy("first deploy")
	e.converged(map[string]int{v1: 3, redis: 1})
	t.Logf("first deploy of the three services: %s", time.Since(start).Round(100*time.Millisecond))
	if code, _, err := e.kv(key); err != nil || code != 404 {
		t.Fatalf("/kv/%s before any write: %d (%v), want 404", key, code, err)
	}
	e.putKV(key, value)
	e.keeps("written", key, value)
	e.workerCounts("first deploy")
	if !e.volumeExists(volume) {
		t.Fatalf("volume %s does not exist", volume)
	}
	ids := e.serviceIDs()
	if len(ids["web"]) != 2 || len(ids["worker"]) != 1 || len(ids["db"]) != 1 {
		t.Fatalf("containers by service %v: want web 2, worker 1, db 1", ids)
	}

	// An image change of web under load on the key: every read answers
	// the value; db and the worker keep their containers.
	l := startLoad(e.url("/kv/"+key), 20*time.Millisecond)
	start = time.Now()
	e.writeManifest(e.threeServiceManifest(v2, "", v1))
	e.converged(map[string]int{v2: 2, v1: 1, redis: 1})
	took := time.Since(start)
	ok, failed, samples := l.finish()
	t.Logf("web image change under load on /kv: %d ok, %d failed, converged in %s", ok, failed, took.Round(100*time.Millisecond))
	if failed > 0 || ok == 0 {
		t.Errorf("web image change: %d ok, %d failed requests: %v", ok, failed, samples)
	}
	sameDB("web's image change", ids)
	if after := e.serviceIDs(); !slices.Equal(ids["worker"], after["worker"]) || slices.Equal(ids["web"], after["web"]) {
		t.Errorf("web's image change: worker %v -> %v (want unchanged), web %v -> %v (want new)", ids["worker"], after["worker"], ids["web"], after["web"])
	}
	e.keeps("after web's image change", key, value)

	// A canary of web walked 10 -> 50 and aborted by a person at 50, under
	// load: both tracks read the same db; the abort is journaled once.
	ids = e.serviceIDs()
	canary := fmt.Sprintf("    canary:\n      image: %s\n      steps:\n        - {weight: 10, pause: 2s}\n        - {weight: 50, pause: 2s}\n      analysis: {interval: 1s, failure_limit: 100, auto_promote: false}\n", v1)
	l = startLoad(e.url("/kv/"+key), 10*time.Millisecond)
	e.writeManifest(e.threeServiceManifest(v2, canary, v1))
	var walked []int
	e.waitFor(120*time.Second, "web's canary at its second step (50%)", func() (bool, string) {
		s := e.status()
		if s.Rollout == nil {
			return false, "no rollout"
		}
		if len(walked) == 0 || walked[len(walked)-1] != s.Rollout.Weight {
			walked = append(walked, s.Rollout.Weight)
		}
		return s.Rollout.Step == 2 && s.Rollout.Weight == 50, fmt.Sprintf("%s %+v", s.Mode, s.Rollout)
	})
	shares := l.modeShares()
	if out, code := e.swiftctl("rollback"); code != 0 {
		t.Fatalf("swiftctl rollback of web's canary: exit %d\n%s", code, out)
	}
	e.waitFor(60*time.Second, "web's canary aborted", func() (bool, string) {
		s := e.status()
		return s.Mode == "stable" && s.Rollout != nil && s.Rollout.Phase == "aborted", fmt.Sprintf("%s %+v", s.Mode, s.Rollout)
	})
	e.converged(map[string]int{v2: 2, v1: 1, redis: 1})
	ok, failed, samples = l.finish()
	t.Logf("web canary walk %v and abort under load on /kv: %d ok, %d failed; by track %v", walked, ok, failed, shares)
	if failed > 0 || ok == 0 {
		t.Errorf("web canary walk and abort: %d ok, %d failed requests: %v", ok, failed, samples)
	}
	if shares["canary"] == 0 || shares["stable"] == 0 {
		t.Errorf("reads by track during the canary %v: want both tracks reading db", shares)
	}
	for _, ev := range []string{journal.EventRollbackRequested, journal.EventRolledBack} {
		if n := len(e.events(ev)); n != 1 {
			t.Errorf("the canary's abort: %s journaled %d times, want once", ev, n)
		}
	}
	sameDB("web's canary walk and abort", ids)
	e.keeps("after web's canary was aborted", key, value)
	e.writeManifest(e.threeServiceManifest(v2, "", v1))
	e.converged(map[string]int{v2: 2, v1: 1, redis: 1})

	// kill -9 of the daemon: the restarted one changes no container.
	ids = e.serviceIDs()
	e.stopDaemon(syscall.SIGKILL)
	e.startDaemon()
	e.converged(map[string]int{v2: 2, v1: 1, redis: 1})
	if after := e.serviceIDs(); fmt.Sprint(after) != fmt.Sprint(ids) {
		t.Errorf("a daemon restart changed containers: %v -> %v", ids, after)
	}
	e.keeps("after a kill -9 of the daemon", key, value)

	// The accessory killed: the daemon brings it back, its data with it,
	// and the worker counts on.
	killedAt := time.Now()
	if _, err := e.cli.ContainerKill(context.Background(), ids["db"][0], client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		t.Fatalf("kill db: %v", err)
	}
	e.waitFor(60*time.Second, "db killed", func() (bool, string) {
		ins, err := e.cli.ContainerInspect(context.Background(), ids["db"][0], client.ContainerInspectOptions{})
		return err != nil || !ins.Container.State.Running, "running"
	})
	e.converged(map[string]int{v2: 2, v1: 1, redis: 1})
	backIn := time.Since(killedAt)
	e.keeps("after db was killed", key, value)
	e.workerCounts("after db was killed")
	t.Logf("db killed: running again (converged) %s later, container %.12s replaced by %.12s", backIn.Round(100*time.Millisecond), ids["db"][0], e.serviceIDs()["db"][0])

	// docker restart of db (SIGTERM, then the same container again): the
	// data stays, whether the daemon saw it down for a moment or not.
	restarted := e.serviceIDs()["db"][0]
	if _, err := e.cli.ContainerRestart(context.Background(), restarted, client.ContainerRestartOptions{}); err != nil {
		t.Fatalf("docker restart db: %v", err)
	}
	e.converged(map[string]int{v2: 2, v1: 1, redis: 1})
	e.keeps("after docker restart of db", key, value)
	e.workerCounts("after docker restart of db")
	t.Logf("db after docker restart: container %.12s, was %.12s", e.serviceIDs()["db"][0], restarted)

	// down keeps the volume; deploy mounts it again.
	if out, code := e.swiftctl("down"); code != 0 {
		t.Fatalf("down: exit %d\n%s", code, out)
	}
	if got := e.dockerContainers(); len(got) != 0 {
		t.Errorf("after down: %v still exist", got)
	}
	if !e.volumeExists(volume) {
		t.Fatal("down removed the volume")
	}
	deploy("deploy after down")
	e.converged(map[string]int{v2: 2, v1: 1, redis: 1})
	e.keeps("after down and deploy", key, value)

	// down --volumes: the data is gone.
	if out, code := e.swiftctl("down", "--volumes"); code != 0 {
		t.Fatalf("down --volumes: exit %d\n%s", code, out)
	}
	if e.volumeExists(volume) {
		t.Error("down --volumes left the volume")
	}
	deploy("deploy after down --volumes")
	e.converged(map[string]int{v2: 2, v1: 1, redis: 1})
	e.waitFor(60*time.Second, "/kv answering after down --volumes", func() (bool, string) {
		code, _, err := e.kv(key)
		return err == nil && (code == 200 || code == 404), fmt.Sprint(code, err)
	})
	if code, got, _ := e.kv(key); code != 404 {
		t.Errorf("after down --volumes /kv/%s = %d %q, want 404 (the data gone)", key, code, got)
	}
	if out, code := e.swiftctl("down", "--volumes"); code != 0 {
		t.Errorf("final down --volumes: exit %d\n%s", code, out)
	}
}
