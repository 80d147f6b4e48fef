package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// LogOptions select the part of a container's log Logs reads.
type LogOptions struct {
	// Since, when not zero, leaves out what was written before it.
	Since time.Time
	// Tail, when 0 or more, starts at the last Tail lines; below 0, at
	// the first line.
	Tail int
	// Follow keeps the stream open for what the container writes next,
	// until ctx ends or the container stops.
	Follow bool
}

// LogLine is one line a container wrote, without its newline.
type LogLine struct {
	Time   time.Time // when the engine received it (zero if it had no timestamp)
	Stream string    // "stdout" or "stderr"
	Text   string
}

// MaxLogLine bounds one line: a longer one (a process writing without
// newlines) comes out in pieces of this size, so that a reader's memory
// is bounded whatever the container writes. Docker's own json-file driver
// splits at 16 KiB too.
const MaxLogLine = 16 << 10

// LogStream yields a container's log lines in the order it wrote them.
// Next returns io.EOF at the end (the backlog read, or a followed container
// stopped). Close ends the stream; it may be called while Next blocks.
type LogStream interface {
	Next() (LogLine, error)
	Close() error
}

// Logs opens a container's log (stdout and stderr, with the engine's
// timestamps) and demultiplexes it into lines. The caller bounds the call
// and, unless following, the whole read through ctx; see the controller's
// timed engine.
func (e *Engine) Logs(ctx context.Context, id string, o LogOptions) (LogStream, error) {
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: o.Follow, Tail: "all"}
	if !o.Since.IsZero() {
		opts.Since = strconv.FormatInt(o.Since.Unix(), 10) + "." + fmt.Sprintf("%09d", o.Since.Nanosecond())
	}
	if o.Tail >= 0 {
		opts.Tail = strconv.Itoa(o.Tail)
	}
	rc, err := e.cli.ContainerLogs(ctx, id, opts)
	if err != nil {
		return nil, fmt.Errorf("logs of container %s: %w", id, err)
	}
	return NewLogStream(id, rc, true), nil
}

// NewLogStream reads lines from rc, a Docker log stream: multiplexed
// (stdcopy frames, a container without a TTY) when mux is set, plain text
// otherwise (every line then counts as stdout). Each line may start with
// an RFC 3339 timestamp and a space, which becomes LogLine.Time. It owns
// rc and closes it when the stream ends or is closed. name names the
// stream in errors.
func NewLogStream(name string, rc io.ReadCloser, mux bool) LogStream {
	s := &lineStream{lines: make(chan LogLine), done: make(chan struct{}), rc: rc}
	go func() {
		stdout := &lineWriter{s: s, stream: "stdout"}
		stderr := &lineWriter{s: s, stream: "stderr"}
		var err error
		if mux {
			_, err = stdcopy.StdCopy(stdout, stderr, rc)
		} else {
			_, err = io.Copy(stdout, rc)
		}
		if err == nil {
			err = stdout.flush()
		}
		if err == nil {
			err = stderr.flush()
		}
		switch {
		case err == nil:
			err = io.EOF
		case errors.Is(err, errStreamClosed):
		default:
			err = fmt.Errorf("logs of %s: %w", name, err)
		}
		rc.Close()
		s.err = err // read after lines is closed
		close(s.lines)
	}()
	return s
}

var errStreamClosed = errors.New("log stream closed")

type lineStream struct {
	lines chan LogLine
	err   error
	done  chan struct{}
	once  sync.Once
	rc    io.Closer
}

func (s *lineStream) Next() (LogLine, error) {
	l, ok := <-s.lines
	if !ok {
		return LogLine{}, s.err
	}
	return l, nil
}

func (s *lineStream) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.rc.Close()
	})
	return nil
}

// lineWriter cuts one stream's bytes into lines and hands each to the
// stream's reader, one at a time: nothing is buffered beyond one line.
type lineWriter struct {
	s      *lineStream
	stream string
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := MaxLogLine - len(w.buf)
			if len(p) < room {
				w.buf = append(w.buf, p...)
				break
			}
			w.buf = append(w.buf, p[:room]...)
			p = p[room:]
			if err := w.emit(); err != nil {
				return 0, err
			}
			continue
		}
		line := p[:i]
		p = p[i+1:]
		for len(w.buf)+len(line) > MaxLogLine {
			room := MaxLogLine - len(w.buf)
			w.buf = append(w.buf, line[:room]...)
			line = line[room:]
			if err := w.emit(); err != nil {
				return 0, err
			}
		}
		w.buf = append(w.buf, line...)
		if err := w.emit(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// flush hands on an unfinished last line.
func (w *lineWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	return w.emit()
}

func (w *lineWriter) emit() error {
	l := ParseLogLine(string(bytes.TrimSuffix(w.buf, []byte("\r"))))
	l.Stream = w.stream
	w.buf = w.buf[:0]
	select {
	case w.s.lines <- l:
		return nil
	case <-w.s.done:
		return errStreamClosed
	}
}

// ParseLogLine splits a line the engine (or the Kubernetes API server)
// timestamped, "2026-12-07T05:22:33.123456789Z text", into its time and
// text. A line without a valid timestamp is kept whole, with no time.
func ParseLogLine(s string) LogLine {
	if i := strings.IndexByte(s, ' '); i > 0 {
		if t, err := time.Parse(time.RFC3339Nano, s[:i]); err == nil {
			return LogLine{Time: t, Text: s[i+1:]}
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return LogLine{Time: t} // an empty line
	}
	return LogLine{Text: s}
}

// FollowLogs streams what a container writes to its standard output from
// since on (stderr is left out), demultiplexed, until ctx ends, the
// container stops (io.EOF, as Docker ends a follow then) or the connection
// breaks. The caller bounds how long establishing the stream may take
// through ctx and must Close the reader; cancelling ctx also ends it.
func (e *Engine) FollowLogs(ctx context.Context, id string, since time.Time) (io.ReadCloser, error) {
	rc, err := e.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{
		ShowStdout: true,
		Follow:     true,
		Since:      since.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return nil, fmt.Errorf("follow logs of container %s: %w", id, err)
	}
	pr, pw := io.Pipe()
	go func() {
		// The stream is multiplexed (the container has no TTY): stdout
		// frames go to the pipe, anything else is dropped.
		if _, err := stdcopy.StdCopy(pw, io.Discard, rc); err != nil {
			pw.CloseWithError(fmt.Errorf("logs of container %s: %w", id, err))
		} else {
			pw.Close() // the container stopped: io.EOF
		}
		rc.Close()
	}()
	return &logStream{PipeReader: pr, rc: rc}, nil
}

// logStream is FollowLogs' reader: closing it ends the engine's stream.
type logStream struct {
	*io.PipeReader
	rc io.Closer
}

func (s *logStream) Close() error {
	err := s.rc.Close()
	s.PipeReader.Close()
	return err
}
