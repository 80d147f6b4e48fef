package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
)

// listen creates the control socket, readable and writable by its owner and
// group only (0660): the API can start containers, so it is as sensitive as
// the Docker socket itself.
func listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another swiftdeployd is already listening on %s", path)
	}
	_ = os.Remove(path) // stale socket of a dead daemon
	// The socket file must never be reachable by others, not even between
	// bind and chmod. Setting the process's umask around bind would do it,
	// but the umask is process-wide: a directory made meanwhile by another
	// goroutine (the manifest's directory restored, its state directories
	// made again) would get the socket's mode, 0640 with no search bit.
	// Instead the socket's own mode is set before bind: Linux creates the
	// file with the socket inode's mode less the umask, so it is born 0660
	// at most; the chmod after makes it exactly 0660.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var cerr error
		if err := c.Control(func(fd uintptr) { cerr = syscall.Fchmod(int(fd), 0o660) }); err != nil {
			return err
		}
		if cerr != nil {
			return fmt.Errorf("set the socket's mode before bind: %w", cerr)
		}
		return nil
	}}
	ln, err := lc.Listen(context.Background(), "unix", path)
	if err == nil && afterBind != nil {
		afterBind(path)
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (a path over 107 bytes is too long for a socket: use --socket)", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}

// afterBind, when set, runs between bind and chmod (tests look at the
// socket's mode there).
var afterBind func(path string)

// serve serves the control API on ln until the server shuts down or ln is
// closed (replaced by guardSocket).
func (d *Daemon) serve(srv *http.Server, ln net.Listener) {
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			d.log.Error("control API stopped", zap.Error(err))
		}
	}()
}

// guardSocket keeps the control socket reachable at its path. Removing the
// directory it lives in (by default the manifest's) unlinks it, and the
// daemon would go on listening on a socket no one can connect to: every
// swiftctl command would fail until a restart. When the path no longer
// names our socket and the directory above the socket's can be used, the
// socket is made again and served by the same server.
func (d *Daemon) guardSocket(ctx context.Context, srv *http.Server, ln net.Listener) {
	path := d.cfg.Socket
	ours, _ := os.Stat(path)
	t := time.NewTicker(watchRetry)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err == nil && ours != nil && os.SameFile(fi, ours) {
			continue
		}
		if perr := d.socketDirBack(path); perr != nil {
			if !warned {
				d.log.Warn("control socket removed with its directory; it is made again once the directory is back", zap.String("socket", path), zap.Error(perr))
				warned = true
			}
			continue
		}
		nl, err := listen(path)
		if err != nil {
			if !warned {
				d.log.Warn("control socket removed or replaced; cannot make it again yet", zap.String("socket", path), zap.Error(err))
				warned = true
			}
			continue
		}
		// Closing the old listener must not unlink the path: it names the
		// new socket now.
		if ul, ok := ln.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
		_ = ln.Close()
		ln, warned = nl, false
		ours, _ = os.Stat(path)
		d.serve(srv, nl)
		d.log.Warn("control socket was removed or replaced; listening again", zap.String("socket", path))
		d.event(eventSocketRecreated, "control socket "+path+" was removed or replaced (its directory deleted?); listening on it again", "", map[string]any{"socket": path})
	}
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

// userOf names the OS user on the other end of the socket (from its peer
// credentials), so that the journal says who asked.
func userOf(r *http.Request) string {
	p, ok := authz.PeerFrom(r.Context())
	if !ok {
		return ""
	}
	return p.Name()
}

// handleWhoami says who the caller is and which role it has.
func (d *Daemon) handleWhoami(w http.ResponseWriter, r *http.Request) {
	p, _ := authz.PeerFrom(r.Context())
	writeJSON(w, http.StatusOK, api.Whoami{User: p.Name(), Role: d.cfg.Authz.RoleOf(p).String()})
}

