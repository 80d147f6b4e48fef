package fake_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

func healthURL(ip string) string { return "http://" + net.JoinHostPort(ip, "3000") + "/healthz" }

func TestProbe(t *testing.T) {
	f := newFake(t)
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	mustRun(t, f, appSpec("demo-stable-2", stack.TrackStable, 2))
	ip1 := mustGet(t, f, "demo-stable-1").IP
	ip2 := mustGet(t, f, "demo-stable-2").IP

	if err := f.Probe(bg, healthURL(ip1)); err != nil {
		t.Errorf("a running container is healthy by default: %v", err)
	}
	f.SetHealthy("demo-stable-1", false)
	err := f.Probe(bg, healthURL(ip1))
	if err == nil || err.Error() != "GET "+healthURL(ip1)+": status 503" {
		t.Errorf("unhealthy: %v", err)
	}
	if err := f.Probe(bg, healthURL(ip2)); err != nil {
		t.Errorf("the mark hit another container: %v", err)
	}
	if c := mustGet(t, f, "demo-stable-1"); c.Healthy {
		t.Error("Snapshot says healthy")
	}
	f.SetHealthy("demo-stable-1", true)
	if err := f.Probe(bg, healthURL(ip1)); err != nil {
		t.Errorf("healthy again: %v", err)
	}

	if err := f.Kill("demo-stable-2"); err != nil {
		t.Fatal(err)
	}
	if err := f.Probe(bg, healthURL(ip2)); err == nil || !strings.Contains(err.Error(), "no route to host") {
		t.Errorf("probe of a dead container's old IP: %v", err)
	}
	if err := f.Probe(bg, "https://"+ip1+"/"); err == nil {
		t.Error("https probe succeeded")
	}
	if err := f.Probe(bg, "http://%zz"); err == nil {
		t.Error("bad URL accepted")
	}
	// Health checks go to the containers, not through the engine socket.
	f.Down()
	if err := f.Probe(bg, healthURL(ip1)); err != nil {
		t.Errorf("probe while the engine is down: %v", err)
	}
}

func TestHealthMarksApplyToLaterContainers(t *testing.T) {
	f := newFake(t)
	canary := appSpec("demo-canary-1", stack.TrackCanary, 1)
	canary.Image = "swift-deploy-1-node:v2"
	f.AddImage(canary.Image)
	f.SetHealthy("docker.io/library/swift-deploy-1-node:v2", false)
	f.SetHealthy("demo-stable-2", false)
	f.SetHealthy(appImage, true)
	mustRun(t, f, canary)
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	mustRun(t, f, appSpec("demo-stable-2", stack.TrackStable, 2))
	for name, want := range map[string]bool{"demo-canary-1": false, "demo-stable-1": true, "demo-stable-2": false} {
		c := mustGet(t, f, name)
		if got := f.Probe(bg, healthURL(c.IP)) == nil; got != want || c.Healthy != want {
			t.Errorf("%s healthy = %v (info %v), want %v (a name mark wins over an image mark)", name, got, c.Healthy, want)
		}
	}
	// The last mark on an image wins, however the image is spelt.
	f.SetHealthy("swift-deploy-1-node:v2", true)
	if c := mustGet(t, f, "demo-canary-1"); !c.Healthy {
		t.Error("a later mark on the same image, spelt differently, did not win")
	}
}

func TestTransport(t *testing.T) {
	f := newFake(t)
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	mustRun(t, f, appSpec("demo-stable-2", stack.TrackStable, 2))
	f.SetHealthy("demo-stable-2", false)
	hc := &http.Client{Transport: f.Transport(), Timeout: time.Second}
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{{"demo-stable-1", 200, "ok\n"}, {"demo-stable-2", 503, "unhealthy\n"}} {
		resp, err := hc.Get(healthURL(mustGet(t, f, tc.name).IP))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(b) != tc.body {
			t.Errorf("%s: %d %q", tc.name, resp.StatusCode, b)
		}
	}
	_, err := hc.Get(healthURL("10.99.0.2"))
	if err == nil || !strings.Contains(err.Error(), "no route to host") || strings.Count(err.Error(), "Get ") != 1 {
		t.Errorf("unknown host: %v", err)
	}
	boom := errors.New("boom")
	f.FailNext(fake.OpProbe, boom)
	if _, err := hc.Get(healthURL(mustGet(t, f, "demo-stable-1").IP)); !errors.Is(err, boom) {
		t.Errorf("injected probe failure: %v", err)
	}
	f.Hang(fake.OpProbe)
	ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, healthURL(mustGet(t, f, "demo-stable-1").IP), nil)
	if _, err := hc.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung probe: %v", err)
	}
	f.Clear()
	if got := len(f.CallsTo(fake.OpProbe)); got != 5 {
		t.Errorf("%d probes recorded, want 5", got)
	}
}
