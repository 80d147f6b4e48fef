package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// defaultService is how the command line names the manifest's one
// service (its containers' role). Named services (several per manifest)
// replace serviceNames; everything below takes the name already.
const defaultService = stack.RoleApp

// serviceNames are the services of m a request may name.
func serviceNames(*manifest.Manifest) []string { return []string{defaultService} }

// checkService says which services there are when name is none of them;
// "" is the manifest's only service.
func checkService(m *manifest.Manifest, name string) error {
	names := serviceNames(m)
	if name == "" || slices.Contains(names, name) {
		return nil
	}
	return fmt.Errorf("service: no service %q; the manifest has %q", name, names)
}

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
	lr, ok := d.target.(LogReader)
	if !ok {
		writeErr(w, http.StatusNotImplemented, fmt.Errorf("the %s target cannot read logs", d.target.Name()))
		return
	}
	// The streams end with the request (the client went away) or with
	// the daemon.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(d.stopping, cancel)()
	srcs, err := lr.Logs(ctx, m, q)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	if len(srcs) == 0 {
		what := "service " + defaultService
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
	err = mergeLogs(ctx, srcs, q.Follow, write)
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

// mergeLogs writes the sources' lines through emit and closes them. Not
// following, it merges them by time (each source is in time order: a
// k-way merge holds one line per source, whatever the logs' size);
// following, it writes each line as it comes, until ctx ends or every
// source has ended. A source that fails is named in the error, after the
// others' lines.
func mergeLogs(ctx context.Context, srcs []LogSource, follow bool, emit func(api.LogLine) error) error {
	closeAll := func() { closeSources(srcs) }
	defer closeAll()
	// Closing unblocks a Next waiting on a stream whose engine call does
	// not watch ctx.
	defer context.AfterFunc(ctx, closeAll)()
	if follow {
		return fanIn(ctx, srcs, emit)
	}
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

func fanIn(ctx context.Context, srcs []LogSource, emit func(api.LogLine) error) error {
	type item struct {
		line api.LogLine
		end  bool
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan item)
	var wg sync.WaitGroup
	// Cancelled and closed, every reader returns: none outlives the call.
	defer func() { cancel(); closeSources(srcs); wg.Wait() }()
	for _, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				l, err := s.Stream.Next()
				it := item{line: toAPI(s.Name, l)}
				if err != nil {
					it = item{end: true, err: sourceErr(ctx, s.Name, err)}
				}
				select {
				case ch <- it:
				case <-ctx.Done():
					return
				}
				if it.end {
					return
				}
			}
		}()
	}
	var errs []error
	for open := len(srcs); open > 0; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case it := <-ch:
			if it.end {
				open--
				if it.err != nil {
					errs = append(errs, it.err)
				}
				continue
			}
			if err := emit(it.line); err != nil {
				return err
			}
		}
	}
	return errors.Join(errs...)
}

// closeSources closes what was opened before a later source failed.
func closeSources(srcs []LogSource) {
	for _, s := range srcs {
		s.Stream.Close()
	}
}

// Logs opens the log of every app container of the project on q's track,
// stopped ones too (their last lines are often the point). A container
// removed between the list and the call (a deploy replacing it) is left
// out.
func (t dockerTarget) Logs(ctx context.Context, m *manifest.Manifest, q api.LogQuery) ([]LogSource, error) {
	le, ok := t.d.eng.(logsEngine)
	if !ok {
		return nil, errors.New("this engine cannot read logs")
	}
	cs, err := t.d.eng.ListContainers(ctx, m.Project, m.Network.Name)
	if err != nil {
		return nil, err
	}
	var out []LogSource
	for _, c := range cs {
		if c.Role != stack.RoleApp || (q.Track != "" && c.Track != q.Track) {
			continue
		}
		s, err := le.Logs(ctx, c.ID, engine.LogOptions{Since: q.Since, Tail: q.Tail, Follow: q.Follow})
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			closeSources(out)
			return nil, fmt.Errorf("container %s: %w", c.Name, err)
		}
		out = append(out, LogSource{Name: c.Name, Stream: s})
	}
	return out, nil
}
