package controller

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/swiftdeploy/swiftdeploy/internal/ctxio"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
)

// Timeouts bound each Docker Engine call, so that a hung engine (one that
// accepts connections and never answers) cannot wedge the control loop
// while it holds the run lock; the error reaches status instead.
type Timeouts struct {
	Call time.Duration // list, inspect, create, exec, remove...
	Pull time.Duration // an image pull
	Once time.Duration // a throwaway container run to completion (nginx -t)
	// Logs bounds reading a container's log to its end (swiftctl logs
	// without -f); a followed log is bounded only in how long it takes to
	// open, and ends with the request.
	Logs time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Call <= 0 {
		t.Call = 30 * time.Second
	}
	if t.Pull <= 0 {
		t.Pull = 10 * time.Minute
	}
	if t.Once <= 0 {
		t.Once = 2 * t.Call
	}
	if t.Logs <= 0 {
		t.Logs = 4 * t.Call
	}
	return t
}

// timed is an Engine whose every call carries a deadline.
type timed struct {
	Engine
	t Timeouts
}

func withTimeouts(e Engine, t Timeouts) Engine { return &timed{Engine: e, t: t.withDefaults()} }

func (e *timed) ctx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// wrap names the deadline in the error: "context deadline exceeded" alone
// does not tell a user that the engine hung.
func (e *timed) wrap(ctx context.Context, op string, d time.Duration, err error) error {
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("docker engine did not answer %s within %s: %w", op, d, err)
	}
	return err
}

func (e *timed) Ping(ctx context.Context) error {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	return e.wrap(c, "ping", e.t.Call, e.Engine.Ping(c))
}

func (e *timed) ListContainers(ctx context.Context, project, network string) ([]engine.Container, error) {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	cs, err := e.Engine.ListContainers(c, project, network)
	return cs, e.wrap(c, "list containers", e.t.Call, err)
}

func (e *timed) FindNetwork(ctx context.Context, name, project string) (*engine.Network, error) {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	n, err := e.Engine.FindNetwork(c, name, project)
	return n, e.wrap(c, "find network "+name, e.t.Call, err)
}

func (e *timed) CreateNetwork(ctx context.Context, name, driver string, labels map[string]string) error {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	return e.wrap(c, "create network "+name, e.t.Call, e.Engine.CreateNetwork(c, name, driver, labels))
}

func (e *timed) RemoveNetwork(ctx context.Context, id string) error {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	return e.wrap(c, "remove network "+id, e.t.Call, e.Engine.RemoveNetwork(c, id))
}

func (e *timed) MissingImages(ctx context.Context, refs []string) ([]string, error) {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	m, err := e.Engine.MissingImages(c, refs)
	return m, e.wrap(c, "inspect images", e.t.Call, err)
}

func (e *timed) InspectImage(ctx context.Context, ref string) (engine.Image, error) {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	img, err := e.Engine.InspectImage(c, ref)
	return img, e.wrap(c, "inspect image "+ref, e.t.Call, err)
}

func (e *timed) TagImage(ctx context.Context, source, target string) error {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	return e.wrap(c, "tag image "+source, e.t.Call, e.Engine.TagImage(c, source, target))
}

func (e *timed) UntagImage(ctx context.Context, ref string) error {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	return e.wrap(c, "untag image "+ref, e.t.Call, e.Engine.UntagImage(c, ref))
}

func (e *timed) PullImage(ctx context.Context, ref, auth string) error {
	c, cancel := e.ctx(ctx, e.t.Pull)
	defer cancel()
	return e.wrap(c, "pull "+ref, e.t.Pull, e.Engine.PullImage(c, ref, auth))
}

func (e *timed) Run(ctx context.Context, s engine.Spec) (string, error) {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	id, err := e.Engine.Run(c, s)
	return id, e.wrap(c, "run "+s.Name, e.t.Call, err)
}

