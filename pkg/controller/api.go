package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/apiserver"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// The control API (pkg/apiserver) calls the daemon through
// apiserver.Controller: this file is the daemon's side of it, each method
// one route's work, its failures classed for the API's status codes.
var _ apiserver.Controller = (*Daemon)(nil)

// newAPI builds the control API's server over d.
func (d *Daemon) newAPI() *apiserver.Server {
	return apiserver.New(d, apiserver.Options{Socket: d.cfg.Socket, Authz: d.cfg.Authz, Log: d.log,
		SocketDirBack: d.socketDirBack, GuardEvery: watchRetry})
}

// socketDirBack reports whether the socket's directory may be used again:
// it exists, or it is the daemon's state directory and the manifest's
// directory is back. No other directory is recreated: a removed manifest
// directory must not come back by the daemon's hand.
func (d *Daemon) socketDirBack(path string) error {
	dir := filepath.Dir(path)
	_, err := os.Stat(dir)
	if err != nil && dir == d.stateDir {
		_, err = os.Stat(d.dir)
	}
	return err
}

// SocketRecreated journals that the control socket was made again.
func (d *Daemon) SocketRecreated(path string) {
	d.event(eventSocketRecreated, "control socket "+path+" was removed or replaced (its directory deleted?); listening on it again", "", map[string]any{"socket": path})
}

// Refused journals a refused call. Refusals are counted, not journaled one
// by one: the first of each key (uid, route, reason) is written at once,
// its repeats are summed into one record with a count and first and last
// times when the streak ends (a minute at most, see refusalSweep), so a
// caller with no role cannot grow the journal without bound.
func (d *Daemon) Refused(key string, rec journal.Record) {
	d.noteJournal("refusal", d.refusals.Append(d.jr, key, rec))
}

// Metrics serves the daemon's own metrics.
func (d *Daemon) Metrics() http.Handler { return d.metrics.Handler() }

// Acting is nil unless this is a Kubernetes daemon that does not hold its
// namespace's Lease: then what would change anything is refused, naming
// the leader to ask instead.
func (d *Daemon) Acting() error {
	if d.kt == nil {
		return nil
	}
	if err := d.kt.Acting(); err != nil {
		return apiserver.Unavailable(err)
	}
	return nil
}

// noManifest is the failure of a read that needs a valid manifest.
func (d *Daemon) noManifest() error {
	return apiserver.Conflict(fmt.Errorf("no valid manifest: %v", d.manifestErrors()))
}

// Diff is what the next reconcile would do, or, with down (or while
// down), what `swiftctl down` would remove, or what the next reconcile
// removes of what is left.
func (d *Daemon) Diff(ctx context.Context, down, volumes bool) (api.Diff, error) {
	m := d.readManifest()
	if m == nil {
		return api.Diff{}, d.noManifest()
	}
	d.mu.Lock()
	s := d.state
	d.mu.Unlock()
	if down || s.Down {
		plan, err := d.target.Teardown(ctx, m, volumes || s.DownVolumes)
		if err != nil {
			return api.Diff{}, apiserver.Unavailable(err)
		}
		out := api.Diff{Plan: []string{}, Teardown: true}
		for _, op := range plan {
			out.Plan = append(out.Plan, op.String())
		}
		return out, nil
	}
	ch, err := d.target.Change(ctx, m, s)
	if err != nil {
		return api.Diff{}, apiserver.Unavailable(err)
	}
	out := api.Diff{Blocked: ch.Blocked(), Plan: []string{}, Gated: ch.Gated()}
	out.Plan = append(out.Plan, ch.Lines()...)
	return out, nil
}

// History reads the journal's newest records: only the newest files that
// hold the last limit records, not every rotated file on each call.
func (d *Daemon) History(f journal.Filter, limit int) ([]journal.Record, error) {
	_ = d.jr.Flush()
	return journal.Tail(d.journalPath(), f, limit)
}

