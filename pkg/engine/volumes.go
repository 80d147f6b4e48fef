package engine

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Volume is a named Docker volume as observed.
type Volume struct {
	Name string
	// Owned reports the project's label: a volume of that name that
	// someone else made is never used nor removed.
	Owned bool
}

// FindVolumes returns those of names that exist, with their ownership.
func (e *Engine) FindVolumes(ctx context.Context, names []string, project string) ([]Volume, error) {
	var out []Volume
	for _, n := range names {
		res, err := e.cli.VolumeInspect(ctx, n, client.VolumeInspectOptions{})
		switch {
		case errdefs.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("inspect volume %s: %w", n, err)
		}
		out = append(out, Volume{Name: res.Volume.Name, Owned: res.Volume.Labels[stack.LabelProject] == project})
	}
	return out, nil
}

// ListVolumes returns the volumes labelled with project.
func (e *Engine) ListVolumes(ctx context.Context, project string) ([]Volume, error) {
	res, err := e.cli.VolumeList(ctx, client.VolumeListOptions{
		Filters: make(client.Filters).Add("label", stack.LabelProject+"="+project),
	})
	if err != nil {
		return nil, fmt.Errorf("list volumes of project %s: %w", project, err)
	}
	var out []Volume
	for _, v := range res.Items {
		if v.Labels[stack.LabelProject] == project {
			out = append(out, Volume{Name: v.Name, Owned: true})
		}
	}
	return out, nil
}

// CreateVolume creates a labelled local volume.
func (e *Engine) CreateVolume(ctx context.Context, name string, labels map[string]string) error {
	if _, err := e.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Driver: "local", Labels: labels}); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	return nil
}

// RemoveVolume removes a volume; a missing one is not an error.
func (e *Engine) RemoveVolume(ctx context.Context, name string) error {
	if _, err := e.cli.VolumeRemove(ctx, name, client.VolumeRemoveOptions{}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// File is a file written into a container between its creation and its
// start (a secret): it never exists on the host outside Docker's own
// root-only storage.
type File struct {
	Path    string // absolute, in the container
	Content []byte
	Mode    int64 // e.g. 0o400
}

// copyFiles writes files into the created container id, owned by user
// (the container's user: "", NAME, UID or NAME:GROUP; a name is looked up
// in the image's /etc/passwd). Directories it creates are 0755 root.
func (e *Engine) copyFiles(ctx context.Context, id, user string, files []File) error {
	uid, gid, err := e.resolveUser(ctx, id, user)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	now := time.Now()
	for _, f := range files {
		rel := strings.TrimPrefix(path.Clean(f.Path), "/")
		var parents []string
		for d := path.Dir(rel); d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
				return err
			}
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: f.Mode, Size: int64(len(f.Content)), Uid: uid, Gid: gid, ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Content); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	// Without CopyUIDGID the engine keeps the owners the tar's headers
	// give (with it, it would chown to the container's user, looking the
	// user up in an /etc/passwd a FROM scratch image does not have).
	_, err = e.cli.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: "/", Content: &buf})
	if err != nil {
		return fmt.Errorf("copy %d files into container %s: %w", len(files), id, err)
	}
	return nil
}

// resolveUser turns a container user into numeric ids, reading the
// image's /etc/passwd (and /etc/group) from the created container for a
// name.
func (e *Engine) resolveUser(ctx context.Context, id, user string) (int, int, error) {
	if user == "" {
		return 0, 0, nil
	}
	name, group, _ := strings.Cut(user, ":")
	uid, gid := -1, -1
	if n, err := strconv.Atoi(name); err == nil {
		uid, gid = n, n
	}
	if uid < 0 {
		entry, err := e.lookup(ctx, id, "/etc/passwd", name)
		if err != nil {
			return 0, 0, fmt.Errorf("user %q: %w", user, err)
		}
		uid, _ = strconv.Atoi(entry[2])
		gid, _ = strconv.Atoi(entry[3])
	}
	if group != "" {
		if n, err := strconv.Atoi(group); err == nil {
			gid = n
		} else {
			entry, err := e.lookup(ctx, id, "/etc/group", group)
			if err != nil {
				return 0, 0, fmt.Errorf("group %q: %w", group, err)
			}
			gid, _ = strconv.Atoi(entry[2])
		}
	}
	return uid, gid, nil
}

// lookup returns the colon-separated fields of name's line in file, read
// from the container.
func (e *Engine) lookup(ctx context.Context, id, file, name string) ([]string, error) {
	res, err := e.cli.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: file})
	if err != nil {
		return nil, fmt.Errorf("read the image's %s: %w", file, err)
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	if _, err := tr.Next(); err != nil {
		return nil, fmt.Errorf("read the image's %s: %w", file, err)
	}
	sc := bufio.NewScanner(io.LimitReader(tr, 1<<20))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) >= 4 && f[0] == name {
			return f, nil
		}
		if len(f) >= 3 && f[0] == name && strings.HasSuffix(file, "group") {
			return f, nil
		}
	}
	return nil, fmt.Errorf("no %s in the image's %s", name, file)
}
