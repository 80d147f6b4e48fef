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

	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	old := syscall.Umask(0o117)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (a path over 107 bytes is too long for a socket: use --socket)", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}

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

func (d *Daemon) onDeny(p authz.Peer, need authz.Role, r *http.Request) {
	den := authz.DenialOf(r)
	msg := need.String() + " needed for " + r.Method + " " + r.URL.Path
	have := ""
	if den != nil {
		msg, have = den.Error(), den.Have.String()
	}
	d.event(journal.EventAccessDenied, msg, p.Name(), map[string]any{"method": r.Method, "path": r.URL.Path,
		"need": need.String(), "have": have, "uid": p.UID, "gid": p.GID, "pid": p.PID})
}

func writeRequestErr(w http.ResponseWriter, err error) {
	var re *api.RequestError
	if errors.As(err, &re) {
		writeErr(w, re.Status, re)
		return
	}
	writeErr(w, http.StatusBadRequest, err)
}

func (d *Daemon) server() *http.Server {
	mux := http.NewServeMux()
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
	mux.Handle("GET "+api.PathMetrics, promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
	var h http.Handler = mux
	if d.kt != nil {
		h = d.kubeRoutes(mux)
	}
	return &http.Server{
		Handler:           authz.Middleware(d.cfg.Authz, h, d.onDeny),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext:       authz.ConnContext,
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

func (d *Daemon) handleRollback(w http.ResponseWriter, r *http.Request) {
	st := newStreamer(w)
	st.finish(d.rollback(context.WithoutCancel(r.Context()), userOf(r), st.line))
}

// handleDown removes everything the project owns and pauses reconciling
// until the next deploy.
func (d *Daemon) handleDown(w http.ResponseWriter, r *http.Request) {
	st := newStreamer(w)
	// A client that goes away must not cut a transaction short.
	st.finish(d.down(context.WithoutCancel(r.Context()), userOf(r), st.line))
}

func (d *Daemon) handleDeploy(w http.ResponseWriter, r *http.Request) {
	user := userOf(r)
	d.event(journal.EventDeployStarted, "deploy requested", user, nil)
	st := newStreamer(w)
	// The reconcile journals the outcome (deploy_succeeded/failed/denied).
	st.finish(d.wait(r.Context(), st.line))
}

func (d *Daemon) handleDiff(w http.ResponseWriter, r *http.Request) {
	m := d.readManifest()
	if m == nil {
		writeErr(w, http.StatusConflict, fmt.Errorf("no valid manifest: %v", d.manifestErrors()))
		return
	}
	desired, err := d.desired(m)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	obs, err := d.rec.Observe(r.Context(), desired)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	plan := reconciler.Compute(desired, obs)
	out := api.Diff{Blocked: plan.Blocked, Plan: []string{}, Gated: plan.Gated()}
	for _, op := range plan.Ops {
		out.Plan = append(out.Plan, op.String())
	}
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
	var recs []journal.Record
	err = journal.Read(filepath.Join(d.dir, "history.jsonl"), f, func(rec journal.Record) error {
		recs = append(recs, rec)
		if len(recs) > limit {
			recs = recs[1:]
		}
		return nil
	})
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
