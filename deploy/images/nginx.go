package images

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

//go:embed nginx.Dockerfile
var nginxDockerfile []byte

// nginxRoot holds the static files of the locally built nginx image
// (users, groups, nsswitch.conf, a default nginx.conf).
//
//go:embed nginxroot
var nginxRoot embed.FS

// pullTimeout bounds the attempt to pull the official image: on a host
// without a registry it fails within a second or hangs on the network.
const pullTimeout = 15 * time.Second

// Where Debian installs nginx. On Debian 12 /usr/sbin/nginx is in package
// "nginx" (nginx-light and nginx-core only add modules) and mime.types in
// "nginx-common".
const (
	hostNginx     = "/usr/sbin/nginx"
	hostMimeTypes = "/etc/nginx/mime.types"
)

var debianNginxPackages = []string{"nginx", "nginx-common"}

// EnsureNginx makes NginxImage available: present already, pulled where a
// registry answers, or built locally from Debian's nginx package. Returns
// how (OutcomePresent, OutcomePulled or OutcomeBuilt).
func EnsureNginx(ctx context.Context, cli *client.Client, log io.Writer) (string, error) {
	return ensureNginx(ctx, cli, NginxImage, log)
}

// ensureNginx is EnsureNginx for any image reference.
func ensureNginx(ctx context.Context, cli *client.Client, ref string, log io.Writer) (string, error) {
	if found, err := present(ctx, cli, ref, log); err != nil {
		return "", err
	} else if found {
		return OutcomePresent, nil
	}
	pullErr := pull(ctx, cli, ref)
	if pullErr == nil {
		fmt.Fprintf(log, "%s: %s\n", ref, OutcomePulled)
		return OutcomePulled, nil
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("ensure image %s: %w", ref, err)
	}
	fmt.Fprintf(log, "%s: pull failed (%v); building from Debian's nginx package\n", ref, pullErr)
	if err := buildNginx(ctx, cli, ref, log); err != nil {
		return "", err
	}
	fmt.Fprintf(log, "%s: %s\n", ref, OutcomeBuilt)
	return OutcomeBuilt, nil
}

func pull(ctx context.Context, cli *client.Client, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	resp, err := cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	// A pull that starts but fails reports the error inside the stream.
	return resp.Wait(ctx)
}

// buildNginx builds ref FROM scratch out of Debian's nginx binary, its
// shared libraries and the few files nginx needs, then checks that the
// image runs `nginx -t`; a broken image is removed again.
func buildNginx(ctx context.Context, cli *client.Client, ref string, log io.Writer) error {
	src, err := findNginx(ctx)
	if err != nil {
		return fmt.Errorf("build image %s: %w", ref, err)
	}
	defer src.cleanup()

	libs, err := sharedLibraries(ctx, src.binary)
	if err != nil {
		return fmt.Errorf("build image %s: %w", ref, err)
	}
	labels := map[string]string{
		LabelSource:  "debian-nginx " + src.version,
		LabelVersion: src.version,
	}
	err = buildImage(ctx, cli, ref, nginxDockerfile, labels, func(cw *contextWriter) error {
		return addNginxRootfs(cw, src, libs)
	}, log)
	if err != nil {
		return err
	}
	return removeIfBroken(ctx, cli, ref, checkNginxImage(ctx, cli, ref))
}