// onDeny journals a refusal. Refusals are counted, not journaled one by
// one: the first of each (uid, route, reason) is written at once, its
// repeats are summed into one record with a count and first and last
// times when the streak ends (a minute at most, see refusalSweep), so a
// caller with no role cannot grow the journal without bound.
func (d *Daemon) onDeny(p authz.Peer, need authz.Role, r *http.Request) {
	den := authz.DenialOf(r)
	if den == nil { // Middleware always sets it; be safe
		den = &authz.DeniedError{Peer: p, Method: r.Method, Path: r.URL.Path, Need: need}
	}
	path := r.URL.Path
	if len(path) > authz.MaxPathInMessage {
		path = path[:authz.MaxPathInMessage] + "…"
	}
	rec := journal.Record{Type: journal.TypeEvent, Event: journal.EventAccessDenied, Message: den.Error(), User: p.Name(),
		Codes: []string{authz.RefusalCode(den)},
		Details: map[string]any{"method": r.Method, "path": path,
			"need": need.String(), "have": den.Have.String(), "uid": p.UID, "gid": p.GID, "pid": p.PID}}
	d.noteJournal("refusal", d.refusals.Append(d.jr, authz.RefusalKey(den), rec))
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

func writeRequestErr(w http.ResponseWriter, err error) {
	var re *api.RequestError
	if errors.As(err, &re) {
		writeErr(w, re.Status, re)
		return
	}
	writeErr(w, http.StatusBadRequest, err)
}

// routes registers every control API route. The returned Mux knows its
// patterns, so a test walks every route the server serves with every role
// (route_walk_test.go) and fails on one missing from authz's table.
func (d *Daemon) routes() *authz.Mux {
	mux := authz.NewMux()
	mux.HandleFunc("GET "+api.PathStatus, d.handleStatus)
	mux.HandleFunc("POST "+api.PathDeploy, d.handleDeploy)
	mux.HandleFunc("POST "+api.PathValidate, d.handleValidate)
	mux.HandleFunc("GET "+api.PathDiff, d.handleDiff)
	mux.HandleFunc("POST "+api.PathDown, d.handleDown)
	mux.HandleFunc("GET "+api.PathHistory, d.handleHistory)
	mux.HandleFunc("POST "+api.PathPromote, d.handlePromote)
	mux.HandleFunc("POST "+api.PathRollback, d.handleRollback)
	mux.HandleFunc("POST "+api.PathChaos, d.handleChaos)
	mux.HandleFunc("POST "+api.PathAbort, d.handleAbort)
	mux.HandleFunc("POST "+api.PathPause, d.handlePause)
	mux.HandleFunc("POST "+api.PathResume, d.handleResume)
	mux.HandleFunc("POST "+api.PathTraffic, d.handleTraffic)
	mux.Handle("GET "+api.PathMetrics, d.metrics.Handler())
	mux.HandleFunc("GET "+api.PathWhoami, d.handleWhoami)
	mux.HandleFunc("GET "+api.PathLogs, d.handleLogs)
	mux.HandleFunc("GET "+api.PathReleases, d.handleReleases)
	if d.kt != nil {
		return d.kubeRoutes(mux)
	}
	return mux
}

func (d *Daemon) server() *http.Server {
	return &http.Server{
		Handler:           authz.Middleware(d.cfg.Authz, d.routes(), d.onDeny),
		ReadHeaderTimeout: 5 * time.Second,
		// An idle keep-alive connection is closed: a caller cannot hold
		// connections (and their goroutines) open for ever. Bodies have
		// their own deadline (api.DecodeBody); there is no ReadTimeout,
		// which would cut the streamed answers of deploy and promote.
		IdleTimeout: 2 * time.Minute,
		ConnContext: authz.ConnContext,
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, api.Error{Error: err.Error()})
}

func (d *Daemon) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, d.Status(r.Context()))
}

// streamer writes NDJSON progress lines; safe to call from the reconcile
// goroutine even after the client went away.
type streamer struct {
	mu     sync.Mutex
	w      http.ResponseWriter
	closed bool
}

func newStreamer(w http.ResponseWriter) *streamer {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	return &streamer{w: w}
}

func (s *streamer) send(p api.Progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	b, _ := json.Marshal(p)
	_, _ = s.w.Write(append(b, '\n'))
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *streamer) line(l string) { s.send(api.Progress{Line: l}) }

