package docker

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// sighup is SIGHUP's number, as a kill event reports it.
const sighup = "1"

// EventSettle is how long after an owned container's last event the
// daemon reconciles once more. Docker (20.10) sends "die" before its
// container list shows the container exited: the reconcile the event
// starts at once can still see it running and plan nothing, and the
// container stayed dead until the next resync (30 s).
const EventSettle = time.Second

// watchEngine enqueues a reconcile on every lifecycle event of an owned
// container (self-heal). When the engine goes away it pings with backoff
// and, once the engine answers again, wakes the reconcile loop at once.
func (t *Target) watchEngine(ctx context.Context, kick func()) {
	const maxBackoff = 5 * time.Second
	backoff := 250 * time.Millisecond
	lost := false
	sleep := func() bool {
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, maxBackoff)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		project := t.Project()
		if project == "" {
			if !sleep() {
				return
			}
			continue
		}
		if err := t.Engine.Ping(ctx); err != nil {
			if ctx.Err() == nil {
				lost = true
				t.Reached(err)
			}
			if !sleep() {
				return
			}
			continue
		}
		if lost {
			t.Log.Info("docker engine reachable again")
			lost = false
			t.Wake() // level-triggered: catch up on whatever was missed
		}
		backoff = 250 * time.Millisecond
		if err := t.watchEvents(ctx, project, kick); err != nil && ctx.Err() == nil {
			t.Log.Warn("docker event stream lost", zap.Error(err))
			t.Reached(err)
			lost = true
		}
	}
}

// watchEvents streams owned containers' events until the stream fails.
func (t *Target) watchEvents(ctx context.Context, project string, kick func()) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs, errc := t.Engine.Watch(wctx, project)
	// A second reconcile EventSettle after the last event (see there).
	// It is armed at once too: what happened before the stream was open
	// (a container killed while the daemon was starting) sent no event
	// this stream will deliver.
	settle := time.AfterFunc(EventSettle, kick)
	defer settle.Stop()
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				// The stream sends its error, then closes: do not lose it.
				select {
				case err := <-errc:
					return err
				default:
					return nil
				}
			}
			if ev.Role != stack.RoleApp && ev.Role != stack.RoleNginx {
				continue // throwaway check containers
			}
			if ev.Action == "kill" && ev.Signal == sighup {
				continue // the reconciler's own nginx reload
			}
			if ev.Role == stack.RoleNginx && ev.Action == "start" {
				t.NginxStarted() // follow the new nginx's log from its first line
			}
			switch ev.Action {
			case "die", "destroy", "stop", "kill", "oom":
				t.Log.Info("owned container changed", zap.String("container", ev.Name), zap.String("action", ev.Action))
				kick()
				settle.Reset(EventSettle)
			}
		case err := <-errc:
			return err
		case <-ctx.Done():
			return nil
		}
	}
}
