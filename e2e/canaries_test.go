package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// TestSeveralCanaries runs two web services on one nginx, web routed by
// host name and api by path prefix, each with its own canary at a
// different weight (web 10%, api 30%): nginx splits each service's
// requests at its own weight, and web's canary, judged on its own
// figures, is promoted on its own while api's keeps its share and its
// containers.
func TestSeveralCanaries(t *testing.T) {
	e := newEnv(t)
	v1, v2 := images.AppImage, images.AppImageV2
	base := e.namedManifest(v1, v1, v1, v1)
	m := strings.Replace(base, "    route: {host: web.test}\n",
		fmt.Sprintf("    route: {host: web.test}\n    canary: {image: %s, weight: 10}\n", v2), 1)
	m = strings.Replace(m, "    route: {path_prefix: /v2, strip_prefix: true}\n",
		fmt.Sprintf("    route: {path_prefix: /v2, strip_prefix: true}\n    canary: {image: %s, weight: 30}\n", v2), 1)
	if strings.Count(m, "canary:") != 2 {
		t.Fatal("the two canaries were not written into the manifest")
	}
	e.writeManifest(m)
	e.startDaemon()
	if out, code := e.swiftctl("deploy"); code != 0 {
		t.Fatalf("swiftctl deploy: exit %d:\n%s", code, out)
	}
	e.converged(map[string]int{v1: 5, v2: 2})
	weights := func() map[string]int {
		out := map[string]int{}
		for _, s := range e.status().Services {
			if s.CanaryWeight > 0 {
				out[s.Name] = s.CanaryWeight
			}
		}
		return out
	}
	if w := weights(); w["web"] != 10 || w["api"] != 30 {
		t.Fatalf("canary weights in status %v, want web 10 api 30", w)
	}

	// Each service's share of requests answered by its canary (v2).
	const n = 1000
	share := func(host, path string) float64 {
		canary := 0
		for range n {
			code, info, err := e.getHost(host, path)
			if err != nil || code != 200 {
				t.Fatalf("%s%s: %d %v", host, path, code, err)
			}
			if info.Version == "2.0.0" {
				canary++
			}
		}
		return float64(canary) / n
	}
	webShare, apiShare := share("web.test", "/"), share("", "/v2/")
	t.Logf("canary share of %d requests each: web %.1f%% (weight 10), api %.1f%% (weight 30)", n, 100*webShare, 100*apiShare)
	if webShare < 0.06 || webShare > 0.14 {
		t.Errorf("web's canary answered %.1f%% of web's requests, want about 10%%", 100*webShare)
	}
	if apiShare < 0.25 || apiShare > 0.35 {
		t.Errorf("api's canary answered %.1f%% of api's requests, want about 30%%", 100*apiShare)
	}
	if out, _ := e.swiftctl("status"); !strings.Contains(out, "Canaries:") || !strings.Contains(out, "web: 10% of traffic") || !strings.Contains(out, "api: 30% of traffic") {
		t.Errorf("swiftctl status lacks each service's canary:\n%s", out)
	}

	// web's canary is promoted on its own figures, under load on web.
	before := e.serviceIDs()
	load := startLoadHost(e.url("/"), "web.test", 10*time.Millisecond)
	e.waitFor(90*time.Second, "web's canary promoted on its own figures", func() (bool, string) {
		f, err := e.api.Stream(context.Background(), api.PathPromote, api.PromoteRequest{Service: "web"}, func(api.Progress) {})
		if err != nil {
			return false, err.Error()
		}
		return f.Error == "" && len(f.Denied) == 0, fmt.Sprint(f.Error, f.Denied)
	})
	e.converged(map[string]int{v1: 4, v2: 2})
	ok, failed, samples := load.finish()
	t.Logf("web requests across its promotion: %d ok, %d failed", ok, failed)
	if failed != 0 {
		t.Errorf("%d of web's requests failed (e.g. %v)", failed, samples)
	}
	e.routes([]routeWant{{"web.test", "/", 200, "2.0.0"}})
	if w := weights(); w["web"] != 0 || w["api"] != 30 {
		t.Errorf("after web's promotion: weights %v, want api's canary still at 30 and web's gone", w)
	}
	after := e.serviceIDs()
	for _, svc := range []string{"api", "worker", "db"} {
		if !slices.Equal(before[svc], after[svc]) {
			t.Errorf("web's promotion restarted %s: containers %v -> %v", svc, before[svc], after[svc])
		}
	}
	promoted := e.events(journal.EventPromoted)
	if len(promoted) != 1 || promoted[0].Details["service"] != "web" {
		t.Errorf("promoted records %+v, want one naming web", promoted)
	}
}