// Releases lists a service's releases, newest first; with no service in
// the named form, every service's, in Services (by name).
func (d *Daemon) Releases(ctx context.Context, service string) (api.Releases, error) {
	m := d.readManifest()
	if m == nil {
		return api.Releases{}, d.noManifest()
	}
	if _, err := d.releasesFor(m); err != nil {
		return api.Releases{}, err
	}
	if service == "" && m.IsNamed() {
		out := api.Releases{Keep: d.keepReleases(), Releases: []api.Release{}}
		for _, svc := range serviceNames(m) {
			rs, err := d.releasesOf(ctx, svc)
			if err != nil {
				return api.Releases{}, err
			}
			out.Services = append(out.Services, rs)
		}
		return out, nil
	}
	svc, err := resolveService(m, service)
	if err != nil {
		return api.Releases{}, apiserver.NotFound(err)
	}
	return d.releasesOf(ctx, svc)
}

// Deploy is `swiftctl deploy`: journaled as asked, then it waits for the
// reconcile, which journals the outcome (deploy_succeeded/failed/denied).
func (d *Daemon) Deploy(ctx context.Context, user string, progress func(string)) error {
	d.event(journal.EventDeployStarted, "deploy requested", user, nil)
	return apiFailure(d.waitAs(ctx, user, progress))
}

// Promote is `swiftctl promote [SERVICE] [--full]`.
func (d *Daemon) Promote(ctx context.Context, user string, req api.PromoteRequest, progress func(string)) error {
	return apiFailure(d.promoteRequest(ctx, user, req.Service, req.Full, progress))
}

// Rollback drops the canary, or with req.To brings that release back
// (restore.go).
func (d *Daemon) Rollback(ctx context.Context, user string, req api.RollbackRequest, progress func(string)) error {
	if req.To != "" {
		return apiFailure(d.rollbackTo(ctx, user, req.Service, req.To, progress))
	}
	key := ""
	if req.Service != "" {
		if m := d.readManifest(); m != nil {
			if _, err := resolveService(m, req.Service); err != nil {
				return err
			}
			var err error
			if key, err = canaryKey(m, req.Service); err != nil {
				return fmt.Errorf("rollback without --to drops %s's canary: %w; to bring an earlier release of %s back: swiftctl rollback %s --to previous|REV", req.Service, err, req.Service, req.Service)
			}
		}
	}
	return apiFailure(d.rollback(ctx, user, key, progress))
}

// Abort is `swiftctl abort [SERVICE]`.
func (d *Daemon) Abort(ctx context.Context, user string, req api.AbortRequest, progress func(string)) error {
	return apiFailure(d.abortCanary(ctx, user, req.Service, req.Reason, progress))
}

// Down is `swiftctl down`.
func (d *Daemon) Down(ctx context.Context, user string, volumes bool, progress func(string)) error {
	return apiFailure(d.down(ctx, user, volumes, progress))
}

// Traffic is `swiftctl traffic`.
func (d *Daemon) Traffic(ctx context.Context, user string, hold *stack.Traffic, progress func(string)) error {
	return apiFailure(d.setTraffic(ctx, user, hold, progress))
}

// SetPaused is `swiftctl pause` and `resume` [SERVICE].
func (d *Daemon) SetPaused(user, service string, paused bool) error {
	if err := d.setPaused(user, service, paused); err != nil {
		return apiserver.Conflict(err)
	}
	return nil
}

// apiFailure gives a policy's denial its reasons for the client.
func apiFailure(err error) error {
	var denied *reconciler.DeniedError
	var pdenied *promoteDenied
	switch {
	case errors.As(err, &denied):
		return &apiserver.Denied{Reasons: denied.Reasons, Transient: denied.Transient, Err: err}
	case errors.As(err, &pdenied):
		return &apiserver.Denied{Reasons: pdenied.reasons, Err: err}
	}
	return err
}

// refusalSweep writes the summaries of refusal streaks that stopped, so a
// count is in the journal within a minute of its last refusal.
func (d *Daemon) refusalSweep(ctx context.Context) {
	t := time.NewTicker(refusalWindow / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			logErr(d.log, "journal: sweep refusal summaries", d.refusals.Sweep(d.jr))
		}
	}
}
