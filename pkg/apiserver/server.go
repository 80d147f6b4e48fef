// Package apiserver serves swiftdeployd's control API over its Unix
// socket: the socket itself (made 0660, made again when removed), the
// routes of pkg/api with the role each needs (pkg/authz), refusals passed
// to the journal, request decoding, status codes and the streamed answers
// (a transition's progress, swiftctl logs -f). What each route does is the
// control plane's: the server calls it through Controller (controller.go)
// and never imports pkg/controller, which builds a Server over its Daemon.
package apiserver

import (
	"context"
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
)

// Options configure a Server.
type Options struct {
	// Socket is the control socket's path (Listen).
	Socket string
	// Authz maps Unix groups to roles.
	Authz authz.Config
	Log   *zap.Logger
	// SocketDirBack reports whether the directory of a removed socket may
	// be used again (nil: once it exists): the controller decides which
	// directories it makes again.
	SocketDirBack func(socket string) error
	// GuardEvery is how often Guard checks that the socket is still at its
	// path (default 500ms).
	GuardEvery time.Duration
	// MaxLogReaders bounds the logs answers served at once (default
	// DefaultMaxLogReaders).
	MaxLogReaders int32
}

// DefaultMaxLogReaders bounds the logs answers served at once: each holds
// an engine connection per replica (and, following, for as long as its
// client likes), and the read role may ask for them.
const DefaultMaxLogReaders = 16

// Server is the control API over one Controller.
type Server struct {
	c    Controller
	opts Options
	log  *zap.Logger
	// stopping ends with StopStreams: answers that stream until the
	// client leaves (swiftctl logs -f) end then, or Shutdown would wait
	// for them.
	stopping    context.Context
	stopStreams context.CancelFunc
	// logReaders counts the logs answers being served.
	logReaders logReaders

	mu  sync.Mutex
	srv *http.Server // serving the socket, once Listen made it
	ln  net.Listener
}

// New builds the control API over c; Listen makes its socket.
func New(c Controller, opts Options) *Server {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.GuardEvery == 0 {
		opts.GuardEvery = 500 * time.Millisecond
	}
	if opts.MaxLogReaders == 0 {
		opts.MaxLogReaders = DefaultMaxLogReaders
	}
	s := &Server{c: c, opts: opts, log: opts.Log}
	s.logReaders.max = opts.MaxLogReaders
	s.stopping, s.stopStreams = context.WithCancel(context.Background())
	return s
}

// Routes registers every control API route, with no role check: Handler
// adds it. The returned Mux knows its patterns, so a test walks every
// route the server serves with every role and fails on one missing from
// authz's table.
func (s *Server) Routes() *authz.Mux {
	mux := authz.NewMux()
	mux.HandleFunc("GET "+api.PathStatus, s.handleStatus)
	mux.HandleFunc("POST "+api.PathDeploy, s.acting(s.handleDeploy))
	mux.HandleFunc("POST "+api.PathValidate, s.handleValidate)
	mux.HandleFunc("GET "+api.PathDiff, s.handleDiff)
	mux.HandleFunc("POST "+api.PathDown, s.acting(s.handleDown))
	mux.HandleFunc("GET "+api.PathHistory, s.handleHistory)
	mux.HandleFunc("POST "+api.PathPromote, s.acting(s.handlePromote))
	mux.HandleFunc("POST "+api.PathRollback, s.acting(s.handleRollback))
	mux.HandleFunc("POST "+api.PathChaos, s.handleChaos)
	mux.HandleFunc("POST "+api.PathAbort, s.acting(s.handleAbort))
	mux.HandleFunc("POST "+api.PathPause, s.acting(s.handlePause))
	mux.HandleFunc("POST "+api.PathResume, s.acting(s.handleResume))
	mux.HandleFunc("POST "+api.PathTraffic, s.acting(s.handleTraffic))
	mux.Handle("GET "+api.PathMetrics, s.c.Metrics())
	mux.HandleFunc("GET "+api.PathWhoami, s.handleWhoami)
	mux.HandleFunc("GET "+api.PathLogs, s.handleLogs)
	mux.HandleFunc("GET "+api.PathReleases, s.handleReleases)
	return mux
}