// TestSeveralCanariesJudgedApart walks two stepped canaries at once under
// load on the real engine, each judged on its own figures: web's canary,
// made to fail (chaos on web's canary only), is aborted by the analysis
// while api's walks on and is promoted; neither is stopped by the other,
// and no api request fails.
func TestSeveralCanariesJudgedApart(t *testing.T) {
	e := newEnv(t)
	v1, v2 := images.AppImage, images.AppImageV2
	base := strings.Replace(e.namedManifest(v1, v1, v1, v1), "  min_disk_gb: 0.1\n", "  min_disk_gb: 0.1\n  min_requests: 10\n  max_p99_ms: 3000\n", 1)
	e.writeManifest(base)
	e.startDaemon()
	if out, code := e.swiftctl("deploy"); code != 0 {
		t.Fatalf("swiftctl deploy: exit %d:\n%s", code, out)
	}
	e.converged(map[string]int{v1: 5})
	webLoad := startLoadHost(e.url("/"), "web.test", 5*time.Millisecond)
	apiLoad := startLoad(e.url("/v2/"), 5*time.Millisecond)

	m := strings.Replace(base, "    route: {host: web.test}\n", "    route: {host: web.test}\n    canary:\n      image: "+v2+
		"\n      steps: [{weight: 20, pause: 60s}]\n      analysis: {interval: 1s, failure_limit: 3}\n", 1)
	m = strings.Replace(m, "    route: {path_prefix: /v2, strip_prefix: true}\n", "    route: {path_prefix: /v2, strip_prefix: true}\n    canary:\n      image: "+v2+
		"\n      steps: [{weight: 30, pause: 8s}, {weight: 60, pause: 8s}]\n      analysis: {interval: 1s, failure_limit: 3, auto_promote: true}\n", 1)
	start := time.Now()
	e.writeManifest(m)
	e.waitFor(90*time.Second, "both canaries' first steps under way", func() (bool, string) {
		got := map[string]string{}
		for _, s := range e.status().Services {
			if r := s.Rollout; r != nil {
				got[s.Name] = fmt.Sprintf("%s %d%%", r.Phase, s.CanaryWeight)
			}
		}
		return got["web"] == "progressing 20%" && got["api"] == "progressing 30%", fmt.Sprint(got)
	})
	var hit api.ChaosResult
	if err := e.api.Post(context.Background(), api.PathChaos, api.ChaosRequest{Mode: "error", Rate: 1, Service: "web"}, &hit); err != nil {
		t.Fatalf("chaos on web's canary: %v", err)
	}
	t.Logf("chaos error 100%% on %s %v", hit.Track, hit.Containers)
	chaosAt := time.Now()
	e.waitFor(120*time.Second, "web aborted and api promoted, each on its own", func() (bool, string) {
		ab, pr := e.events(journal.EventAborted), e.events(journal.EventPromoted)
		return len(ab) == 1 && len(pr) == 1, fmt.Sprintf("%d aborted, %d promoted", len(ab), len(pr))
	})
	ab, pr := e.events(journal.EventAborted)[0], e.events(journal.EventPromoted)[0]
	t.Logf("web aborted %s after the chaos (%s); api promoted %s after the manifest edit",
		ab.Timestamp.Sub(chaosAt).Round(100*time.Millisecond), ab.Message, pr.Timestamp.Sub(start).Round(100*time.Millisecond))
	if ab.Details["service"] != "web" || pr.Details["service"] != nil || pr.Details["image"] != v2 {
		t.Errorf("aborted %v, promoted %v: want web's abort and api's (the primary's) promotion", ab.Details, pr.Details)
	}
	e.converged(map[string]int{v1: 3, v2: 2})
	e.routes([]routeWant{{"", "/v2/", 200, "2.0.0"}})
	webOK, webFailed, _ := webLoad.finish()
	apiOK, apiFailed, samples := apiLoad.finish()
	t.Logf("requests: api %d ok, %d failed; web %d ok, %d failed (web's canary failing on purpose until its abort)", apiOK, apiFailed, webOK, webFailed)
	if apiFailed != 0 {
		t.Errorf("%d of api's requests failed (e.g. %v)", apiFailed, samples)
	}
	for _, r := range e.events(journal.EventCheckFailed) {
		if r.Details["service"] != "web" {
			t.Errorf("a check of api failed: %s", r.Message)
		}
	}
	if got := e.events(journal.EventCanaryStep); len(got) != 3 {
		t.Errorf("%d canary_step records, want 3 (web's first, api's two)", len(got))
	}
}
