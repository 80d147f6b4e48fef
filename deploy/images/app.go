package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/moby/moby/client"
)

//go:embed app.Dockerfile
var appDockerfile []byte

// demoAppPackage is the package, relative to the module root, compiled into
// the app images.
const demoAppPackage = "./demo-app"

// versionPattern keeps versions to what is safe inside -ldflags and labels.
var versionPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]*$`)

// EnsureApp builds the demo-app image FROM scratch with a static binary
// (version baked in with -ldflags). The binary is always compiled (the Go
// build cache makes that cheap); the image is rebuilt only when the binary
// or Dockerfile differ from those the existing image was built from.
func EnsureApp(ctx context.Context, cli *client.Client, tag, version string, log io.Writer) error {
	if err := checkAppArgs(tag, version); err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("ensure image %s: %w", tag, err)
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return fmt.Errorf("ensure image %s: %w", tag, err)
	}
	return ensureApp(ctx, cli, root, demoAppPackage, tag, version, log)
}

// ensureApp is EnsureApp for any main package pkg of the module in moduleDir.
func ensureApp(ctx context.Context, cli *client.Client, moduleDir, pkg, tag, version string, log io.Writer) error {
	if err := checkAppArgs(tag, version); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "swiftdeploy-app-")
	if err != nil {
		return fmt.Errorf("ensure image %s: %w", tag, err)
	}
	defer os.RemoveAll(tmp)

	bin := filepath.Join(tmp, "app")
	if err := goBuild(ctx, moduleDir, pkg, version, bin); err != nil {
		return fmt.Errorf("ensure image %s: %w", tag, err)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("ensure image %s: read binary: %w", tag, err)
	}
	// Go builds are reproducible, so equal digests mean an equal image.
	h := sha256.New()
	h.Write(appDockerfile)
	h.Write(binary)
	digest := hex.EncodeToString(h.Sum(nil))

	old, found, err := inspectImage(ctx, cli, tag)
	if err != nil {
		return err
	}
	if found && old.labels[LabelContextDigest] == digest {
		fmt.Fprintf(log, "%s: up to date (%s %s)\n", tag, pkg, version)
		return nil
	}
	labels := map[string]string{
		LabelSource:        "demo-app " + version,
		LabelVersion:       version,
		LabelContextDigest: digest,
	}
	err = buildImage(ctx, cli, tag, appDockerfile, labels, func(cw *contextWriter) error {
		return cw.file("app", 0o755, binary)
	}, log)
	if err != nil {
		return err
	}
	if found {
		removeIfDangling(ctx, cli, old.id)
	}
	pruneSuperseded(ctx, cli)
	fmt.Fprintf(log, "%s: built from %s (version %s)\n", tag, pkg, version)
	return nil
}

// removeIfDangling removes the image a rebuild superseded if nothing else
// refers to it. A container still using it makes the removal fail, which
// is fine: the image goes when the container does (or on image prune).
func removeIfDangling(ctx context.Context, cli *client.Client, id string) {
	img, err := cli.ImageInspect(ctx, id)
	if err != nil || len(img.RepoTags) > 0 {
		return
	}
	// PruneChildren also drops the classic builder's untagged parent
	// images (one per Dockerfile step) that nothing else shares.
	cli.ImageRemove(ctx, id, client.ImageRemoveOptions{PruneChildren: true})
}

// pruneSuperseded removes app images that earlier rebuilds left untagged
// because a container still used it then. Only images older than ten
// minutes go: a concurrent build's image is untagged for an instant.
func pruneSuperseded(ctx context.Context, cli *client.Client) {
	filters := make(client.Filters).
		Add("dangling", "true").
		Add("label", LabelContextDigest).
		Add("until", "10m")
	cli.ImagePrune(ctx, client.ImagePruneOptions{Filters: filters})
}

func checkAppArgs(tag, version string) error {
	if tag == "" || strings.ContainsAny(tag, " \t\n") {
		return fmt.Errorf("invalid image tag %q", tag)
	}
	if !versionPattern.MatchString(version) {
		return fmt.Errorf("invalid version %q for image %s: use letters, digits and . _ + -", version, tag)
	}
	return nil
}

// goBuild compiles a static linux binary of pkg with main.version set.
func goBuild(ctx context.Context, moduleDir, pkg, version, out string) error {
	if _, err := os.Stat(filepath.Join(moduleDir, pkg)); err != nil {
		return fmt.Errorf("app source %s: %w", pkg, err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go toolchain is needed to build %s: %w", pkg, err)
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+version,
		"-o", out, pkg)
	cmd.Dir = moduleDir
	// The image is FROM scratch: no libc, so no cgo.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, bytes.TrimSpace(output))
	}
	return nil
}

// moduleRoot returns the nearest directory at or above dir holding go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		_, err := os.Stat(filepath.Join(d, "go.mod"))
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("find module root: %w", err)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("find module root: no go.mod in %s or above (run from the SwiftDeploy source tree)", dir)
		}
		d = parent
	}
}
