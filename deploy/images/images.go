// Package images makes the images SwiftDeploy runs available on a Docker
// host that may have no registry: the demo app is compiled and packed into a
// FROM scratch image, and nginx is pulled or, failing that, assembled from
// Debian's nginx package. Everything is built with the classic builder from
// a tar context, so no base image is ever pulled.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Image references SwiftDeploy's manifests and tests use.
const (
	AppImage   = "swift-deploy-1-node:latest" // demo-app, VERSION 1.0.0
	AppImageV2 = "swift-deploy-1-node:v2"     // demo-app, VERSION 2.0.0 (canary tests)
	NginxImage = "nginx:latest"
)

// Versions baked into AppImage and AppImageV2.
const (
	AppVersion   = "1.0.0"
	AppV2Version = "2.0.0"
)

// Labels on images built here.
const (
	// LabelSource says where an image came from, e.g. "demo-app 1.0.0" or
	// "debian-nginx 1.22.1-9+deb12u11".
	LabelSource = stack.LabelPrefix + "image-source"
	// LabelContextDigest is the sha256 of the Dockerfile and app binary an
	// app image was built from; a rebuild is skipped when a fresh build of
	// the binary gives the same digest.
	LabelContextDigest = stack.LabelPrefix + "context-digest"
	// LabelVersion is the standard OCI version annotation.
	LabelVersion = "org.opencontainers.image.version"
)

// Outcomes reported by EnsureNginx.
const (
	OutcomePresent = "present"
	OutcomePulled  = "pulled"
	OutcomeBuilt   = "built from Debian nginx package"
)

// EnsureAll ensures AppImage, AppImageV2 and NginxImage.
func EnsureAll(ctx context.Context, cli *client.Client, log io.Writer) error {
	if err := EnsureApp(ctx, cli, AppImage, AppVersion, log); err != nil {
		return err
	}
	if err := EnsureApp(ctx, cli, AppImageV2, AppV2Version, log); err != nil {
		return err
	}
	_, err := EnsureNginx(ctx, cli, log)
	return err
}

// present reports whether ref is there locally already, and logs it when
// it is: an image built from Debian's packages (nginx, redis) is never
// rebuilt over one that exists.
func present(ctx context.Context, cli *client.Client, ref string, log io.Writer) (bool, error) {
	_, found, err := inspectImage(ctx, cli, ref)
	if err != nil || !found {
		return false, err
	}
	fmt.Fprintf(log, "%s: %s\n", ref, OutcomePresent)
	return true, nil
}

// removeIfBroken removes ref when its check after the build failed
// (checkErr), so that a broken image is never taken as present next time.
func removeIfBroken(ctx context.Context, cli *client.Client, ref string, checkErr error) error {
	if checkErr == nil {
		return nil
	}
	if _, err := cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil {
		return errors.Join(checkErr, fmt.Errorf("remove broken image %s: %w", ref, err))
	}
	return checkErr
}

// localImage is what ensuring an image needs to know about an existing one.
type localImage struct {
	id     string
	labels map[string]string
}

// inspectImage looks ref up locally; found is false when there is no such image.
func inspectImage(ctx context.Context, cli *client.Client, ref string) (img localImage, found bool, err error) {
	resp, err := cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return localImage{}, false, nil
	}
	if err != nil {
		return localImage{}, false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	img.id = resp.ID
	if resp.Config != nil {
		img.labels = resp.Config.Labels
	}
	return img, true, nil
}