func (e *timed) Remove(ctx context.Context, id string, grace time.Duration) error {
	d := e.t.Call + grace
	c, cancel := e.ctx(ctx, d)
	defer cancel()
	return e.wrap(c, "remove "+id, d, e.Engine.Remove(c, id, grace))
}

func (e *timed) Top(ctx context.Context, id string) ([]engine.Process, error) {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	ps, err := e.Engine.Top(c, id)
	return ps, e.wrap(c, "list processes of "+id, e.t.Call, err)
}

func (e *timed) Signal(ctx context.Context, id, signal string) error {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	return e.wrap(c, "signal "+id, e.t.Call, e.Engine.Signal(c, id, signal))
}

func (e *timed) Exec(ctx context.Context, id string, cmd []string) (int, string, error) {
	c, cancel := e.ctx(ctx, e.t.Call)
	defer cancel()
	code, out, err := e.Engine.Exec(c, id, cmd)
	return code, out, e.wrap(c, "exec in "+id, e.t.Call, err)
}

func (e *timed) RunOnce(ctx context.Context, s engine.Spec) (int, string, error) {
	c, cancel := e.ctx(ctx, e.t.Once)
	defer cancel()
	code, out, err := e.Engine.RunOnce(c, s)
	return code, out, e.wrap(c, "run "+s.Name, e.t.Once, err)
}

// FollowLogs bounds opening the stream, not the stream itself, which
// lasts as long as nginx runs: if the engine has not answered within the
// call timeout, the call is cancelled.
func (e *timed) FollowLogs(ctx context.Context, id string, since time.Time) (io.ReadCloser, error) {
	c, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(e.t.Call, cancel)
	rc, err := e.Engine.FollowLogs(c, id, since)
	if !timer.Stop() {
		if err == nil {
			rc.Close()
		}
		cancel()
		return nil, fmt.Errorf("docker engine did not answer follow logs of %s within %s: %w", id, e.t.Call, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return ctxio.CancelOnClose(rc, cancel), nil
}

// logsEngine is an engine that reads containers' logs (the real one; the
// fake has no app output to read).
type logsEngine interface {
	Logs(ctx context.Context, id string, o engine.LogOptions) (engine.LogStream, error)
}

// Logs bounds a read to the end by t.Logs as a whole, and a follow by
// t.Call until the engine answers; the followed stream then lasts until
// ctx ends or the container stops.
func (e *timed) Logs(ctx context.Context, id string, o engine.LogOptions) (engine.LogStream, error) {
	le, ok := e.Engine.(logsEngine)
	if !ok {
		return nil, fmt.Errorf("logs of container %s: this engine cannot read logs", id)
	}
	if !o.Follow {
		c, cancel := e.ctx(ctx, e.t.Logs)
		s, err := le.Logs(c, id, o)
		if err != nil {
			cancel()
			return nil, e.wrap(c, "logs of "+id, e.t.Logs, err)
		}
		return &timedLogs{LogStream: s, ctx: c, cancel: cancel, what: "logs of " + id, d: e.t.Logs, e: e}, nil
	}
	c, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(e.t.Call, cancel)
	s, err := le.Logs(c, id, o)
	if !timer.Stop() {
		if err == nil {
			s.Close()
		}
		cancel()
		return nil, fmt.Errorf("docker engine did not answer follow logs of %s within %s: %w", id, e.t.Call, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return &timedLogs{LogStream: s, ctx: c, cancel: cancel}, nil
}

// timedLogs releases the stream's context when it is closed and names the
// deadline when a read to the end ran out of time.
type timedLogs struct {
	engine.LogStream
	ctx    context.Context
	cancel context.CancelFunc
	what   string
	d      time.Duration
	e      *timed
}

func (t *timedLogs) Next() (engine.LogLine, error) {
	l, err := t.LogStream.Next()
	if err != nil && err != io.EOF && t.e != nil {
		err = t.e.wrap(t.ctx, t.what, t.d, err)
	}
	return l, err
}

func (t *timedLogs) Close() error {
	err := t.LogStream.Close()
	t.cancel()
	return err
}
