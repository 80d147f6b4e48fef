package reconciler

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/swiftdeploy/swiftdeploy/pkg/atomicfile"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// Observe reads the project's actual state: containers and network from
// the engine, the configuration nginx has loaded from nginx itself. The
// reads are independent and run at once: observing costs the slowest of
// them, not their sum. nginx's status is read alongside; it counts only if
// an nginx container runs.
func (r *Reconciler) Observe(ctx context.Context, d Desired) (Observed, error) {
	desired := d.Stack
	var obs Observed
	var netErr, listErr, imgErr, loadErr, volErr error
	var loaded *Loaded
	var wg sync.WaitGroup
	wg.Go(func() {
		end := trace.Begin(ctx, "observe: network", desired.Network.Name)
		obs.Network, netErr = r.Engine.FindNetwork(ctx, desired.Network.Name, desired.Project)
		end()
	})
	wg.Go(func() {
		end := trace.Begin(ctx, "observe: containers", desired.Project)
		obs.Containers, listErr = r.Engine.ListContainers(ctx, desired.Project, desired.Network.Name)
		end()
	})
	if names := desired.Volumes(); len(names) > 0 {
		wg.Go(func() {
			end := trace.Begin(ctx, "observe: volumes", "")
			obs.Volumes, volErr = r.Engine.FindVolumes(ctx, names, desired.Project)
			end()
		})
	}
	wg.Go(func() {
		end := trace.Begin(ctx, "observe: images", "")
		obs.Missing, imgErr = r.Engine.MissingImages(ctx, desired.Images())
		end()
	})
	wg.Go(func() {
		end := trace.Begin(ctx, "observe: nginx status", "")
		loaded, loadErr = r.nginxStatus(ctx)
		end()
	})
	var err error
	obs.Applied, err = r.readApplied()
	wg.Wait()
	if err := cmp.Or(netErr, listErr, imgErr, volErr); err != nil {
		return Observed{}, err
	}
	if err != nil {
		return Observed{}, err
	}
	if obs.Nginx() != nil {
		if loadErr != nil {
			obs.LoadedErr = loadErr.Error()
		} else {
			obs.Loaded = loaded
		}
	}
	obs.Mounts = r.mounts()
	return obs, nil
}

// mounts identifies the host directories nginx bind-mounts by the random
// id each holds in its idFile (stack.LabelMounts), "-" for one without.
// An id, not the inode: a directory removed and recreated may get its old
// inode number back, and device numbers can change across a reboot.
func (r *Reconciler) mounts() string {
	if r.ConfigDir == "" && r.RunDir == "" {
		return ""
	}
	var ids []string
	for _, dir := range []string{r.ConfigDir, r.RunDir} {
		id := "-"
		if b, err := os.ReadFile(filepath.Join(dir, idFile)); err == nil && len(bytes.TrimSpace(b)) > 0 {
			id = string(bytes.TrimSpace(b))
		}
		ids = append(ids, id)
	}
	return strings.Join(ids, ",")
}

// idFile holds a directory's random id (see mounts).
const idFile = ".swiftdeploy-id"

// EnsureDirs creates the directories nginx mounts, each with its id, if
// they are missing. The daemon calls it only while the manifest's
// directory exists: it never brings back a directory someone removed.
func (r *Reconciler) EnsureDirs() error {
	for _, d := range []struct {
		dir  string
		mode os.FileMode
	}{{r.ConfigDir, 0o755}, {r.RunDir, 0o750}} { // RunDir keeps nginx's world-writable socket to us
		if d.dir == "" {
			continue
		}
		if err := os.MkdirAll(d.dir, d.mode); err != nil {
			return fmt.Errorf("create nginx directory %s: %w", d.dir, err)
		}
		name := filepath.Join(d.dir, idFile)
		if _, err := os.Stat(name); err == nil {
			continue
		}
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		if err := atomicfile.Write(name, []byte(hex.EncodeToString(b)+"\n"), 0o644); err != nil {
			return fmt.Errorf("write directory id %s: %w", name, err)
		}
	}
	return nil
}