// buildImage builds tag from dockerfile plus the files addFiles writes into
// the context (nil for none). The labels become one LABEL instruction:
// the classic builder commits a container per instruction, and the build
// API's labels option would add one per label.
func buildImage(ctx context.Context, cli *client.Client, tag string, dockerfile []byte, labels map[string]string, addFiles func(*contextWriter) error, log io.Writer) error {
	var buildCtx bytes.Buffer
	cw := newContextWriter(&buildCtx)
	if err := cw.file("Dockerfile", 0o644, withLabels(dockerfile, labels)); err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	if addFiles != nil {
		if err := addFiles(cw); err != nil {
			return fmt.Errorf("build image %s: %w", tag, err)
		}
	}
	if err := cw.close(); err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}

	resp, err := cli.ImageBuild(ctx, &buildCtx, client.ImageBuildOptions{
		Tags:       []string{tag},
		Dockerfile: "Dockerfile",
		// Builds happen only when the image is missing or its input changed,
		// so the cache would rarely help; without it a build never shares an
		// image ID with another tag built from the same files.
		NoCache:     true,
		Remove:      true,
		ForceRemove: true,
		// The classic builder needs no session, and FROM scratch needs no pull.
		Version: build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	defer resp.Body.Close()
	if err := readBuildStream(resp.Body, log); err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	return nil
}

// withLabels appends a LABEL instruction with labels, sorted by key.
func withLabels(dockerfile []byte, labels map[string]string) []byte {
	if len(labels) == 0 {
		return dockerfile
	}
	var b bytes.Buffer
	b.Write(dockerfile)
	if len(dockerfile) > 0 && dockerfile[len(dockerfile)-1] != '\n' {
		b.WriteByte('\n')
	}
	b.WriteString("LABEL")
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		// Go quoting matches Dockerfile quoting for the plain values used here.
		fmt.Fprintf(&b, " %s=%q", k, labels[k])
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// readBuildStream copies the builder's output to log and returns the error
// the stream reports: a failed build still answers HTTP 200.
func readBuildStream(r io.Reader, log io.Writer) error {
	dec := json.NewDecoder(r)
	for {
		var msg jsonstream.Message
		err := dec.Decode(&msg)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read build output: %w", err)
		}
		if msg.Error != nil {
			return errors.New(strings.TrimSpace(msg.Error.Message))
		}
		if msg.Stream != "" {
			io.WriteString(log, msg.Stream)
		}
	}
}

// contextWriter writes a build context tar. Timestamps are fixed so that
// identical inputs give identical contexts (and builder cache hits), and
// every parent directory gets its own entry so modes never depend on the
// daemon's defaults.
type contextWriter struct {
	tw   *tar.Writer
	dirs map[string]bool
}

func newContextWriter(w io.Writer) *contextWriter {
	return &contextWriter{tw: tar.NewWriter(w), dirs: map[string]bool{}}
}

var epoch = time.Unix(0, 0)

func (c *contextWriter) write(hdr *tar.Header, data []byte) error {
	hdr.ModTime = epoch
	if err := c.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("add %s to build context: %w", hdr.Name, err)
	}
	if _, err := c.tw.Write(data); err != nil {
		return fmt.Errorf("add %s to build context: %w", hdr.Name, err)
	}
	return nil
}

// parents adds the missing parent directories of name with mode 0755.
func (c *contextWriter) parents(name string) error {
	parent := path.Dir(strings.TrimSuffix(name, "/"))
	if parent == "." || parent == "/" || c.dirs[parent] {
		return nil
	}
	return c.dir(parent, 0o755)
}

func (c *contextWriter) dir(name string, mode int64) error {
	name = strings.TrimSuffix(name, "/")
	if err := c.parents(name); err != nil {
		return err
	}
	c.dirs[name] = true
	return c.write(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}, nil)
}

func (c *contextWriter) file(name string, mode int64, data []byte) error {
	if err := c.parents(name); err != nil {
		return err
	}
	return c.write(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data)
}

func (c *contextWriter) symlink(name, target string) error {
	if err := c.parents(name); err != nil {
		return err
	}
	return c.write(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, nil)
}

// copyFile adds the host file src (symlinks followed) as name.
func (c *contextWriter) copyFile(name string, mode int64, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("add %s to build context: %w", name, err)
	}
	return c.file(name, mode, data)
}

func (c *contextWriter) close() error {
	if err := c.tw.Close(); err != nil {
		return fmt.Errorf("finish build context: %w", err)
	}
	return nil
}
