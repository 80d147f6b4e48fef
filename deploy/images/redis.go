package images

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/moby/moby/client"
)

//go:embed redis.Dockerfile
var redisDockerfile []byte

// RedisImage is the accessory image of the several-service tests: Redis
// from Debian's package, appendonly into /data. It is never pulled (its
// name is this project's), only built.
const RedisImage = "swiftdeploy-redis:latest"

// OutcomeBuiltRedis is EnsureRedis's outcome when it built the image.
const OutcomeBuiltRedis = "built from Debian redis package"

// Debian 12 ships the server binary in redis-tools (redis-server's
// /usr/bin/redis-server is a symlink to redis-check-rdb: Redis picks its
// role from argv[0]); jemalloc and lzf are rarely installed on a host, so
// they are fetched too. The rest (libc, libssl, libsystemd, libatomic) is
// taken from the host, as for nginx.
var debianRedisPackages = []string{"redis-tools", "libjemalloc2", "liblzf1"}

const (
	redisServerBinary = "/usr/bin/redis-check-rdb" // run as redis-server
	redisCLIBinary    = "/usr/bin/redis-cli"
)

// EnsureRedis makes RedisImage available: present already, or built from
// Debian's redis package. Returns OutcomePresent or OutcomeBuiltRedis.
func EnsureRedis(ctx context.Context, cli *client.Client, log io.Writer) (string, error) {
	return ensureRedis(ctx, cli, RedisImage, log)
}

// ensureRedis is EnsureRedis for any image reference.
func ensureRedis(ctx context.Context, cli *client.Client, ref string, log io.Writer) (string, error) {
	if found, err := present(ctx, cli, ref, log); err != nil {
		return "", err
	} else if found {
		return OutcomePresent, nil
	}
	if err := buildRedis(ctx, cli, ref, log); err != nil {
		return "", err
	}
	fmt.Fprintf(log, "%s: %s\n", ref, OutcomeBuiltRedis)
	return OutcomeBuiltRedis, nil
}

// buildRedis builds ref FROM scratch out of Debian's redis binaries and
// their shared libraries, then checks that `redis-server --version` runs
// in it; a broken image is removed again.
func buildRedis(ctx context.Context, cli *client.Client, ref string, log io.Writer) error {
	tmp, err := os.MkdirTemp("", "swiftdeploy-redis-")
	if err != nil {
		return fmt.Errorf("build image %s: %w", ref, err)
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	versions, err := downloadDebs(ctx, tmp, root, debianRedisPackages)
	if err != nil {
		return fmt.Errorf("build image %s: %w", ref, err)
	}
	server, cliBin := filepath.Join(root, redisServerBinary), filepath.Join(root, redisCLIBinary)
	var libs []string
	for _, bin := range []string{server, cliBin} {
		if !fileExists(bin) {
			return fmt.Errorf("build image %s: packages %s hold no %s on this Debian release",
				ref, strings.Join(debianRedisPackages, ", "), strings.TrimPrefix(bin, root))
		}
		l, err := sharedLibrariesWithin(ctx, bin, root)
		if err != nil {
			return fmt.Errorf("build image %s: %w", ref, err)
		}
		libs = append(libs, l...)
	}
	version := versions["redis-tools"]
	labels := map[string]string{
		LabelSource:  "debian-redis " + version,
		LabelVersion: version,
	}
	err = buildImage(ctx, cli, ref, redisDockerfile, labels, func(cw *contextWriter) error {
		for _, d := range []struct {
			name string
			mode int64
		}{{"rootfs", 0o755}, {"rootfs/tmp", 0o1777}, {"data", 0o755}} {
			if err := cw.dir(d.name, d.mode); err != nil {
				return err
			}
		}
		if err := cw.copyFile("rootfs/usr/bin/redis-server", 0o755, server); err != nil {
			return err
		}
		if err := cw.copyFile("rootfs"+redisCLIBinary, 0o755, cliBin); err != nil {
			return err
		}
		added := map[string]bool{}
		for _, lib := range libs {
			// A library unpacked from a package goes where the package puts it.
			inImage := strings.TrimPrefix(lib, root)
			if added[inImage] {
				continue
			}
			added[inImage] = true
			if err := cw.copyFile("rootfs"+inImage, 0o755, lib); err != nil {
				return err
			}
		}
		return nil
	}, log)
	if err != nil {
		return err
	}
	return removeIfBroken(ctx, cli, ref, checkRedisImage(ctx, cli, ref))
}

// downloadDebs fetches Debian packages with apt-get download into dir and
// unpacks them with dpkg-deb into root (no install needed). It returns
// each package's version.
func downloadDebs(ctx context.Context, dir, root string, pkgs []string) (map[string]string, error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return nil, fmt.Errorf("apt-get is not available to fetch Debian's %s", strings.Join(pkgs, ", "))
	}
	// The sandbox user cannot write into a private temp dir; root downloads.
	args := append([]string{"download", "-q", "-o", "APT::Sandbox::User=root"}, pkgs...)
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apt-get download %s: %w\n%s\n(run apt-get update)", strings.Join(pkgs, " "), err, bytes.TrimSpace(out))
	}
	versions := map[string]string{}
	for _, pkg := range pkgs {
		debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		if len(debs) != 1 {
			return nil, fmt.Errorf("apt-get download %s: expected one .deb, found %d", pkg, len(debs))
		}
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("unpack %s: %w\n%s", filepath.Base(debs[0]), err, bytes.TrimSpace(out))
		}
		out, err := exec.CommandContext(ctx, "dpkg-deb", "-f", debs[0], "Version").Output()
		if err != nil {
			return nil, fmt.Errorf("read version of %s: %w", filepath.Base(debs[0]), err)
		}
		versions[pkg] = strings.TrimSpace(string(out))
	}
	return versions, nil
}

// sharedLibrariesWithin is sharedLibraries for a binary unpacked under
// root whose libraries may be unpacked there too: ldd searches root's
// library directories first.
func sharedLibrariesWithin(ctx context.Context, binary, root string) ([]string, error) {
	var dirs []string
	for _, pattern := range []string{"usr/lib/*-linux-gnu*", "lib/*-linux-gnu*", "usr/lib", "lib"} {
		found, _ := filepath.Glob(filepath.Join(root, pattern))
		dirs = append(dirs, found...)
	}
	cmd := exec.CommandContext(ctx, "ldd", binary)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+strings.Join(dirs, ":"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w\n%s", binary, err, bytes.TrimSpace(out))
	}
	libs, err := parseLdd(string(out))
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", binary, err)
	}
	return libs, nil
}

// checkRedisImage runs `redis-server --version` in a throwaway container.
func checkRedisImage(ctx context.Context, cli *client.Client, ref string) error {
	out, exitCode, err := runOnce(ctx, cli, ref, []string{"redis-server", "--version"})
	if err != nil {
		return fmt.Errorf("check image %s: %w", ref, err)
	}
	if exitCode != 0 || !strings.Contains(out, "Redis server v=") {
		return fmt.Errorf("check image %s: redis-server --version exited with %d: %s", ref, exitCode, strings.TrimSpace(out))
	}
	return nil
}
