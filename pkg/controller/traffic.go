package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// swiftctl traffic pause|stop|resume: the operator's hold on the front
// door. Each is a transition like a promotion: rendered into nginx.conf,
// gated, applied by the reconciler's plan (a reload), journaled once when
// nginx serves it, and recorded in the state. What nginx has loaded is the
// truth: status shows it, and a daemon that lost its state adopts it.

// trafficEvent is how a traffic transition is journaled.
func trafficEvent(t *stack.Traffic) (event, msg string, details map[string]any) {
	switch {
	case t == nil:
		return journal.EventTrafficResumed, "traffic resumed: requests pass to the app", map[string]any{"mode": "run"}
	case t.Mode == stack.TrafficPause:
		return journal.EventTrafficPaused, fmt.Sprintf("traffic paused: requests held up to %s", t.Max),
			map[string]any{"mode": t.Mode, "max": t.Max.String()}
	default:
		return journal.EventTrafficStopped, "traffic stopped: requests answered 503 " + fmt.Sprintf("%q", t.Message),
			map[string]any{"mode": t.Mode, "message": t.Message}
	}
}

// setTraffic puts target in force. A pause opens the hold socket before
// the reload that routes requests to it; a resume (or stop) releases it
// only once nginx no longer routes there (syncHold, after the commit), so
// a held request is never released into a config that still holds.
func (d *Daemon) setTraffic(ctx context.Context, user string, target *stack.Traffic, progress reconciler.Progress) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	if d.target.Name() != "docker" {
		return errors.New("swiftctl traffic is not implemented for the Kubernetes target")
	}
	m, err := d.transitionStart(ctx)
	if err != nil {
		return err
	}
	if target != nil && target.Mode == stack.TrafficPause {
		if err := d.hold.Open(d.rec.ConfigDir); err != nil {
			return fmt.Errorf("traffic pause: %w", err)
		}
	}
	t := &Transition{ID: newID(), Kind: kindTraffic, Started: time.Now().UTC(), User: user, Traffic: target}
	err = d.transact(ctx, m, t, progress)
	if sv, oerr := d.target.Serving(context.WithoutCancel(ctx), m); oerr == nil {
		d.syncHold(sv)
	}
	if err != nil {
		return err
	}
	_, msg, _ := trafficEvent(target)
	progress(msg)
	return nil
}

// syncHold keeps the hold socket open exactly while nginx's loaded
// configuration pauses: a restarted daemon reopens it, a resume closes it
// (sending every held request on to the app).
func (d *Daemon) syncHold(sv targets.Serving) {
	if sv.Mode == "" { // nothing serves, or nginx cannot be read
		return
	}
	var err error
	if sv.Traffic.Mode == stack.TrafficPause {
		err = d.hold.Open(d.rec.ConfigDir)
	} else {
		err = d.hold.Release()
	}
	logErr(d.log, "hold socket", err)
}

// adoptTraffic makes nginx's loaded traffic hold the recorded one when the
// state disagrees and no transition is pending (a state file lost or
// restored from before the hold): the front door keeps doing what it does
// instead of a reconcile silently resuming or stopping traffic.
func (d *Daemon) adoptTraffic(sv targets.Serving) {
	loaded := sv.Traffic
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state.Pending != nil {
		return
	}
	var recorded stack.Traffic
	if d.state.Traffic != nil {
		recorded = *d.state.Traffic
	}
	if recorded == loaded {
		return
	}
	was := d.state.Traffic
	if loaded.Mode == stack.TrafficRun {
		d.state.Traffic = nil
	} else {
		d.state.Traffic = &loaded
	}
	if err := d.saveStateLocked(); err != nil {
		d.state.Traffic = was
		d.log.Error("save state", zap.Error(err))
		return
	}
	d.log.Info("adopted the traffic hold nginx serves", zap.String("mode", loaded.Mode))
}