func (s *streamer) finish(err error) {
	p := api.Progress{Done: true}
	var denied *reconciler.DeniedError
	var pdenied *promoteDenied
	switch {
	case errors.As(err, &denied):
		p.Denied = denied.Reasons
		p.Transient = denied.Transient
		p.Error = err.Error()
	case errors.As(err, &pdenied):
		p.Denied = pdenied.reasons
		p.Error = err.Error()
	case err != nil:
		p.Error = err.Error()
	}
	s.send(p)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (d *Daemon) handlePromote(w http.ResponseWriter, r *http.Request) {
	var req api.PromoteRequest
	if r.ContentLength != 0 { // older clients send no body
		if err := api.DecodeBody(w, r, &req); err != nil {
			writeRequestErr(w, err)
			return
		}
	}
	st := newStreamer(w)
	st.finish(d.promoteRequest(context.WithoutCancel(r.Context()), userOf(r), req.Full, st.line))
}

// handleRollback drops the canary, or with a body naming a release
// (RollbackRequest.To) brings that release back (restore.go).
func (d *Daemon) handleRollback(w http.ResponseWriter, r *http.Request) {
	var req api.RollbackRequest
	if r.ContentLength != 0 { // older clients send no body
		if err := api.DecodeBody(w, r, &req); err != nil {
			writeRequestErr(w, err)
			return
		}
	}
	st := newStreamer(w)
	ctx := context.WithoutCancel(r.Context())
	if req.To == "" {
		if req.Service != "" {
			if m := d.readManifest(); m != nil {
				if _, err := resolveService(m, req.Service); err != nil {
					st.finish(err)
					return
				}
			}
		}
		st.finish(d.rollback(ctx, userOf(r), st.line))
		return
	}
	st.finish(d.rollbackTo(ctx, userOf(r), req.Service, req.To, st.line))
}

// handleReleases lists a service's releases, newest first.
func (d *Daemon) handleReleases(w http.ResponseWriter, r *http.Request) {
	m := d.readManifest()
	if m == nil {
		writeErr(w, http.StatusConflict, fmt.Errorf("no valid manifest: %v", d.manifestErrors()))
		return
	}
	svc, err := resolveService(m, r.URL.Query().Get("service"))
	if err != nil {
		writeErr(w, http.StatusNotFound, err)
		return
	}
	out, err := d.releasesOf(r.Context(), svc)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// handleDown removes everything the project owns and pauses reconciling
// until the next deploy.
func (d *Daemon) handleDown(w http.ResponseWriter, r *http.Request) {
	st := newStreamer(w)
	// A client that goes away must not cut a transaction short.
	volumes := r.URL.Query().Get("volumes") == "true"
	st.finish(d.down(context.WithoutCancel(r.Context()), userOf(r), volumes, st.line))
}

func (d *Daemon) handleDeploy(w http.ResponseWriter, r *http.Request) {
	user := userOf(r)
	d.event(journal.EventDeployStarted, "deploy requested", user, nil)
	st := newStreamer(w)
	// The reconcile journals the outcome (deploy_succeeded/failed/denied).
	st.finish(d.waitAs(r.Context(), user, st.line))
}

func (d *Daemon) handleDiff(w http.ResponseWriter, r *http.Request) {
	m := d.readManifest()
	if m == nil {
		writeErr(w, http.StatusConflict, fmt.Errorf("no valid manifest: %v", d.manifestErrors()))
		return
	}
	d.mu.Lock()
	s := d.state
	d.mu.Unlock()
	if r.URL.Query().Get("down") == "true" || s.Down {
		// What `swiftctl down` would remove, or, while down, what the
		// next reconcile removes of what is left.
		plan, err := d.target.Teardown(r.Context(), m, r.URL.Query().Get("volumes") == "true" || s.DownVolumes)
		if err != nil {
			writeErr(w, http.StatusServiceUnavailable, err)
			return
		}
		out := api.Diff{Plan: []string{}, Teardown: true}
		for _, op := range plan {
			out.Plan = append(out.Plan, op.String())
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	ch, err := d.target.Change(r.Context(), m, s)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	out := api.Diff{Blocked: ch.Blocked(), Plan: []string{}, Gated: ch.Gated()}
	out.Plan = append(out.Plan, ch.Lines()...)
	writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handleHistory(w http.ResponseWriter, r *http.Request) {
	var f journal.Filter
	q := r.URL.Query()
	if t := q.Get("type"); t != "" {
		f.Types = []string{t}
	}
	if s := q.Get("since"); s != "" {
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("since: want RFC 3339 time, got %q", s))
			return
		}
		f.Since = ts
	}
	limit, err := api.ParseLimit(q.Get("limit"), api.DefaultHistoryLimit, api.MaxHistoryLimit)
	if err != nil {
		writeRequestErr(w, err)
		return
	}
	_ = d.jr.Flush()
	// Only the newest files that hold the last limit records are read,
	// not every rotated file on each call.
	recs, err := journal.Tail(d.journalPath(), f, limit)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	if recs == nil {
		recs = []journal.Record{}
	}
	writeJSON(w, http.StatusOK, recs)
}

func logErr(log *zap.Logger, msg string, err error) {
	if err != nil {
		log.Error(msg, zap.Error(err))
	}
}
