package images_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// TestEnsureRedisBuildsFromDebianPackage builds the Redis image under a
// fresh tag from Debian's packages, then runs it with a named volume: a
// value SET through the network survives the container's kill -9 and a
// new container on the same volume (appendonly into /data, written by the
// image's user), and a second EnsureRedis keeps the image.
func TestEnsureRedisBuildsFromDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("cold redis build downloads Debian's packages; skipped with -short")
	}
	cli := testenv.Docker(t)
	ctx := t.Context()
	ref, track := scratchImages(t, cli, "sdt-redis")
	project := testenv.Project(t, cli)

	var log bytes.Buffer
	outcome, err := images.EnsureRedisAs(ctx, cli, ref, &log)
	if err != nil {
		t.Fatalf("EnsureRedis: %v\n%s", err, log.String())
	}
	if outcome != images.OutcomeBuiltRedis {
		t.Fatalf("EnsureRedis outcome = %q, want %q", outcome, images.OutcomeBuiltRedis)
	}
	img := inspectImage(t, cli, ref)
	track(img.ID)
	cfg := img.Config
	version := cfg.Labels[images.LabelVersion]
	if version == "" || cfg.Labels[images.LabelSource] != "debian-redis "+version {
		t.Errorf("labels %s=%q %s=%q, want \"debian-redis <version>\" and the version",
			images.LabelSource, cfg.Labels[images.LabelSource], images.LabelVersion, version)
	}
	if !slices.Contains(cfg.Cmd, "--appendonly") || !slices.Contains(cfg.Cmd, "/data") {
		t.Errorf("Cmd = %q, want appendonly into /data", cfg.Cmd)
	}

	netName := project + "-net"
	if _, err := cli.NetworkCreate(ctx, netName, client.NetworkCreateOptions{Driver: "bridge", Labels: stack.NetworkLabels(project)}); err != nil {
		t.Fatalf("create network %s: %v", netName, err)
	}
	vol := project + "-data"
	if _, err := cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: vol, Labels: map[string]string{stack.LabelProject: project}}); err != nil {
		t.Fatalf("create volume %s: %v", vol, err)
	}
	server := project + "-redis"
	startServer := func() string {
		t.Helper()
		created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name:   server,
			Config: &container.Config{Image: ref, Labels: map[string]string{stack.LabelProject: project}},
			HostConfig: &container.HostConfig{
				NetworkMode: container.NetworkMode(netName),
				Mounts:      []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/data"}},
			},
		})
		if err != nil {
			t.Fatalf("create container %s: %v", server, err)
		}
		if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
			t.Fatalf("start container %s: %v", server, err)
		}
		return created.ID
	}
	// redis-cli in a second container of the image, on the network.
	redisCLI := func(args ...string) string {
		t.Helper()
		var out string
		for deadline := time.Now().Add(time.Minute); ; {
			var code int64
			out, code = runOnce(t, cli, run{image: ref, cmd: append([]string{"redis-cli", "-h", server}, args...), project: project, network: netName})
			out = strings.TrimSpace(out)
			if code == 0 && !strings.Contains(out, "Connection refused") && !strings.HasPrefix(out, "LOADING") {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis-cli %v: exit %d: %s", args, code, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	id := startServer()
	if got := redisCLI("SET", "greeting", "hello"); got != "OK" {
		t.Fatalf("SET answered %q, want OK", got)
	}
	// kill -9: no shutdown save; only the append-only file keeps the value.
	if _, err := cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatalf("remove container %s: %v", server, err)
	}
	startServer()
	if got := redisCLI("GET", "greeting"); got != "hello" {
		t.Errorf("GET after a kill -9 and a new container on the volume = %q, want hello", got)
	}
	if got := redisCLI("CONFIG", "GET", "appendonly"); !strings.HasSuffix(got, "yes") {
		t.Errorf("CONFIG GET appendonly = %q, want yes", got)
	}

	log.Reset()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	outcome, err = images.EnsureRedisAs(cctx, cli, ref, &log)
	if err != nil {
		t.Fatalf("EnsureRedis again: %v", err)
	}
	if outcome != images.OutcomePresent {
		t.Errorf("second EnsureRedis outcome = %q, want %q", outcome, images.OutcomePresent)
	}
	if got := inspectImage(t, cli, ref).ID; got != img.ID {
		t.Errorf("second EnsureRedis replaced the image: %s, was %s", got, img.ID)
	}
}