// addNginxRootfs adds rootfs/, the nginx image's whole filesystem.
func addNginxRootfs(cw *contextWriter, src *nginxSource, libs []string) error {
	dirs := []struct {
		name string
		mode int64
	}{
		{"rootfs", 0o755},
		{"rootfs/tmp", 0o1777},
		{"rootfs/run", 0o755},
		{"rootfs/var/lib/nginx", 0o755},
		{"rootfs/var/log/nginx", 0o755},
		{"rootfs/etc/swiftdeploy", 0o755},
	}
	for _, d := range dirs {
		if err := cw.dir(d.name, d.mode); err != nil {
			return err
		}
	}
	// Like the official image: logs at Debian's default paths reach docker logs.
	if err := cw.symlink("rootfs/var/log/nginx/access.log", "/dev/stdout"); err != nil {
		return err
	}
	if err := cw.symlink("rootfs/var/log/nginx/error.log", "/dev/stderr"); err != nil {
		return err
	}
	err := fs.WalkDir(nginxRoot, "nginxroot", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := nginxRoot.ReadFile(name)
		if err != nil {
			return err
		}
		return cw.file("rootfs"+strings.TrimPrefix(name, "nginxroot"), 0o644, data)
	})
	if err != nil {
		return fmt.Errorf("add static files: %w", err)
	}
	if err := cw.copyFile("rootfs"+hostNginx, 0o755, src.binary); err != nil {
		return err
	}
	if err := cw.copyFile("rootfs"+hostMimeTypes, 0o644, src.mimeTypes); err != nil {
		return err
	}
	for _, lib := range libs {
		if err := cw.copyFile("rootfs"+lib, 0o755, lib); err != nil {
			return err
		}
	}
	return nil
}

// nginxSource is a Debian nginx binary and mime.types on the host.
type nginxSource struct {
	binary    string
	mimeTypes string
	version   string // Debian package version
	tmpDir    string // removed by cleanup when the package was downloaded
}

func (s *nginxSource) cleanup() {
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
	}
}

// findNginx uses the host's nginx when it comes from a Debian package, and
// otherwise downloads and unpacks the package (no install needed).
func findNginx(ctx context.Context) (*nginxSource, error) {
	if fileExists(hostNginx) && fileExists(hostMimeTypes) {
		if version, err := hostPackageVersion(ctx, hostNginx); err == nil {
			return &nginxSource{binary: hostNginx, mimeTypes: hostMimeTypes, version: version}, nil
		}
	}
	return downloadNginx(ctx)
}

// hostPackageVersion returns the version of the Debian package owning file.
func hostPackageVersion(ctx context.Context, file string) (string, error) {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-S", file).Output()
	if err != nil {
		return "", fmt.Errorf("find package of %s: %w", file, err)
	}
	// "nginx: /usr/sbin/nginx"
	pkg, _, ok := strings.Cut(strings.TrimSpace(string(out)), ":")
	if !ok || pkg == "" || strings.ContainsAny(pkg, " ,") {
		return "", fmt.Errorf("find package of %s: unexpected dpkg-query output %q", file, out)
	}
	version, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("version of package %s: %w", pkg, err)
	}
	return strings.TrimSpace(string(version)), nil
}

// downloadNginx fetches Debian's nginx packages with apt-get download and
// unpacks them with dpkg-deb into a temporary directory.
func downloadNginx(ctx context.Context) (_ *nginxSource, err error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return nil, fmt.Errorf("nginx is not installed and apt-get is not available to fetch it: install Debian's nginx package (apt-get install nginx)")
	}
	tmp, err := os.MkdirTemp("", "swiftdeploy-nginx-")
	if err != nil {
		return nil, fmt.Errorf("download nginx: %w", err)
	}
	src := &nginxSource{tmpDir: tmp}
	defer func() {
		if err != nil {
			src.cleanup()
		}
	}()

	// The sandbox user cannot write into a private temp dir; root downloads.
	args := append([]string{"download", "-q", "-o", "APT::Sandbox::User=root"}, debianNginxPackages...)
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apt-get download %s: %w\n%s\n(run apt-get update, or install Debian's nginx package: apt-get install nginx)",
			strings.Join(debianNginxPackages, " "), err, bytes.TrimSpace(out))
	}
	root := filepath.Join(tmp, "root")
	for _, pkg := range debianNginxPackages {
		debs, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
		if len(debs) != 1 {
			return nil, fmt.Errorf("apt-get download %s: expected one .deb, found %d", pkg, len(debs))
		}
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("unpack %s: %w\n%s", filepath.Base(debs[0]), err, bytes.TrimSpace(out))
		}
		if pkg == debianNginxPackages[0] {
			out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", debs[0], "Version").Output()
			if err != nil {
				return nil, fmt.Errorf("read version of %s: %w", filepath.Base(debs[0]), err)
			}
			src.version = strings.TrimSpace(string(out))
		}
	}
	src.binary = filepath.Join(root, hostNginx)
	src.mimeTypes = filepath.Join(root, hostMimeTypes)
	for _, f := range []string{src.binary, src.mimeTypes} {
		if !fileExists(f) {
			return nil, fmt.Errorf("packages %s hold no %s on this Debian release",
				strings.Join(debianNginxPackages, ", "), strings.TrimPrefix(f, root))
		}
	}
	return src, nil
}

