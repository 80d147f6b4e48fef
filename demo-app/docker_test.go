package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// appPort is the port the containerised app listens on in this test.
const appPort = 3000

// TestDockerImage runs the built app image on a real engine and checks it
// the way SwiftDeploy uses it: over the project network, probed by Docker's
// HEALTHCHECK, steered by /chaos and stopped with SIGTERM.
func TestDockerImage(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)
	ctx := t.Context()

	wantHealthcheck := []string{"CMD", "/app", "-healthcheck"}
	img, err := cli.ImageInspect(ctx, images.AppImage)
	if err != nil {
		t.Fatalf("inspect image %s: %v", images.AppImage, err)
	}
	if img.Config == nil || img.Config.Healthcheck == nil || !slices.Equal(img.Config.Healthcheck.Test, wantHealthcheck) {
		t.Fatalf("image %s HEALTHCHECK = %+v, want %q", images.AppImage, img.Config, wantHealthcheck)
	}

	id, ip := runApp(t, cli, project, images.AppImage, stack.TrackCanary)
	base := fmt.Sprintf("http://%s", net.JoinHostPort(ip, strconv.Itoa(appPort)))
	waitHTTP(t, base+"/healthz")

	t.Run("docker healthcheck", func(t *testing.T) {
		waitHealthy(t, cli, id)
	})

	t.Run("root", func(t *testing.T) {
		resp, body := do(t, http.MethodGet, base+"/", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /: status %d, body %s", resp.StatusCode, body)
		}
		inspect, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatalf("inspect container %s: %v", id, err)
		}
		want := rootResponse{Mode: modeCanary, Version: images.AppVersion, Hostname: inspect.Container.Config.Hostname}
		got := decodeJSON[rootResponse](t, body)
		if got.Mode != want.Mode || got.Version != want.Version || got.Hostname != want.Hostname || got.UptimeSeconds <= 0 {
			t.Errorf("GET / = %+v, want %+v with a positive uptime", got, want)
		}
		if v, m := resp.Header.Get("X-App-Version"), resp.Header.Get("X-App-Mode"); v != images.AppVersion || m != modeCanary {
			t.Errorf("X-App-Version, X-App-Mode = %q, %q; want %q, canary", v, m, images.AppVersion)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		families := scrape(t, base)
		requireMetricNames(t, families)
		if got := gauge(t, families, "app_mode"); got != 1 {
			t.Errorf("app_mode = %v, want 1 (canary)", got)
		}
		if got := gauge(t, families, "app_uptime_seconds"); got <= 0 {
			t.Errorf("app_uptime_seconds = %v, want > 0", got)
		}
		if got := requestCount(families, map[string]string{"method": "GET", "path": "/", "status": "200"}); got < 1 {
			t.Errorf("http_requests_total for GET / = %v, want at least 1", got)
		}
	})

	t.Run("chaos", func(t *testing.T) {
		postChaos(t, base, `{"mode":"slow","duration":0.2}`)
		start := time.Now()
		if resp, body := do(t, http.MethodGet, base+"/", ""); resp.StatusCode != http.StatusOK {
			t.Errorf("GET / under slow chaos: status %d, body %s", resp.StatusCode, body)
		}
		if elapsed := time.Since(start); elapsed < 200*time.Millisecond {
			t.Errorf("GET / took %v under slow chaos, want at least 200ms", elapsed)
		}
		if got := gauge(t, scrape(t, base), "chaos_active"); got != 1 {
			t.Errorf("chaos_active under slow chaos = %v, want 1", got)
		}

		postChaos(t, base, `{"mode":"error","rate":1}`)
		for range 5 {
			if resp, _ := do(t, http.MethodGet, base+"/", ""); resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("GET / under error chaos: status %d, want 500", resp.StatusCode)
			}
		}
		if resp, _ := do(t, http.MethodGet, base+"/healthz", ""); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /healthz under error chaos: status %d, want 200", resp.StatusCode)
		}
		families := scrape(t, base)
		if got := gauge(t, families, "chaos_active"); got != 2 {
			t.Errorf("chaos_active under error chaos = %v, want 2", got)
		}
		if got := requestCount(families, map[string]string{"path": "/", "status": "500"}); got != 5 {
			t.Errorf("http_requests_total{status=500} = %v, want 5", got)
		}

		postChaos(t, base, `{"mode":"recover"}`)
		if resp, _ := do(t, http.MethodGet, base+"/", ""); resp.StatusCode != http.StatusOK {
			t.Errorf("GET / after recover: status %d, want 200", resp.StatusCode)
		}
		if got := gauge(t, scrape(t, base), "chaos_active"); got != 0 {
			t.Errorf("chaos_active after recover = %v, want 0", got)
		}
	})

	t.Run("bad chaos requests", func(t *testing.T) {
		for _, tt := range badChaosRequests {
			t.Run(tt.name, func(t *testing.T) { tt.check(t, base) })
		}
	})

	// Last, as it stops the container: SIGTERM from `docker stop` must let
	// an in-flight (slowed) request finish and end the process with 0.
	t.Run("graceful stop", func(t *testing.T) {
		postChaos(t, base, `{"mode":"slow","duration":1}`)
		// A fresh connection: on a pooled idle one the server could close
		// the connection as idle before reading the request.
		fresh := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		wrote := make(chan struct{})
		answered := make(chan error, 1)
		go func() {
			answered <- getOK(fresh, base+"/", &httptrace.ClientTrace{
				WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) },
			})
		}()
		select {
		case <-wrote:
		case err := <-answered:
			t.Fatalf("slowed request failed before docker stop: %v", err)
		}
		// Once written, the request sits on an accepted (or about to be
		// accepted) connection, which Shutdown waits for. The pause covers
		// the microseconds between the handshake and Accept returning.
		time.Sleep(100 * time.Millisecond)

		if _, err := cli.ContainerStop(ctx, id, client.ContainerStopOptions{}); err != nil {
			t.Fatalf("stop container %s: %v", id, err)
		}
		if err := <-answered; err != nil {
			t.Errorf("in-flight request during docker stop: %v", err)
		}
		inspect, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatalf("inspect container %s: %v", id, err)
		}
		if st := inspect.Container.State; st == nil || st.Running || st.ExitCode != 0 {
			t.Errorf("after docker stop: state %+v, want exited with code 0", st)
		}
	})
}

