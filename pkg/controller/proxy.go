package controller

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/accesslog"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Proxy-side metrics: nginx's access log, streamed from the nginx
// container's standard output through the Docker Engine API (no port of
// any kind is opened for it), parsed by pkg/accesslog and counted per
// (track, revision) by observe.Proxy. The scrape loop samples it every
// scrape interval, next to the app's scrapes, and the canary-safety
// policy gets both views.

// maxAccessLogLine bounds one line; nginx's own limit on a request line
// (large_client_header_buffers) keeps real lines far below it. A longer
// line is skipped and counted as unparsed.
const maxAccessLogLine = 64 << 10

// accessLogRetry is how long the follower waits after the stream ended or
// could not be opened, doubling up to accessLogRetryMax.
const (
	accessLogRetry    = 100 * time.Millisecond
	accessLogRetryMax = 2 * time.Second
)

// accessLogLoop follows nginx's access log until ctx ends, following it
// again whenever the stream ends: nginx recreated or stopped, the engine
// connection broken, or the watchdog finding another nginx.
func (d *Daemon) accessLogLoop(ctx context.Context) {
	minDelay, maxDelay := accessLogRetry, accessLogRetryMax
	if d.logRetry > 0 {
		minDelay, maxDelay = d.logRetry, d.logRetry
	}
	delay := minDelay
	for ctx.Err() == nil {
		followed, err := d.followAccessLog(ctx)
		if ctx.Err() != nil {
			return
		}
		if d.proxy.Lost(err) {
			d.log.Warn("nginx access log not followed; the proxy figures are missing data until it is", zap.Error(err))
		}
		if followed {
			delay = minDelay
		}
		select {
		case <-ctx.Done():
			return
		case <-d.logWake:
			delay = minDelay
			continue
		case <-time.After(delay):
		}
		delay = min(2*delay, maxDelay)
	}
}

// wakeAccessLog cuts the follower's wait short: an nginx container
// started, and its log should be followed from its first lines.
func (d *Daemon) wakeAccessLog() {
	select {
	case d.logWake <- struct{}{}:
	default:
	}
}

// errNginxChanged is the watchdog's cause for ending a stream.
var errNginxChanged = errors.New("nginx container changed")

// followAccessLog streams the running nginx container's log into d.proxy
// until the stream ends, and says why. followed reports whether the
// stream was opened at all.
func (d *Daemon) followAccessLog(ctx context.Context) (followed bool, err error) {
	m := d.manifestNow()
	switch {
	case m == nil:
		return false, errors.New("no manifest loaded")
	case d.isDown():
		return false, errors.New("the project is down")
	}
	nginx, err := d.runningNginx(ctx, m)
	if err != nil {
		return false, err
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rc, err := d.eng.FollowLogs(sctx, nginx.ID, time.Now())
	if err != nil {
		return false, err
	}
	defer rc.Close()
	d.log.Info("following nginx's access log; the proxy figures start afresh", zap.String("container", nginx.Name), zap.String("id", nginx.ID[:min(12, len(nginx.ID))]))
	d.proxy.Following("nginx container " + nginx.Name)
	go d.watchNginx(sctx, cancel, m, nginx)

	err = d.readAccessLog(rc, nginx.Name)
	if cause := context.Cause(sctx); cause != nil && ctx.Err() == nil {
		err = cause
	}
	return true, err
}

// runningNginx is the project's running nginx container.
func (d *Daemon) runningNginx(ctx context.Context, m *manifest.Manifest) (engine.Container, error) {
	cs, err := d.eng.ListContainers(ctx, m.Project, m.Network.Name)
	if err != nil {
		return engine.Container{}, err
	}
	for _, c := range cs {
		if c.Role == stack.RoleNginx && c.Running() {
			return c, nil
		}
	}
	return engine.Container{}, fmt.Errorf("no running nginx container in project %s", m.Project)
}

// watchNginx ends the stream (cancel) when the project's running nginx
// is no longer the one followed, or cannot be listed: Docker ends a
// follow when its container stops, but a stream from an engine that went
// silent would otherwise be followed for ever while nginx logs elsewhere.
func (d *Daemon) watchNginx(ctx context.Context, cancel context.CancelCauseFunc, m *manifest.Manifest, followed engine.Container) {
	every := max(m.Metrics.ScrapeInterval.D(), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now, err := d.runningNginx(ctx, m)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			cancel(fmt.Errorf("%w: cannot confirm nginx container %s still runs: %w", errNginxChanged, followed.Name, err))
			return
		case now.ID != followed.ID:
			cancel(fmt.Errorf("%w: %s replaced by %s", errNginxChanged, followed.Name, now.Name))
			return
		}
	}
}

// readAccessLog feeds every line of r to d.proxy until r ends.
func (d *Daemon) readAccessLog(r io.Reader, container string) error {
	br := bufio.NewReaderSize(r, maxAccessLogLine)
	var (
		e        accesslog.Entry
		reported bool // one parse error logged per stream
		skipping bool // inside a line longer than the buffer
	)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !skipping {
				d.proxy.Unparsed()
			}
			skipping = true
			continue
		case err != nil:
			if len(line) > 0 && !skipping {
				d.proxyLine(&e, string(line), container, &reported) // a last line without "\n"
			}
			return fmt.Errorf("access log of nginx container %s: %w", container, err)
		case skipping:
			skipping = false
			continue
		}
		d.proxyLine(&e, string(line), container, &reported)
	}
}

func (d *Daemon) proxyLine(e *accesslog.Entry, line, container string, reported *bool) {
	if err := accesslog.ParseInto(e, line); err != nil {
		d.proxy.Unparsed()
		if !*reported {
			*reported = true
			d.log.Warn("nginx access-log line not understood; skipped (logged once per stream)", zap.String("container", container), zap.Error(err))
		}
		return
	}
	d.proxy.Observe(e)
}