// sharedLibraries lists the absolute paths of the libraries (and the
// dynamic loader) binary needs, as resolved by ldd on this host.
func sharedLibraries(ctx context.Context, binary string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", binary).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w\n%s", binary, err, bytes.TrimSpace(out))
	}
	libs, err := parseLdd(string(out))
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", binary, err)
	}
	return libs, nil
}

// parseLdd extracts library paths from ldd output such as
//
//	linux-vdso.so.1 (0x00007ffd...)
//	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f...)
//	/lib64/ld-linux-x86-64.so.2 (0x00007f...)
//
// The vDSO has no file and is skipped; a library ldd cannot find is an error.
func parseLdd(out string) ([]string, error) {
	var libs, missing []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.Contains(line, "statically linked") {
			continue
		}
		name, target, hasArrow := strings.Cut(line, "=>")
		if hasArrow && strings.TrimSpace(target) == "not found" {
			missing = append(missing, strings.TrimSpace(name))
			continue
		}
		file := line
		if hasArrow {
			file = target
		}
		fields := strings.Fields(file)
		if len(fields) == 0 || !path.IsAbs(fields[0]) {
			continue
		}
		libs = append(libs, path.Clean(fields[0]))
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("libraries not found on this host: %s (install nginx's dependencies, e.g. apt-get install nginx)", strings.Join(missing, ", "))
	}
	if len(libs) == 0 {
		return nil, errors.New("no shared libraries or dynamic loader listed")
	}
	return libs, nil
}

func fileExists(name string) bool {
	info, err := os.Stat(name)
	return err == nil && info.Mode().IsRegular()
}

// checkNginxImage runs `nginx -t` (with the image's default config, which
// sets user nobody nogroup and pid/temp paths under /tmp) in a throwaway
// container.
func checkNginxImage(ctx context.Context, cli *client.Client, ref string) error {
	out, exitCode, err := runOnce(ctx, cli, ref, []string{"nginx", "-t"})
	if err != nil {
		return fmt.Errorf("check image %s: %w", ref, err)
	}
	if exitCode != 0 {
		return fmt.Errorf("check image %s: nginx -t exited with %d: %s", ref, exitCode, strings.TrimSpace(out))
	}
	return nil
}

// runOnce runs cmd in a new container of image and returns its combined
// output and exit code. The container is removed afterwards.
func runOnce(ctx context.Context, cli *client.Client, image string, cmd []string) (output string, exitCode int64, err error) {
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Cmd: cmd},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		return "", 0, fmt.Errorf("create container from %s: %w", image, err)
	}
	defer func() {
		// Cleanup must happen even when ctx has been cancelled.
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, rmErr := cli.ContainerRemove(rmCtx, created.ID, client.ContainerRemoveOptions{Force: true}); rmErr != nil && !cerrdefs.IsNotFound(rmErr) {
			err = errors.Join(err, fmt.Errorf("remove container %s: %w", shortID(created.ID), rmErr))
		}
	}()
	wait := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return "", 0, fmt.Errorf("start container %s: %w", shortID(created.ID), err)
	}
	select {
	case res := <-wait.Result:
		exitCode = res.StatusCode
	case err := <-wait.Error:
		return "", 0, fmt.Errorf("wait for container %s: %w", shortID(created.ID), err)
	}
	logs, err := cli.ContainerLogs(ctx, created.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", 0, fmt.Errorf("read logs of container %s: %w", shortID(created.ID), err)
	}
	defer logs.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, logs); err != nil {
		return "", 0, fmt.Errorf("read logs of container %s: %w", shortID(created.ID), err)
	}
	return buf.String(), exitCode, nil
}

// shortID is the 12-character form Docker shows for an object ID.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
