package controller

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// watchManifest watches the manifest's directory (editors replace files by
// rename, which a watch on the file itself would miss) and enqueues a
// reconcile after a burst of events settles. A burst that only put a new
// file under the name (a rename over it, the atomic way to replace a file)
// settles after renameSettle: the file is complete the moment it appears.
// A burst that wrote to the file in place, or took it away, settles only
// after the full debounce: a writer may still be at it. If the directory
// itself is removed (or cannot be watched yet), the watch is re-established
// as soon as the directory exists again, and a reconcile is woken then: the
// manifest may have come back changed.
func (d *Daemon) watchManifest(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.log.Error("file watcher unavailable; relying on periodic resync", zap.Error(err))
		return
	}
	defer w.Close()
	// The kernel does not always say that the directory went (no
	// IN_DELETE_SELF while anything pins its inode), so the watch also
	// checks, every watchRetry, that the directory is still the one it
	// watches: a cheap stat, and the only way to notice a recreated one.
	var watched os.FileInfo // the directory being watched; nil when none
	lost := false
	tryWatch := func() {
		fi, err := os.Stat(d.dir)
		if err == nil && watched != nil && os.SameFile(fi, watched) {
			return
		}
		if watched != nil {
			_ = w.Remove(d.dir) // the old directory's watch, if still listed
			watched = nil
			if !lost {
				d.log.Warn("manifest directory removed or replaced; the last good manifest stays in force", zap.String("dir", d.dir))
			}
			lost = true
		}
		if err == nil {
			err = w.Add(d.dir)
		}
		if err != nil {
			if !lost {
				d.log.Warn("cannot watch manifest directory; retrying until it exists", zap.String("dir", d.dir), zap.Error(err))
			}
			lost = true
			return
		}
		watched = fi
		if lost {
			d.log.Info("watching the manifest directory again", zap.String("dir", d.dir))
			lost = false
			d.Wake() // the manifest may have come back changed
		}
	}
	tryWatch()
	check := time.NewTicker(watchRetry)
	defer check.Stop()
	name := filepath.Base(d.cfg.ManifestPath)
	var debounce <-chan time.Time
	var burst time.Time // first event of the burst being debounced
	unsettled := false  // the burst wrote in place, or removed or renamed the file
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if filepath.Base(ev.Name) == name {
				if burst.IsZero() {
					burst = time.Now()
				}
				if ev.Has(fsnotify.Write) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
					unsettled = true
				}
				wait := d.cfg.Debounce
				if !unsettled {
					wait = min(wait, renameSettle)
				}
				debounce = time.After(wait)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			d.log.Warn("file watcher error", zap.Error(err))
		case <-check.C:
			tryWatch()
		case <-debounce:
			if !unsettled {
				// A file created empty is being written in place (the
				// writer's first write is late): wait for it to finish.
				if fi, err := os.Stat(d.cfg.ManifestPath); err == nil && fi.Size() == 0 {
					unsettled = true
					debounce = time.After(d.cfg.Debounce)
					continue
				}
			}
			debounce = nil
			d.noteManifestEvent(burst, time.Now())
			burst, unsettled = time.Time{}, false
			d.Wake() // a fix must not wait out a retry backoff
		}
	}
}

// watchRetry is how often a lost watch of the manifest directory is retried.
const watchRetry = 500 * time.Millisecond

// renameSettle is the debounce of a burst that only created the file
// (renamed a complete one over it): long enough to catch the write that
// follows when a writer creates the file in place instead, which turns the
// burst into one that waits the full debounce.
const renameSettle = 20 * time.Millisecond

func (d *Daemon) project() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current == nil {
		return ""
	}
	return d.current.Project
}
