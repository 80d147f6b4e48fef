package images_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// scratchImages returns a fresh unique tag, removed when the test ends,
// and a function to register image IDs the test created under that tag.
// Identical builds share an image (the builder cache makes a test build
// of nginx identical to NginxImage), so IDs are removed only once nothing
// tags them. Call it before testenv.Project so that the project's
// containers are gone when the images are removed.
func scratchImages(t testing.TB, cli *client.Client, prefix string) (tag string, track func(id string)) {
	t.Helper()
	var ids []string
	track = func(id string) { ids = append(ids, id) }
	tag = prefix + "-" + randomHex(t) + ":test"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Removing a tag only untags an image that has other tags.
		_, err := cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove image %s: %v", tag, err)
		}
		for _, id := range ids {
			img, err := cli.ImageInspect(ctx, id)
			if err != nil || len(img.RepoTags) > 0 {
				continue // gone already, or someone else's image too
			}
			if _, err := cli.ImageRemove(ctx, id, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
				t.Errorf("remove image %s: %v", id, err)
			}
		}
	})
	return tag, track
}

func randomHex(t testing.TB) string {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random name: %v", err)
	}
	return hex.EncodeToString(b[:])
}

func inspectImage(t testing.TB, cli *client.Client, ref string) client.ImageInspectResult {
	t.Helper()
	img, err := cli.ImageInspect(t.Context(), ref)
	if err != nil {
		t.Fatalf("inspect image %s: %v", ref, err)
	}
	if img.Config == nil {
		t.Fatalf("image %s has no config", ref)
	}
	return img
}

// moduleRoot is the SwiftDeploy source tree (tests run in deploy/images).
func moduleRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}

// run is a container to run once.
type run struct {
	image   string
	cmd     []string
	project string
	network string
	files   map[string]string // path inside the container -> content, copied in before start
}

// runOnce creates, fills, starts and waits for a container labelled with
// the test's project, then removes it and checks that it is gone. It
// returns the container's output and exit code.
func runOnce(t testing.TB, cli *client.Client, r run) (string, int64) {
	t.Helper()
	ctx := t.Context()
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:  r.image,
			Cmd:    r.cmd,
			Labels: map[string]string{stack.LabelProject: r.project},
		},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(r.network)},
	})
	if err != nil {
		t.Fatalf("create container from %s: %v", r.image, err)
	}
	defer func() {
		if _, err := cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Errorf("remove container: %v", err)
		}
		if _, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
			t.Errorf("container %s still exists after removal (inspect: %v)", created.ID, err)
		}
	}()
	if len(r.files) > 0 {
		_, err := cli.CopyToContainer(ctx, created.ID, client.CopyToContainerOptions{
			DestinationPath: "/",
			Content:         tarOf(t, r.files),
		})
		if err != nil {
			t.Fatalf("copy files into container: %v", err)
		}
	}
	wait := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	var exitCode int64
	select {
	case res := <-wait.Result:
		exitCode = res.StatusCode
	case err := <-wait.Error:
		t.Fatalf("wait for container: %v", err)
	}
	logs, err := cli.ContainerLogs(ctx, created.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("container logs: %v", err)
	}
	defer logs.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, logs); err != nil {
		t.Fatalf("read container logs: %v", err)
	}
	return out.String(), exitCode
}

func tarOf(t testing.TB, files map[string]string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}