// runApp starts image on a new network labelled for project (so the
// project cleanup removes both) and returns the container's ID and IP.
func runApp(t *testing.T, cli *client.Client, project, image, track string) (id, ip string) {
	t.Helper()
	ctx := t.Context()
	network := project + "-net"
	if _, err := cli.NetworkCreate(ctx, network, client.NetworkCreateOptions{
		Driver: "bridge",
		Labels: stack.NetworkLabels(project),
	}); err != nil {
		t.Fatalf("create network %s: %v", network, err)
	}

	name := project + "-app"
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image: image,
			Env:   []string{"PORT=" + strconv.Itoa(appPort), "MODE=" + track},
			Labels: map[string]string{
				stack.LabelProject: project,
				stack.LabelRole:    stack.RoleApp,
				stack.LabelTrack:   track,
			},
			// No Test: the image's HEALTHCHECK command is inherited and only
			// its timing is shortened to keep the test quick.
			Healthcheck: &container.HealthConfig{
				Interval: 500 * time.Millisecond,
				Timeout:  3 * time.Second,
				Retries:  3,
			},
		},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(network)},
	})
	if err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container %s: %v", name, err)
	}
	inspect, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect container %s: %v", name, err)
	}
	if ns := inspect.Container.NetworkSettings; ns != nil {
		if ep := ns.Networks[network]; ep != nil && ep.IPAddress.IsValid() {
			return created.ID, ep.IPAddress.String()
		}
	}
	t.Fatalf("container %s has no address on network %s", name, network)
	return "", ""
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	var lastErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := client.Get(url)
		if err != nil {
			lastErr = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
		lastErr = fmt.Errorf("status %d", resp.StatusCode)
	}
	t.Fatalf("%s never answered 200: %v", url, lastErr)
}

// waitHealthy polls the container until Docker's HEALTHCHECK reports it healthy.
func waitHealthy(t *testing.T, cli *client.Client, id string) {
	t.Helper()
	var last *container.Health
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		inspect, err := cli.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatalf("inspect container %s: %v", id, err)
		}
		if st := inspect.Container.State; st != nil && st.Health != nil {
			last = st.Health
			switch st.Health.Status {
			case container.Healthy:
				return
			case container.Unhealthy:
				t.Fatalf("container %s is unhealthy: %s", id, healthLog(last))
			}
		}
	}
	t.Fatalf("container %s never became healthy: %s", id, healthLog(last))
}

func healthLog(h *container.Health) string {
	if h == nil {
		return "no health state"
	}
	s := fmt.Sprintf("status %s, failing streak %d", h.Status, h.FailingStreak)
	for _, r := range h.Log {
		s += fmt.Sprintf("; exit %d: %s", r.ExitCode, r.Output)
	}
	return s
}

// getOK GETs url and succeeds only on a fully read 200 response.
func getOK(c *http.Client, url string, trace *httptrace.ClientTrace) error {
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
