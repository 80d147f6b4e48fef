// Package logs reads what `swiftctl logs` shows: the lines of a service's
// replicas, from any target that can list them and open one's log
// (targets.LogReader), merged in time order, or, following (-f), as they
// come, picking up the replicas a deploy brings. The lines are the app's
// own: they go to the caller only, never to the daemon's log or the
// journal.
package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// ErrNoReplica is Open's error when no replica of the query's service
// and track exists (or every one was gone by the time it was opened).
var ErrNoReplica = errors.New("no replica exists")

// Copy sends the lines of the logs Open opened through emit until they
// end (following: until the context given to Open ends, or emit fails),
// and closes them. It is called once.
type Copy func(emit func(api.LogLine) error) error

// Open lists the replicas of q's service and track through lr, opens
// their logs (from q.Since, the last q.Tail lines) and returns what sends
// them: merged in time order, or, q.Follow, as they come until ctx ends.
// A replica gone by the time it is opened is left out; none left is
// ErrNoReplica. Any other failure to list or open names the replica, and
// closes what was opened. Once Open returns nil, the caller must call the
// Copy.
func Open(ctx context.Context, lr targets.LogReader, m *manifest.Manifest, q api.LogQuery) (Copy, error) {
	reps, err := lr.LogReplicas(ctx, m, q)
	if err != nil {
		return nil, fmt.Errorf("list the replicas: %w", err)
	}
	srcs, err := openLogs(ctx, lr, m, reps, engine.LogOptions{Since: q.Since, Tail: q.Tail, Follow: q.Follow})
	if err != nil {
		return nil, err
	}
	if len(srcs) == 0 {
		return nil, ErrNoReplica
	}
	return func(emit func(api.LogLine) error) error {
		if q.Follow {
			return newFollower(lr, m, q).run(ctx, srcs, emit)
		}
		return merge(ctx, sourcesOf(srcs), emit)
	}, nil
}

// opened is a replica whose log is open.
type opened struct {
	targets.Replica
	stream engine.LogStream
}

// source is one replica's log, opened.
type source struct {
	Name   string // the container (Docker) or pod (Kubernetes)
	Stream engine.LogStream
}

func sourcesOf(os []opened) []source {
	out := make([]source, len(os))
	for i, o := range os {
		out[i] = source{Name: o.Name, Stream: o.stream}
	}
	return out
}

// openLogs opens every replica's log; one that is gone is left out; any
// other failure closes what was opened and names the replica.
func openLogs(ctx context.Context, lr targets.LogReader, m *manifest.Manifest, reps []targets.Replica, o engine.LogOptions) ([]opened, error) {
	var out []opened
	for _, r := range reps {
		s, err := lr.OpenLog(ctx, m, r, o)
		if errors.Is(err, targets.ErrReplicaGone) {
			continue
		}
		if err != nil {
			for _, o := range out {
				o.stream.Close()
			}
			return nil, fmt.Errorf("%s: %w", r.Name, err)
		}
		out = append(out, opened{Replica: r, stream: since(s, o.Since)})
	}
	return out, nil
}

// since drops the lines a stream yields from before t: the Kubernetes API
// takes sinceTime in whole seconds, so a follow reopened just after its
// last line would repeat that second's lines without it.
func since(s engine.LogStream, t time.Time) engine.LogStream {
	if t.IsZero() {
		return s
	}
	return &sinceStream{LogStream: s, t: t}
}

type sinceStream struct {
	engine.LogStream
	t time.Time
}

func (s *sinceStream) Next() (engine.LogLine, error) {
	for {
		l, err := s.LogStream.Next()
		if err != nil || l.Time.IsZero() || !l.Time.Before(s.t) {
			return l, err
		}
	}
}

// merge writes the sources' lines through emit in time order and
// closes them. Each source is in time order, so a k-way merge holds one
// line per source whatever the logs' size. A source that fails is named
// in the error, after the others' lines.
func merge(ctx context.Context, srcs []source, emit func(api.LogLine) error) error {
	defer closeSources(srcs)
	// Closing unblocks a Next waiting on a stream whose engine call does
	// not watch ctx.
	defer context.AfterFunc(ctx, func() { closeSources(srcs) })()
	return mergeByTime(ctx, srcs, emit)
}

func toAPI(name string, l engine.LogLine) api.LogLine {
	return api.LogLine{Time: l.Time, Container: name, Stream: l.Stream, Line: l.Text}
}

// sourceErr names the source of a failed read; nil at a clean end.
func sourceErr(ctx context.Context, name string, err error) error {
	if err == nil || errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

func mergeByTime(ctx context.Context, srcs []source, emit func(api.LogLine) error) error {
	type head struct {
		src  int
		line engine.LogLine
	}
	var errs []error
	heads := make([]head, 0, len(srcs))
	next := func(i int) (head, bool) {
		l, err := srcs[i].Stream.Next()
		if err != nil {
			if e := sourceErr(ctx, srcs[i].Name, err); e != nil {
				errs = append(errs, e)
			}
			return head{}, false
		}
		return head{src: i, line: l}, true
	}
	for i := range srcs {
		if h, ok := next(i); ok {
			heads = append(heads, h)
		}
	}
	for len(heads) > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The earliest line; between equal times, the source listed first.
		k := 0
		for j := 1; j < len(heads); j++ {
			if heads[j].line.Time.Before(heads[k].line.Time) {
				k = j
			}
		}
		h := heads[k]
		if err := emit(toAPI(srcs[h.src].Name, h.line)); err != nil {
			return err
		}
		if nh, ok := next(h.src); ok {
			heads[k] = nh
		} else {
			heads = slices.Delete(heads, k, k+1)
		}
	}
	return errors.Join(errs...)
}

// closeSources closes every source (Close may be called more than once).
func closeSources(srcs []source) {
	for _, s := range srcs {
		s.Stream.Close()
	}
}