// acting refuses a mutating call, naming why, while the controller may
// not change what runs (a Kubernetes daemon that is not the leader):
// nothing is half done.
func (s *Server) acting(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.c.Acting(); err != nil {
			writeErr(w, statusOf(err, http.StatusServiceUnavailable), err)
			return
		}
		h(w, r)
	}
}

// Handler is the routes behind the role checks: a call the caller's role
// does not allow is refused with 403 and journaled (onDeny).
func (s *Server) Handler() http.Handler {
	return authz.Middleware(s.opts.Authz, s.Routes(), s.onDeny)
}

// HTTPServer is a new http.Server serving Handler, reading the caller's
// peer credentials from the socket.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		// An idle keep-alive connection is closed: a caller cannot hold
		// connections (and their goroutines) open for ever. Bodies have
		// their own deadline (api.DecodeBody); there is no ReadTimeout,
		// which would cut the streamed answers of deploy and promote.
		IdleTimeout: 2 * time.Minute,
		ConnContext: authz.ConnContext,
	}
}

// Listen makes the control socket at Options.Socket and serves it.
func (s *Server) Listen() error {
	ln, err := listen(s.opts.Socket)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.srv, s.ln = s.HTTPServer(), ln
	srv := s.srv
	s.mu.Unlock()
	s.serve(srv, ln)
	return nil
}

// StopStreams ends the answers that stream until their client leaves
// (swiftctl logs -f), telling the client the daemon stops.
func (s *Server) StopStreams() { s.stopStreams() }

// Shutdown ends the streams, then stops serving, waiting (up to ctx) for
// the answers in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopStreams()
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

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
// closed (replaced by Guard).
func (s *Server) serve(srv *http.Server, ln net.Listener) {
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Error("control API stopped", zap.Error(err))
		}
	}()
}

// Guard keeps the control socket reachable at its path until ctx ends.
// Removing the directory it lives in (by default the manifest's) unlinks
// it, and the daemon would go on listening on a socket no one can connect
// to: every swiftctl command would fail until a restart. When the path no
// longer names our socket and its directory may be used
// (Options.SocketDirBack), the socket is made again and served by the
// same server.
func (s *Server) Guard(ctx context.Context) {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.mu.Unlock()
	if srv == nil {
		return // not listening
	}
	path := s.opts.Socket
	ours, _ := os.Stat(path)
	t := time.NewTicker(s.opts.GuardEvery)
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
		if perr := s.socketDirBack(path); perr != nil {
			if !warned {
				s.log.Warn("control socket removed with its directory; it is made again once the directory is back", zap.String("socket", path), zap.Error(perr))
				warned = true
			}
			continue
		}
		nl, err := listen(path)
		if err != nil {
			if !warned {
				s.log.Warn("control socket removed or replaced; cannot make it again yet", zap.String("socket", path), zap.Error(err))
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
		s.mu.Lock()
		s.ln = nl
		s.mu.Unlock()
		ours, _ = os.Stat(path)
		s.serve(srv, nl)
		s.log.Warn("control socket was removed or replaced; listening again", zap.String("socket", path))
		s.c.SocketRecreated(path)
	}
}

func (s *Server) socketDirBack(path string) error {
	if s.opts.SocketDirBack != nil {
		return s.opts.SocketDirBack(path)
	}
	_, err := os.Stat(filepath.Dir(path))
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

// onDeny passes a refusal to the journal. The controller counts them
// rather than journaling each (Controller.Refused): key is the caller's
// uid, the route and the reason, so a caller with no role cannot grow the
// journal without bound.
func (s *Server) onDeny(p authz.Peer, need authz.Role, r *http.Request) {
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
	s.c.Refused(authz.RefusalKey(den), rec)
}
