package images_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

func TestEnsureAppBuildsDemoAppImage(t *testing.T) {
	cli := testenv.Docker(t)
	ctx := t.Context()
	tag, track := scratchImages(t, cli, "sdt-app")
	root := moduleRoot(t)

	var log bytes.Buffer
	if err := images.EnsureAppFrom(ctx, cli, root, "./demo-app", tag, "1.2.3-test", &log); err != nil {
		t.Fatalf("EnsureApp: %v\n%s", err, log.String())
	}
	first := inspectImage(t, cli, tag)
	track(first.ID)
	if !strings.Contains(log.String(), tag+": built from ./demo-app (version 1.2.3-test)") {
		t.Errorf("log does not report the build:\n%s", log.String())
	}

	t.Run("image config", func(t *testing.T) {
		cfg := first.Config
		wantLabels := map[string]string{
			images.LabelSource:  "demo-app 1.2.3-test",
			images.LabelVersion: "1.2.3-test",
		}
		for k, want := range wantLabels {
			if got := cfg.Labels[k]; got != want {
				t.Errorf("label %s = %q, want %q", k, got, want)
			}
		}
		if got := cfg.Labels[images.LabelContextDigest]; len(got) != 64 {
			t.Errorf("label %s = %q, want a sha256 hex digest", images.LabelContextDigest, got)
		}
		if !slices.Equal(cfg.Entrypoint, []string{"/app"}) {
			t.Errorf("Entrypoint = %q, want [/app]", cfg.Entrypoint)
		}
		if cfg.User != "65534" {
			t.Errorf("User = %q, want 65534", cfg.User)
		}
		if _, ok := cfg.ExposedPorts["3000/tcp"]; !ok {
			t.Errorf("ExposedPorts = %v, want 3000/tcp", cfg.ExposedPorts)
		}
		if cfg.Healthcheck == nil || !slices.Equal(cfg.Healthcheck.Test, []string{"CMD", "/app", "-healthcheck"}) {
			t.Errorf("Healthcheck = %+v, want CMD /app -healthcheck", cfg.Healthcheck)
		}
		if len(first.RootFS.Layers) != 1 {
			t.Errorf("image has %d layers, want 1 (FROM scratch + the binary)", len(first.RootFS.Layers))
		}
	})

	t.Run("unchanged source is not rebuilt", func(t *testing.T) {
		log.Reset()
		if err := images.EnsureAppFrom(ctx, cli, root, "./demo-app", tag, "1.2.3-test", &log); err != nil {
			t.Fatalf("EnsureApp again: %v", err)
		}
		if got := inspectImage(t, cli, tag).ID; got != first.ID {
			t.Errorf("image was rebuilt: ID %s, was %s", got, first.ID)
		}
		if !strings.Contains(log.String(), tag+": up to date") {
			t.Errorf("log does not say the image is up to date:\n%s", log.String())
		}
	})

	t.Run("new version is rebuilt and old image removed", func(t *testing.T) {
		log.Reset()
		if err := images.EnsureAppFrom(ctx, cli, root, "./demo-app", tag, "1.2.4-test", &log); err != nil {
			t.Fatalf("EnsureApp with a new version: %v", err)
		}
		second := inspectImage(t, cli, tag)
		track(second.ID)
		if second.ID == first.ID {
			t.Fatal("image was not rebuilt for a new version")
		}
		if got := second.Config.Labels[images.LabelVersion]; got != "1.2.4-test" {
			t.Errorf("version label = %q, want 1.2.4-test", got)
		}
		if _, err := cli.ImageInspect(ctx, first.ID); !cerrdefs.IsNotFound(err) {
			t.Errorf("superseded image %s still exists (inspect: %v)", first.ID, err)
		}
	})

	t.Run("container serves the baked-in version and turns healthy", func(t *testing.T) {
		project := testenv.Project(t, cli)
		base := startApp(t, cli, project, tag)
		var body struct {
			Version string `json:"version"`
		}
		getJSON(t, base+"/", &body)
		if body.Version != "1.2.4-test" {
			t.Errorf("GET / version = %q, want 1.2.4-test", body.Version)
		}
		var health struct {
			Status string `json:"status"`
		}
		getJSON(t, base+"/healthz", &health)
		if health.Status != "ok" {
			t.Errorf("GET /healthz status = %q, want ok", health.Status)
		}
		waitHealthy(t, cli, project+"-app")
	})
}

// startApp runs image as "<project>-app" with port 3000 published on a
// random loopback port, and returns the app's base URL once it answers.
func startApp(t *testing.T, cli *client.Client, project, image string) string {
	t.Helper()
	ctx := t.Context()
	port := network.MustParsePort("3000/tcp")
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: project + "-app",
		Config: &container.Config{
			Image:        image,
			Labels:       map[string]string{stack.LabelProject: project},
			ExposedPorts: network.PortSet{port: {}},
		},
		HostConfig: &container.HostConfig{
			PortBindings: network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1")}}},
		},
	})
	if err != nil {
		t.Fatalf("create app container: %v", err)
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start app container: %v", err)
	}
	inspected, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect app container: %v", err)
	}
	bindings := inspected.Container.NetworkSettings.Ports[port]
	if len(bindings) == 0 {
		t.Fatalf("port %s is not published", port)
	}
	base := "http://127.0.0.1:" + bindings[0].HostPort
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			return base
		}
		if time.Now().After(deadline) {
			t.Fatalf("app never answered on %s: %v", base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode: %v", url, err)
	}
}

// waitHealthy waits for Docker's HEALTHCHECK (the app binary run with
// -healthcheck inside the scratch image) to report healthy.
func waitHealthy(t *testing.T, cli *client.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		inspected, err := cli.ContainerInspect(t.Context(), name, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatalf("inspect %s: %v", name, err)
		}
		state := inspected.Container.State
		if state.Health == nil {
			t.Fatalf("container %s has no health state", name)
		}
		if state.Health.Status == container.Healthy {
			return
		}
		if state.Health.Status == container.Unhealthy || time.Now().After(deadline) {
			t.Fatalf("container %s health = %s, want healthy; last probes: %s", name, state.Health.Status, probeLog(state.Health))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func probeLog(h *container.Health) string {
	var b strings.Builder
	for _, r := range h.Log {
		fmt.Fprintf(&b, "[exit %d: %s] ", r.ExitCode, strings.TrimSpace(r.Output))
	}
	return b.String()
}

func TestEnsureAllTagsBothAppVersions(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	tests := []struct {
		ref, version string
	}{
		{images.AppImage, "1.0.0"},
		{images.AppImageV2, "2.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			img := inspectImage(t, cli, tt.ref)
			if got := img.Config.Labels[images.LabelVersion]; got != tt.version {
				t.Errorf("%s version label = %q, want %q", tt.ref, got, tt.version)
			}
		})
	}
}

func TestBuildReportsErrorsFromTheStream(t *testing.T) {
	cli := testenv.Docker(t)
	tag, _ := scratchImages(t, cli, "sdt-broken")
	err := images.BuildImage(t.Context(), cli, tag, []byte("FROM scratch\nCOPY missing-file /x\n"), nil, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "missing-file") || !strings.Contains(err.Error(), tag) {
		t.Fatalf("build with a missing file: error = %v, want one naming %s and missing-file", err, tag)
	}
	if _, err := cli.ImageInspect(t.Context(), tag); !cerrdefs.IsNotFound(err) {
		t.Errorf("failed build left image %s behind (inspect: %v)", tag, err)
	}
}
