package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// logServices are the services of m that logs SERVICE may name: the
// named form's, or the single service, named after the project as
// releases names it (serviceNames).
func logServices(m *manifest.Manifest) []string {
	if m.IsNamed() {
		return m.ServiceNames()
	}
	return serviceNames(m)
}

// checkService: "" is every service; anything else must name one of m's.
func checkService(m *manifest.Manifest, name string) error {
	names := logServices(m)
	if name == "" || slices.Contains(names, name) {
		return nil
	}
	return fmt.Errorf("no service %q in the manifest: its services are %v", name, names)
}

// maxLogReaders bounds the logs answers served at once: each holds an
// engine connection per replica (and, following, for as long as its
// client likes), and the read role may ask for them. A variable for tests.
var maxLogReaders int32 = 16

// logWriteTimeout bounds one write of a logs answer: a client that stops
// reading without going away does not hold the streams open for ever.
const logWriteTimeout = 30 * time.Second

// handleLogs serves GET /v1/logs: the replicas' lines, merged, NDJSON,
// each naming its container. The lines are the app's own: they go to the
// caller only, never to the daemon's log or the journal.
func (d *Daemon) handleLogs(w http.ResponseWriter, r *http.Request) {
	q, err := api.ParseLogQuery(r.URL.Query())
	if err != nil {
		writeRequestErr(w, err)
		return
	}
	m := d.readManifest()
	if m == nil {
		// A broken manifest is when the logs are most wanted: read
		// those of the last good one.
		d.mu.Lock()
		m = d.current
		d.mu.Unlock()
	}
	if m == nil {
		writeErr(w, http.StatusConflict, fmt.Errorf("no valid manifest: %v", d.manifestErrors()))
		return
	}
	if err := checkService(m, q.Service); err != nil {
		writeErr(w, http.StatusNotFound, err)
		return
	}
	lr, ok := d.target.(targets.LogReader)
	if !ok {
		writeErr(w, http.StatusNotImplemented, fmt.Errorf("the %s target cannot read logs", d.target.Name()))
		return
	}
	if d.logReaders.Add(1) > maxLogReaders {
		d.logReaders.Add(-1)
		writeErr(w, http.StatusTooManyRequests, fmt.Errorf("%d logs readers already (the most the daemon serves at once); try again when one ends", maxLogReaders))
		return
	}
	defer d.logReaders.Add(-1)
	// The streams end with the request (the client went away) or with
	// the daemon.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(d.stopping, cancel)()
	reps, err := lr.LogReplicas(ctx, m, q)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	srcs, err := openLogs(ctx, lr, m, reps, engine.LogOptions{Since: q.Since, Tail: q.Tail, Follow: q.Follow})
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	if len(srcs) == 0 {
		what := "service " + strings.Join(logServices(m), ", ")
		if q.Service != "" {
			what = "service " + q.Service
		}
		if q.Track != "" {
			what += " on track " + q.Track
		}
		writeErr(w, http.StatusNotFound, fmt.Errorf("no replica of %s exists", what))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	write := func(l api.LogLine) error {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_ = rc.SetWriteDeadline(time.Now().Add(logWriteTimeout))
		if _, err := w.Write(append(b, '\n')); err != nil {
			return err
		}
		if q.Follow {
			return rc.Flush()
		}
		return nil
	}
	if q.Follow {
		f := newFollower(lr, m, q)
		err = f.run(ctx, srcs, write)
	} else {
		err = mergeLogs(ctx, sourcesOf(srcs), write)
	}
	last := api.LogLine{Done: true}
	switch {
	case r.Context().Err() != nil:
		return // the client went away: no one to tell
	case d.stopping.Err() != nil:
		last.Stopped = true
	case err != nil:
		last.Error = err.Error()
	}
	_ = write(last)
	_ = rc.Flush()
}

// opened is a replica whose log is open.
type opened struct {
	targets.Replica
	stream engine.LogStream
}

// LogSource is one replica's log, opened.
type LogSource struct {
	Name   string // the container (Docker) or pod (Kubernetes)
	Stream engine.LogStream
}

func sourcesOf(os []opened) []LogSource {
	out := make([]LogSource, len(os))
	for i, o := range os {
		out[i] = LogSource{Name: o.Name, Stream: o.stream}
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

// mergeLogs writes the sources' lines through emit in time order and
// closes them. Each source is in time order, so a k-way merge holds one
// line per source whatever the logs' size. A source that fails is named
// in the error, after the others' lines.
func mergeLogs(ctx context.Context, srcs []LogSource, emit func(api.LogLine) error) error {
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

func mergeByTime(ctx context.Context, srcs []LogSource, emit func(api.LogLine) error) error {
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
func closeSources(srcs []LogSource) {
	for _, s := range srcs {
		s.Stream.Close()
	}
}
