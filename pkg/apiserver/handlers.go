package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// A transition's answer streams its progress; the client going away does
// not cut the transaction short (context.WithoutCancel), except a deploy,
// which only waits for the reconcile.

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.c.Status(r.Context()))
}

// handleWhoami says who the caller is and which role it has.
func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request) {
	p, _ := authz.PeerFrom(r.Context())
	writeJSON(w, http.StatusOK, api.Whoami{User: p.Name(), Role: s.opts.Authz.RoleOf(p).String()})
}

// handleValidate runs the checks on the manifest as it is on disk now.
func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.c.Validate(r.Context()))
}

func (s *Server) handleDiff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	out, err := s.c.Diff(r.Context(), q.Get("down") == "true", q.Get("volumes") == "true")
	if err != nil {
		writeFailure(w, err, http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	var f journal.Filter
	q := r.URL.Query()
	if t := q.Get("type"); t != "" {
		f.Types = []string{t}
	}
	if v := q.Get("since"); v != "" {
		ts, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("since: want RFC 3339 time, got %q", v))
			return
		}
		f.Since = ts
	}
	limit, err := api.ParseLimit(q.Get("limit"), api.DefaultHistoryLimit, api.MaxHistoryLimit)
	if err != nil {
		writeFailure(w, err, http.StatusBadRequest)
		return
	}
	recs, err := s.c.History(f, limit)
	if err != nil {
		writeFailure(w, err, http.StatusInternalServerError)
		return
	}
	if recs == nil {
		recs = []journal.Record{}
	}
	writeJSON(w, http.StatusOK, recs)
}

// handleReleases lists a service's releases, newest first.
func (s *Server) handleReleases(w http.ResponseWriter, r *http.Request) {
	out, err := s.c.Releases(r.Context(), r.URL.Query().Get("service"))
	if err != nil {
		writeFailure(w, err, http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// decodeOptional decodes r's body into v; older clients send none.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength == 0 {
		return true
	}
	if err := api.DecodeBody(w, r, v); err != nil {
		writeFailure(w, err, http.StatusBadRequest)
		return false
	}
	return true
}

func (s *Server) handleDeploy(w http.ResponseWriter, r *http.Request) {
	st := newStreamer(w)
	// The controller journals the outcome (deploy_succeeded/failed/denied).
	st.finish(s.c.Deploy(r.Context(), userOf(r), st.line))
}

func (s *Server) handlePromote(w http.ResponseWriter, r *http.Request) {
	var req api.PromoteRequest
	if !decodeOptional(w, r, &req) {
		return
	}
	st := newStreamer(w)
	st.finish(s.c.Promote(context.WithoutCancel(r.Context()), userOf(r), req, st.line))
}

// handleRollback drops the canary, or with a body naming a release
// (RollbackRequest.To) brings that release back.
func (s *Server) handleRollback(w http.ResponseWriter, r *http.Request) {
	var req api.RollbackRequest
	if !decodeOptional(w, r, &req) {
		return
	}
	st := newStreamer(w)
	st.finish(s.c.Rollback(context.WithoutCancel(r.Context()), userOf(r), req, st.line))
}

func (s *Server) handleAbort(w http.ResponseWriter, r *http.Request) {
	var req api.AbortRequest
	if !decodeOptional(w, r, &req) {
		return
	}
	st := newStreamer(w)
	st.finish(s.c.Abort(r.Context(), userOf(r), req, st.line))
}

// handleDown removes everything the project owns and pauses reconciling
// until the next deploy.
func (s *Server) handleDown(w http.ResponseWriter, r *http.Request) {
	st := newStreamer(w)
	volumes := r.URL.Query().Get("volumes") == "true"
	st.finish(s.c.Down(context.WithoutCancel(r.Context()), userOf(r), volumes, st.line))
}

func (s *Server) handleTraffic(w http.ResponseWriter, r *http.Request) {
	var req api.TrafficRequest
	if err := api.DecodeBody(w, r, &req); err != nil {
		writeFailure(w, err, http.StatusBadRequest)
		return
	}
	hold, err := trafficHold(req)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err)
		return
	}
	st := newStreamer(w)
	st.finish(s.c.Traffic(context.WithoutCancel(r.Context()), userOf(r), hold, st.line))
}

func (s *Server) handlePause(w http.ResponseWriter, r *http.Request)  { s.handleSetPaused(w, r, true) }
func (s *Server) handleResume(w http.ResponseWriter, r *http.Request) { s.handleSetPaused(w, r, false) }

func (s *Server) handleSetPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	var req api.PauseRequest
	if !decodeOptional(w, r, &req) {
		return
	}
	if err := s.c.SetPaused(userOf(r), req.Service, paused); err != nil {
		writeFailure(w, err, http.StatusConflict)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"paused": paused})
}

// handleChaos injects chaos into a track's app containers; the answer
// names those it reached (also when it failed on one after them).
func (s *Server) handleChaos(w http.ResponseWriter, r *http.Request) {
	var req api.ChaosRequest
	if err := api.DecodeBody(w, r, &req); err != nil {
		writeFailure(w, err, http.StatusBadRequest)
		return
	}
	out, err := s.c.Chaos(r.Context(), userOf(r), req)
	if err != nil {
		writeFailure(w, err, http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
