package fake

import (
	"context"
	"sync"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// watcher is one Watch: an unbounded queue drained by its goroutine, so
// that emitting never blocks the engine.
type watcher struct {
	project string
	wake    chan struct{} // capacity 1: "look again"

	mu      sync.Mutex
	queue   []engine.Event
	stopped bool
	err     error // sent on the error channel when stopped
}

func (w *watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) push(ev engine.Event) {
	w.mu.Lock()
	if !w.stopped {
		w.queue = append(w.queue, ev)
	}
	w.mu.Unlock()
	w.signal()
}

// stop ends the stream: undelivered events are lost, err (if any) goes to
// the error channel.
func (w *watcher) stop(err error) {
	w.mu.Lock()
	if !w.stopped {
		w.stopped, w.err, w.queue = true, err, nil
	}
	w.mu.Unlock()
	w.signal()
}

// next returns the next event, or stopped.
func (w *watcher) next() (ev engine.Event, ok, stopped bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return ev, false, true, w.err
	}
	if len(w.queue) == 0 {
		return ev, false, false, nil
	}
	ev = w.queue[0]
	w.queue = w.queue[1:]
	return ev, true, false, nil
}

// requeue puts back an event that could not be sent yet.
func (w *watcher) requeue(ev engine.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.queue = append([]engine.Event{ev}, w.queue...)
	}
}

// emitLocked sends a container event to the watchers of its project.
func (e *Engine) emitLocked(c *container, action string) { e.emitSignalLocked(c, action, "") }

// emitSignalLocked is emitLocked for a kill event that carries the signal's
// number, as Docker's do.
func (e *Engine) emitSignalLocked(c *container, action, signal string) {
	project, ok := c.spec.Labels[stack.LabelProject]
	if !ok {
		return
	}
	ev := engine.Event{ContainerID: c.id, Name: c.name, Role: c.spec.Labels[stack.LabelRole], Action: action, Signal: signal}
	for w := range e.watchers {
		if w.project == project {
			w.push(ev)
		}
	}
}

// Watch streams the project's container events until ctx ends (the event
// channel is closed), Close, or the stream fails (the error channel
// receives the failure, then the event channel is closed), like
// engine.Watch. The subscription is in place when Watch returns.
func (e *Engine) Watch(ctx context.Context, project string) (<-chan engine.Event, <-chan error) {
	out := make(chan engine.Event)
	errc := make(chan error, 1)
	c := e.begin(OpWatch, project, "")
	w := &watcher{project: project, wake: make(chan struct{}, 1)}
	e.mu.Lock()
	if e.closed {
		w.stopped = true
	} else {
		e.watchers[w] = true
	}
	e.mu.Unlock()
	unsubscribe := func() {
		e.mu.Lock()
		delete(e.watchers, w)
		e.mu.Unlock()
	}
	go func() {
		defer close(out)
		defer unsubscribe()
		err := e.admit(ctx, c)
		c.end(&err)
		if err != nil {
			if ctx.Err() == nil {
				errc <- err
			}
			return
		}
		for {
			ev, ok, stopped, err := w.next()
			switch {
			case stopped:
				if err != nil {
					errc <- err
				}
				return
			case ok:
				select {
				case out <- ev:
				case <-w.wake:
					w.requeue(ev) // maybe stopped meanwhile: look again
				case <-ctx.Done():
					return
				}
			default:
				select {
				case <-w.wake:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, errc
}
