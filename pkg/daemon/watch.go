package daemon

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// watchManifest watches the manifest's directory (editors replace files by
// rename, which a watch on the file itself would miss) and enqueues a
// reconcile after a burst of events settles.
func (d *Daemon) watchManifest(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.log.Error("file watcher unavailable; relying on periodic resync", zap.Error(err))
		return
	}
	defer w.Close()
	if err := w.Add(d.dir); err != nil {
		d.log.Error("cannot watch manifest directory; relying on periodic resync", zap.String("dir", d.dir), zap.Error(err))
		return
	}
	name := filepath.Base(d.cfg.ManifestPath)
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if filepath.Base(ev.Name) == name {
				debounce = time.After(d.cfg.Debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			d.log.Warn("file watcher error", zap.Error(err))
		case <-debounce:
			debounce = nil
			d.Enqueue()
		}
	}
}

// watchEngine enqueues a reconcile on every lifecycle event of an owned
// container (self-heal), reconnecting with backoff when the engine goes away.
func (d *Daemon) watchEngine(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		project := d.project()
		if project == "" {
			select {
			case <-time.After(time.Second):
				continue
			case <-ctx.Done():
				return
			}
		}
		wctx, cancel := context.WithCancel(ctx)
		evs, errc := d.eng.Watch(wctx, project)
		connected := time.Now()
	stream:
		for {
			select {
			case ev, ok := <-evs:
				if !ok {
					break stream
				}
				if ev.Role != stack.RoleApp && ev.Role != stack.RoleNginx {
					continue // throwaway check containers
				}
				switch ev.Action {
				case "die", "destroy", "stop", "kill", "oom":
					d.log.Info("owned container changed", zap.String("container", ev.Name), zap.String("action", ev.Action))
					d.Enqueue()
				}
			case err := <-errc:
				if ctx.Err() == nil {
					d.log.Warn("docker event stream lost", zap.Error(err))
					d.setEngineErr(err)
				}
				break stream
			case <-ctx.Done():
				break stream
			}
		}
		cancel()
		if time.Since(connected) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, 30*time.Second)
			d.Enqueue() // level-triggered: catch up on whatever was missed
		case <-ctx.Done():
			return
		}
	}
}

func (d *Daemon) project() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current == nil {
		return ""
	}
	return d.current.Project
}
