package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

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

// writeFailure answers err with its class's status (controller.go), or
// with fallback when it has none.
func writeFailure(w http.ResponseWriter, err error, fallback int) {
	writeErr(w, statusOf(err, fallback), err)
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

// finish sends the last line: the outcome, a policy's denial with its
// reasons.
func (s *streamer) finish(err error) {
	p := api.Progress{Done: true}
	var denied *Denied
	switch {
	case errors.As(err, &denied):
		p.Denied = denied.Reasons
		p.Transient = denied.Transient
		p.Error = err.Error()
	case err != nil:
		p.Error = err.Error()
	}
	s.send(p)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
