package images_test

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

func TestEnsureNginxBuildsFromDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("cold nginx build downloads Debian's package; skipped with -short")
	}
	cli := testenv.Docker(t)
	ctx := t.Context()
	// A fresh tag: NginxImage itself is usually present already, and other
	// test binaries may be using it.
	ref, track := scratchImages(t, cli, "sdt-nginx")

	var log bytes.Buffer
	outcome, err := images.EnsureNginxAs(ctx, cli, ref, &log)
	if err != nil {
		t.Fatalf("EnsureNginx: %v\n%s", err, log.String())
	}
	if outcome != images.OutcomeBuilt {
		t.Fatalf("EnsureNginx outcome = %q, want %q (no image %s can exist in a registry)", outcome, images.OutcomeBuilt, ref)
	}
	if !strings.Contains(log.String(), "pull failed") {
		t.Errorf("log does not report the failed pull before building:\n%s", log.String())
	}
	img := inspectImage(t, cli, ref)
	track(img.ID)

	cfg := img.Config
	version := cfg.Labels[images.LabelVersion]
	if version == "" || cfg.Labels[images.LabelSource] != "debian-nginx "+version {
		t.Errorf("labels %s=%q %s=%q, want \"debian-nginx <version>\" and the version",
			images.LabelSource, cfg.Labels[images.LabelSource], images.LabelVersion, version)
	}
	if want := []string{"nginx", "-g", "daemon off;"}; !slices.Equal(cfg.Cmd, want) {
		t.Errorf("Cmd = %q, want %q", cfg.Cmd, want)
	}
	if cfg.StopSignal != "SIGQUIT" {
		t.Errorf("StopSignal = %q, want SIGQUIT", cfg.StopSignal)
	}
	if want := "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"; !slices.Contains(cfg.Env, want) {
		t.Errorf("Env = %q, want %q", cfg.Env, want)
	}

	log.Reset()
	outcome, err = images.EnsureNginxAs(ctx, cli, ref, &log)
	if err != nil {
		t.Fatalf("EnsureNginx again: %v", err)
	}
	if outcome != images.OutcomePresent {
		t.Errorf("second EnsureNginx outcome = %q, want %q", outcome, images.OutcomePresent)
	}
	if got := inspectImage(t, cli, ref).ID; got != img.ID {
		t.Errorf("second EnsureNginx replaced the image: %s, was %s", got, img.ID)
	}
}

// nginxConf is shaped like SwiftDeploy's rendered config: its own pid and
// temp paths under /tmp, user nobody nogroup, logs to stdout/stderr.
const nginxConf = `user nobody nogroup;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    access_log /dev/stdout;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    upstream app { server %s:3000; }
    server {
        listen 8080;
        location / { proxy_pass http://app; }
    }
}
`

// TestNginxImage checks the promises every nginx image (official or built
// here) keeps for SwiftDeploy.
func TestNginxImage(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	ctx := t.Context()
	project := testenv.Project(t, cli)

	t.Run("tmp is world-writable and sticky", func(t *testing.T) {
		created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
			Config: &container.Config{Image: images.NginxImage, Labels: map[string]string{stack.LabelProject: project}},
		})
		if err != nil {
			t.Fatalf("create container: %v", err)
		}
		stat, err := cli.ContainerStatPath(ctx, created.ID, client.ContainerStatPathOptions{Path: "/tmp"})
		if err != nil {
			t.Fatalf("stat /tmp: %v", err)
		}
		if mode := stat.Stat.Mode; !mode.IsDir() || mode.Perm() != 0o777 || mode&os.ModeSticky == 0 {
			t.Errorf("/tmp mode = %v, want a sticky directory with 0777 (1777)", mode)
		}
	})

	netName := project + "-net"
	if _, err := cli.NetworkCreate(ctx, netName, client.NetworkCreateOptions{Driver: "bridge", Labels: stack.NetworkLabels(project)}); err != nil {
		t.Fatalf("create network %s: %v", netName, err)
	}
	// A long-running container whose name the upstream must resolve.
	upstream := project + "-upstream"
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       upstream,
		Config:     &container.Config{Image: images.NginxImage, Labels: map[string]string{stack.LabelProject: project}},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(netName)},
	})
	if err != nil {
		t.Fatalf("create container %s: %v", upstream, err)
	}
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container %s: %v", upstream, err)
	}

	tests := []struct {
		name         string
		upstreamHost string
		wantOK       bool
		wantOutput   string
	}{
		{"loopback upstream", "127.0.0.1", true, "test is successful"},
		{"container name resolved by Docker's DNS", upstream, true, "test is successful"},
		{"unknown name", project + "-missing", false, "host not found in upstream"},
	}
	for _, tt := range tests {
		t.Run("nginx -t with "+tt.name, func(t *testing.T) {
			out, exitCode := runOnce(t, cli, run{
				image:   images.NginxImage,
				cmd:     []string{"nginx", "-t", "-c", stack.ConfigDir + "/nginx.conf"},
				project: project,
				network: netName,
				files:   map[string]string{strings.TrimPrefix(stack.ConfigDir, "/") + "/nginx.conf": fmt.Sprintf(nginxConf, tt.upstreamHost)},
			})
			if ok := exitCode == 0; ok != tt.wantOK {
				t.Errorf("nginx -t exit code %d, want success=%v; output:\n%s", exitCode, tt.wantOK, out)
			}
			if !strings.Contains(out, tt.wantOutput) {
				t.Errorf("nginx -t output does not contain %q:\n%s", tt.wantOutput, out)
			}
		})
	}
}
