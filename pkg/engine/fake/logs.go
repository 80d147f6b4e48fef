package fake

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// logStream is one FollowLogs reader: an unbounded buffer the engine
// appends to, so that Log never blocks on a slow reader.
type logStream struct {
	mu     sync.Mutex
	buf    []byte
	err    error // once set, Read returns it when buf is drained
	wake   chan struct{}
	closed bool          // by the reader
	done   chan struct{} // closed by Close
}

func newLogStream() *logStream {
	return &logStream{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (s *logStream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *logStream) write(p string) {
	s.mu.Lock()
	if s.err == nil && !s.closed {
		s.buf = append(s.buf, p...)
	}
	s.mu.Unlock()
	s.signal()
}

// end makes the stream return err (io.EOF for a clean end) once drained.
func (s *logStream) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.signal()
}

func (s *logStream) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return 0, io.ErrClosedPipe
		case len(s.buf) > 0:
			n := copy(p, s.buf)
			s.buf = s.buf[n:]
			s.mu.Unlock()
			return n, nil
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return 0, err
		}
		s.mu.Unlock()
		<-s.wake
	}
}

func (s *logStream) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed, s.buf = true, nil
		close(s.done)
	}
	s.mu.Unlock()
	s.signal()
	return nil
}

// FollowLogs streams what the container writes to its standard output
// (Log) from the call on, like engine.FollowLogs: until ctx ends (the
// reader then fails with ctx's error), the container stops or is removed
// (io.EOF, as Docker ends a follow), BreakLogs, or Close. since is not
// modelled: a stream only ever sees lines written after it began. A
// container that is not running gives a stream that ends at once; a
// missing one is NotFound.
func (e *Engine) FollowLogs(ctx context.Context, id string, since time.Time) (rc io.ReadCloser, err error) {
	c := e.begin(OpFollowLogs, id, "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return nil, fmt.Errorf("follow logs of container %s: %w", id, ferr)
	}
	e.mu.Lock()
	ct := e.resolve(id)
	if ct == nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("follow logs of container %s: %w", id, daemonErr(errdefs.ErrNotFound, "No such container: %s", id))
	}
	s := newLogStream()
	if ct.state == StateRunning {
		ct.followers = append(ct.followers, s)
	} else {
		s.end(io.EOF)
	}
	e.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			s.end(ctx.Err())
		case <-ct.exited:
		case <-s.done:
		}
	}()
	return s, nil
}

// Log writes lines to a running container's standard output, one "\n"
// after each, as its process would: every FollowLogs stream of the
// container receives them. It fails for a missing or stopped container.
func (e *Engine) Log(nameOrID string, lines ...string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.resolve(nameOrID)
	switch {
	case c == nil:
		return daemonErr(errdefs.ErrNotFound, "No such container: %s", nameOrID)
	case c.state != StateRunning:
		return daemonErr(errdefs.ErrConflict, "container %s is not running", c.id)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	open := c.followers[:0]
	for _, s := range c.followers {
		s.mu.Lock()
		gone := s.closed || s.err != nil
		s.mu.Unlock()
		if !gone {
			s.write(b.String())
			open = append(open, s)
		}
	}
	c.followers = open
	return nil
}

// BreakLogs ends every FollowLogs stream of the container with err (after
// what was already written), as a connection to the engine cut in the
// middle would; the container keeps running.
func (e *Engine) BreakLogs(nameOrID string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.resolve(nameOrID); c != nil {
		for _, s := range c.followers {
			s.end(err)
		}
		c.followers = nil
	}
}

// Followers is the number of open FollowLogs streams of the container.
func (e *Engine) Followers(nameOrID string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.resolve(nameOrID)
	if c == nil {
		return 0
	}
	n := 0
	for _, s := range c.followers {
		s.mu.Lock()
		if s.err == nil && !s.closed {
			n++
		}
		s.mu.Unlock()
	}
	return n
}

// endFollowersLocked ends c's log streams when its process stops.
func (c *container) endFollowersLocked() {
	for _, s := range c.followers {
		s.end(io.EOF)
	}
	c.followers = nil
}
