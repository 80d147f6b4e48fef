package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// In the named form every service has releases of its own: web, the
// worker and the Redis accessory each get release 1 from the first
// deploy, the worker release 2 from its image change. `swiftctl rollback
// worker --to previous` under load on web brings the worker's v1 back and
// nothing else: web's and db's containers are the same (IDs), no request
// through nginx fails, nothing is pulled, it is journaled once as
// rolled_back of worker from 2 to 1, and the worker counts on in db.
func TestServiceRollbackToPrevious(t *testing.T) {
	v1, v2 := kvAppImages(t) // before newEnv: the images go after the containers
	e := newEnv(t)
	testenv.Redis(t, e.cli)
	redis := images.RedisImage
	deploy := func(what string) {
		t.Helper()
		if out, code := e.swiftctl("deploy"); code != 0 {
			t.Fatalf("%s: deploy: exit %d\n%s", what, code, out)
		}
	}
	e.writeManifest(e.threeServiceManifest(v1, "", v1))
	e.startDaemon()
	deploy("first deploy")
	e.converged(map[string]int{v1: 3, redis: 1})
	e.writeManifest(e.threeServiceManifest(v1, "", v2))
	deploy("worker's v2")
	e.converged(map[string]int{v1: 2, v2: 1, redis: 1})
	e.workerCounts("worker's v2")

	want := "db[1*:" + redis + "] web[1*:" + v1 + "] worker[2*:" + v2 + " 1:" + v1 + "]"
	if got := serviceReleaseLines(e.allReleases()); got != want {
		t.Fatalf("releases %s, want %s", got, want)
	}
	const key, value = "greeting", "hello, worker"
	e.putKV(key, value)
	ids := e.serviceIDs()
	if len(ids["web"]) != 2 || len(ids["worker"]) != 1 || len(ids["db"]) != 1 {
		t.Fatalf("containers by service %v: want web 2, worker 1, db 1", ids)
	}

	l := startLoad(e.url("/kv/"+key), 20*time.Millisecond)
	time.Sleep(time.Second)
	began := time.Now()
	out, code := e.swiftctl("rollback", "worker", "--to", "previous")
	took := time.Since(began)
	if code != 0 {
		l.finish()
		t.Fatalf("rollback worker --to previous: exit %d\n%s", code, out)
	}
	e.converged(map[string]int{v1: 3, redis: 1})
	time.Sleep(time.Second)
	ok, failed, samples := l.finish()
	t.Logf("rollback worker --to previous under load on /kv: %d ok, %d failed, swiftctl call %s", ok, failed, took.Round(time.Millisecond))
	if failed > 0 || ok == 0 {
		t.Errorf("worker's rollback: %d ok, %d failed requests: %v", ok, failed, samples)
	}
	after := e.serviceIDs()
	if !slices.Equal(after["web"], ids["web"]) || !slices.Equal(after["db"], ids["db"]) {
		t.Errorf("worker's rollback changed web's or db's containers: %v -> %v", ids, after)
	}
	if slices.Equal(after["worker"], ids["worker"]) {
		t.Errorf("worker's container is the same: %v", after["worker"])
	}
	if strings.Contains(out, "Pulling") {
		t.Errorf("the rollback pulled an image:\n%s", out)
	}
	rolled := e.events(journal.EventRolledBack)
	if len(rolled) != 1 || rolled[0].Details["service"] != "worker" || rolled[0].Details["from_rev"] != 2.0 || rolled[0].Details["to_rev"] != 1.0 {
		t.Fatalf("rolled_back records %+v, want one of worker from 2 to 1", rolled)
	}
	want = "db[1*:" + redis + "] web[1*:" + v1 + "] worker[2:" + v2 + " 1*:" + v1 + "]"
	if got := serviceReleaseLines(e.allReleases()); got != want {
		t.Errorf("releases after the rollback %s, want %s", got, want)
	}
	e.workerCounts("after worker's rollback")
	e.keeps("after worker's rollback", key, value)
	text, code := e.swiftctl("releases")
	t.Logf("swiftctl releases:\n%s", text)
	if code != 0 || !strings.Contains(text, "worker:") || !strings.Contains(text, "db:") {
		t.Errorf("swiftctl releases: exit %d, not every service listed", code)
	}
}

// allReleases is `swiftctl releases -o json` of a named-form manifest:
// every service's.
func (e *env) allReleases() api.Releases {
	e.t.Helper()
	out, code := e.swiftctl("releases", "-o", "json")
	if code != 0 {
		e.t.Fatalf("swiftctl releases -o json: exit %d\n%s", code, out)
	}
	var rs api.Releases
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		e.t.Fatalf("swiftctl releases -o json: %v\n%s", err, out)
	}
	return rs
}

// serviceReleaseLines is "db[1*:img] web[...] ..." (releaseLine of each).
func serviceReleaseLines(all api.Releases) string {
	var parts []string
	for _, rs := range all.Services {
		parts = append(parts, rs.Service+"["+releaseLine(rs)+"]")
	}
	return strings.Join(parts, " ")
}
