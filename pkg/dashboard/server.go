// Package dashboard is `swiftctl dashboard`: a web page served by the CLI
// on loopback, live over server-sent events. One poller per CLI process
// asks the daemon (over its Unix socket, as the user who ran the CLI, so
// the roles apply unchanged) for status and new journal events once per
// interval, and fans them out to every open page; the page draws its
// charts by hand in SVG (assets/, embedded). Actions (promote, abort,
// pause, resume, rollback) call the same control API as the CLI and show
// the daemon's answer, a gate's denial with its reasons included; the page
// offers them only to a caller whose role is operate or admin.
//
// The page is reachable only with the random token printed in its URL,
// and only under the Host it was printed with (no DNS rebinding): another
// site open in the same browser can neither read the stream nor post an
// action.
package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

//go:embed assets
var assets embed.FS

// Options configure a Server.
type Options struct {
	// Interval is how often the daemon is asked while something moves
	// (default 2s); Idle while nothing does (default 15s).
	Interval, Idle time.Duration
}

// Server is one dashboard.
type Server struct {
	hub   *hub
	token string
	host  string // the Host the URL names
	ln    net.Listener
}

// Listen checks that addr is a loopback address and listens on it.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--listen %q: the dashboard listens on loopback only (127.0.0.1 or ::1)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", addr, err)
	}
	return ln, nil
}

// New prepares a dashboard on ln for the daemon d.
func New(d Daemon, ln net.Listener, opts Options) (*Server, error) {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.Idle < opts.Interval {
		opts.Idle = max(15*time.Second, opts.Interval)
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return &Server{hub: newHub(d, opts.Interval, opts.Idle), token: hex.EncodeToString(b), host: ln.Addr().String(), ln: ln}, nil
}

// URL is the page's address, token included.
func (s *Server) URL() string { return "http://" + s.host + "/?token=" + s.token }

// Serve polls the daemon and serves the page until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	go s.hub.run(ctx)
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Handler serves the page, its assets, the event stream and the actions.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServer(http.FS(static))
	mux.Handle("GET /", files)
	mux.HandleFunc("GET /events", s.handleEvents)
	mux.HandleFunc("POST /action/{name}", s.handleAction)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		w.Header().Set("Referrer-Policy", "no-referrer")
		if r.Host != s.host {
			http.Error(w, "unexpected Host: use the URL swiftctl dashboard printed", http.StatusForbidden)
			return
		}
		if !s.authorized(r) {
			http.Error(w, "missing or wrong token: use the URL swiftctl dashboard printed", http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// authorized: the page and its stream carry the token in the query, an
// action in a header (which a cross-site form cannot set).
func (s *Server) authorized(r *http.Request) bool {
	got := r.URL.Query().Get("token")
	if r.Method == http.MethodPost {
		got = r.Header.Get("X-Dashboard-Token")
	} else if r.URL.Path != "/" && r.URL.Path != "/events" {
		return true // the static assets hold nothing of the daemon's
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) == 1
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	init, ch := s.hub.subscribe()
	defer s.hub.unsubscribe(ch)
	s.hub.poke()
	send := func(u Update) bool {
		b, err := json.Marshal(u)
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	if !send(init) {
		return
	}
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case u := <-ch:
			if !send(u) {
				return
			}
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// ActionResult is the daemon's answer to an action, as the page shows it.
type ActionResult struct {
	OK     bool     `json:"ok"`
	Lines  []string `json:"lines,omitempty"`
	Error  string   `json:"error,omitempty"`
	Denied []string `json:"denied,omitempty"`
}

// actions are the page's buttons: each the control API call its swiftctl
// command makes.
var actions = map[string]struct {
	path   string
	stream bool
}{
	"promote":  {api.PathPromote, true},
	"abort":    {api.PathAbort, true},
	"rollback": {api.PathRollback, true},
	"pause":    {api.PathPause, false},
	"resume":   {api.PathResume, false},
}

func (s *Server) handleAction(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	a, ok := actions[name]
	if !ok {
		http.Error(w, "unknown action "+name, http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Minute)
	defer cancel()
	var res ActionResult
	var body any
	if name == "abort" {
		body = api.AbortRequest{Reason: "aborted from the dashboard"}
	}
	if a.stream {
		final, err := s.hub.d.Stream(ctx, a.path, body, func(p api.Progress) {
			if p.Line != "" {
				res.Lines = append(res.Lines, p.Line)
			}
		})
		switch {
		case err != nil:
			res.Error = err.Error()
		case len(final.Denied) > 0:
			res.Denied, res.Error = final.Denied, final.Error
		case final.Error != "":
			res.Error = final.Error
		default:
			res.OK = true
		}
	} else if err := s.hub.d.Post(ctx, a.path, struct{}{}, nil); err != nil {
		res.Error = err.Error()
	} else {
		res.OK = true
	}
	res.Error = strings.TrimSpace(res.Error)
	s.hub.poke() // show what the action changed now
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}
