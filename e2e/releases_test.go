package e2e

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/loadgen"
)

// appImageV3 is a third version of the demo app, built for this test.
const (
	appImageV3   = "swift-deploy-1-node:v3"
	appV3Version = "3.0.0"
)

// Three releases (v1, v2, v3 deployed in turn), then `swiftctl rollback
// --to previous` under steady load: v2 serves again with no failed
// request, journaled once as rolled_back from 3 to 2, nothing pulled, and
// `swiftctl releases` lists the three with the current marker on 2.
func TestRollbackToPreviousUnderLoad(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := images.EnsureApp(ctx, e.cli, appImageV3, appV3Version, io.Discard); err != nil {
		t.Fatalf("build %s: %v", appImageV3, err)
	}
	e.writeManifest(e.manifest(images.AppImage, 2, ""))
	e.startDaemon()
	for _, v := range []struct{ image, version string }{
		{images.AppImage, images.AppVersion}, {images.AppImageV2, images.AppV2Version}, {appImageV3, appV3Version},
	} {
		e.writeManifest(e.manifest(v.image, 2, ""))
		if out, code := e.swiftctl("deploy"); code != 0 {
			t.Fatalf("deploy %s: exit %d\n%s", v.image, code, out)
		}
		e.converged(map[string]int{v.image: 2})
		e.serves(v.version)
	}
	rs := e.releases()
	if got := releaseLine(rs); got != "3*:"+appImageV3+" 2:"+images.AppImageV2+" 1:"+images.AppImage {
		t.Fatalf("releases after three deploys: %s", got)
	}
	for _, r := range rs.Releases {
		if !strings.HasPrefix(r.Digest, "sha256:") || r.ImageID == "" || r.SpecHash == "" || r.Local == nil || !*r.Local || r.User == "" || r.Cause != "deploy" {
			t.Errorf("release %d: %+v", r.Rev, r)
		}
	}

	// Each listed release's image has a name of its own on the host.
	for _, r := range rs.Releases {
		ref := "swiftdeploy-release/" + e.project + "/" + e.project + ":" + itoa(r.Rev)
		img, err := e.cli.ImageInspect(ctx, ref)
		if err != nil || img.ID != r.ImageID {
			t.Errorf("release %d (%s): kept name %s: %v %s", r.Rev, r.ImageID, ref, err, img.ID)
		}
	}

	// Load in back-to-back one-second runs of pkg/loadgen until stopped:
	// each run waits for its requests, so none is cut short by the end of
	// the test.
	var stop atomic.Bool
	done := make(chan loadgen.Result, 1)
	go func() {
		total := loadgen.Result{Failures: map[string]int{}}
		for !stop.Load() {
			res, err := loadgen.Run(ctx, loadgen.Config{URL: e.url("/"), RPS: 50, Duration: time.Second})
			if err != nil {
				total.Failures["loadgen: "+err.Error()]++
				break
			}
			total.Total += res.Total
			total.Success += res.Success
			for k, v := range res.Failures {
				total.Failures[k] += v
			}
			total.P99 = max(total.P99, res.P99)
		}
		done <- total
	}()
	time.Sleep(2 * time.Second) // load before the rollback
	began := time.Now()
	out, code := e.swiftctl("rollback", "--to", "previous")
	took := time.Since(began)
	if code != 0 {
		stop.Store(true)
		<-done
		t.Fatalf("rollback --to previous: exit %d\n%s", code, out)
	}
	e.serves(images.AppV2Version)
	time.Sleep(2 * time.Second) // load after it
	stop.Store(true)
	res := <-done
	t.Logf("load: %d requests, %d ok, failures %v, worst p99 of a second %s", res.Total, res.Success, res.Failures, res.P99)
	if n := res.Failed(); n != 0 {
		t.Errorf("%d requests failed during the rollback: %v", n, res.Failures)
	}
	if res.Success < 100 {
		t.Errorf("only %d requests succeeded: the load did not run", res.Success)
	}
	if contains(out, "Pulling") {
		t.Errorf("the rollback pulled an image:\n%s", out)
	}
	// Release 2's image runs under its tag, or under the name that kept
	// it if the shared v2 tag was rebuilt meanwhile (other tests build it).
	kept := "swiftdeploy-release/" + e.project + "/" + e.project + ":2"
	if strings.Contains(out, "kept as "+kept) {
		e.converged(map[string]int{kept: 2})
	} else {
		e.converged(map[string]int{images.AppImageV2: 2})
	}

	// Journaled once, request → committed from the journal's own times.
	var requested, rolled []journal.Record
	var hist []journal.Record
	if err := e.api.Get(ctx, api.PathHistory+"?type=event&limit=1000", &hist); err != nil {
		t.Fatal(err)
	}
	for _, r := range hist {
		switch {
		case r.Event == journal.EventRollbackRequested:
			requested = append(requested, r)
		case r.Event == journal.EventRolledBack:
			rolled = append(rolled, r)
		}
	}
	if len(requested) != 1 || len(rolled) != 1 {
		t.Fatalf("rollback_requested ×%d, rolled_back ×%d, want one each", len(requested), len(rolled))
	}
	if from, to := rolled[0].Details["from_rev"], rolled[0].Details["to_rev"]; from != 3.0 || to != 2.0 {
		t.Errorf("rolled_back from %v to %v, want 3 → 2", from, to)
	}
	t.Logf("rollback --to previous: request → committed (journal) %s; swiftctl call %s",
		rolled[0].Timestamp.Sub(requested[0].Timestamp).Round(time.Millisecond), took.Round(time.Millisecond))

	if got := releaseLine(e.releases()); got != "3:"+appImageV3+" 2*:"+images.AppImageV2+" 1:"+images.AppImage {
		t.Errorf("releases after the rollback: %s", got)
	}
	text, code := e.swiftctl("releases")
	if code != 0 || !strings.Contains(text, "*  2") {
		t.Errorf("swiftctl releases: exit %d, no current marker on 2:\n%s", code, text)
	}
	t.Logf("swiftctl releases:\n%s", text)
}

func (e *env) releases() api.Releases {
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

// releaseLine is "3*:img 2:img 1:img", newest first, current starred.
func releaseLine(rs api.Releases) string {
	var parts []string
	for _, r := range rs.Releases {
		mark := ":"
		if r.Current {
			mark = "*:"
		}
		parts = append(parts, itoa(r.Rev)+mark+r.Image)
	}
	return strings.Join(parts, " ")
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
