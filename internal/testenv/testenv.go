// Package testenv holds helpers for tests that run against the real Docker
// engine: a pinged client, the images SwiftDeploy needs, and per-test
// project names whose containers and networks are removed afterwards.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/citest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// pingTimeout bounds the wait for the engine before a test gives up on it.
const pingTimeout = 5 * time.Second

// Docker returns a client to the real engine after a ping. Under CI=true an
// unreachable engine fails the test; otherwise it skips. The client is
// closed when the test ends.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		unavailable(t, "create Docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	// The engine here speaks API 1.41; negotiation downgrades the client.
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		unavailable(t, "Docker engine unreachable: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// unavailable fails the test in CI, where Docker is required, and skips it
// elsewhere.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	citest.Unavailable(t, format, args...)
}

var (
	imagesOnce sync.Once
	imagesErr  error
)

// imagesTimeout covers cold builds of all images on a slow machine.
const imagesTimeout = 10 * time.Minute

// Images ensures images.EnsureAll once per test process (sync.Once),
// failing t on error.
func Images(t testing.TB, cli *client.Client) {
	t.Helper()
	imagesOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), imagesTimeout)
		defer cancel()
		var log bytes.Buffer
		imagesErr = withModuleLock(func() error {
			return images.EnsureAll(ctx, cli, &log)
		})
		if imagesErr != nil {
			imagesErr = fmt.Errorf("%w\nbuild log:\n%s", imagesErr, log.Bytes())
		}
	})
	if imagesErr != nil {
		t.Fatalf("ensure images: %v", imagesErr)
	}
}

// withModuleLock runs fn holding an exclusive flock on the module's root
// directory. `go test ./...` runs the test binaries of several packages at
// once; without the lock each would build the missing images and leave the
// losers' copies behind untagged. Locking the directory creates no file.
func withModuleLock(fn func() error) error {
	dir, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("lock module root: %w", err)
	}
	for !fileExists(filepath.Join(dir, "go.mod")) {
		parent := filepath.Dir(dir)
		if parent == dir {
			return errors.New("lock module root: no go.mod above the test's directory")
		}
		dir = parent
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("lock module root: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock module root %s: %w", dir, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// ProjectPrefix starts every project name Project returns, so leftovers of
// killed test runs are easy to spot (and remove).
const ProjectPrefix = "sdt-"

// cleanupTimeout bounds RemoveProject in a test's cleanup.
const cleanupTimeout = time.Minute

// Project returns a unique valid project name for a test, e.g. "sdt-3f9a1c",
// and registers a t.Cleanup that force-removes every container and network
// labelled io.swiftdeploy.project=<name>.
func Project(t testing.TB, cli *client.Client) string {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("generate project name: %v", err)
	}
	project := ProjectPrefix + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		// The test's context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := RemoveProject(ctx, cli, project); err != nil {
			t.Errorf("clean up project %s: %v", project, err)
		}
	})
	return project
}

// RemoveProject force-removes containers (with their anonymous volumes),
// then networks, then named volumes carrying the project label. It carries on past failures
// and returns them all.
func RemoveProject(ctx context.Context, cli *client.Client, project string) error {
	if project == "" {
		return errors.New("remove project: empty project name")
	}
	filter := make(client.Filters).Add("label", stack.LabelProject+"="+project)

	containers, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
	if err != nil {
		return fmt.Errorf("list containers of project %s: %w", project, err)
	}
	var errs []error
	for _, c := range containers.Items {
		_, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", containerName(c.Names, c.ID), err))
		}
	}

	// The names that kept the images of the project's releases
	// (swiftdeploy-release/PROJECT/SERVICE:REV): only the names go.
	kept, err := cli.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("reference", "swiftdeploy-release/"+project+"/*")})
	if err != nil {
		errs = append(errs, fmt.Errorf("list kept release images of project %s: %w", project, err))
	}
	for _, img := range kept.Items {
		for _, tag := range img.RepoTags {
			if !strings.HasPrefix(tag, "swiftdeploy-release/"+project+"/") {
				continue
			}
			if _, err := cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove image name %s: %w", tag, err))
			}
		}
	}

	// Networks go last: a network with containers attached cannot be removed.
	networks, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: filter})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list networks of project %s: %w", project, err))...)
	}
	for _, n := range networks.Items {
		_, err := cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}
	// Volumes last of all: a volume a container mounts cannot be removed.
	volumes, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: filter})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list volumes of project %s: %w", project, err))...)
	}
	for _, v := range volumes.Items {
		_, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

// containerName is the readable name of a listed container.
func containerName(names []string, id string) string {
	if len(names) > 0 {
		return strings.TrimPrefix(names[0], "/") // listed names start with "/"
	}
	return id
}
