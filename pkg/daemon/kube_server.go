package daemon

import (
	"context"
	"errors"
	"net/http"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
)

// kubeRoutes serves, on the Kubernetes target, the API calls whose work
// differs from Docker's, and passes the rest (deploy, history, metrics)
// to the Docker target's mux, which the same loop and journal back. What
// the Kubernetes target cannot do is refused, saying so, never half done.
// It sits behind the same authz middleware as every call.
func (d *Daemon) kubeRoutes(next *http.ServeMux) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, d.kubeStatus(r.Context()))
	})
	mux.HandleFunc("GET "+api.PathDiff, d.handleKubeDiff)
	mux.HandleFunc("POST "+api.PathPromote, func(w http.ResponseWriter, r *http.Request) {
		var req api.PromoteRequest
		if r.ContentLength != 0 {
			if err := api.DecodeBody(w, r, &req); err != nil {
				writeRequestErr(w, err)
				return
			}
		}
		st := newStreamer(w)
		st.finish(d.kubePromote(context.WithoutCancel(r.Context()), userOf(r), st.line))
	})
	mux.HandleFunc("POST "+api.PathRollback, func(w http.ResponseWriter, r *http.Request) {
		st := newStreamer(w)
		st.finish(d.kubeRollback(context.WithoutCancel(r.Context()), userOf(r), nil, st.line))
	})
	mux.HandleFunc("POST "+api.PathAbort, func(w http.ResponseWriter, r *http.Request) {
		var req api.AbortRequest
		if r.ContentLength != 0 {
			if err := api.DecodeBody(w, r, &req); err != nil {
				writeRequestErr(w, err)
				return
			}
		}
		reason := req.Reason
		if reason == "" {
			reason = "aborted by an operator"
		}
		st := newStreamer(w)
		st.finish(d.kubeRollback(context.WithoutCancel(r.Context()), userOf(r), []string{reason}, st.line))
	})
	mux.HandleFunc("POST "+api.PathDown, func(w http.ResponseWriter, r *http.Request) {
		st := newStreamer(w)
		st.finish(d.kubeDown(context.WithoutCancel(r.Context()), userOf(r), st.line))
	})
	notHere := func(what string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			writeErr(w, http.StatusNotImplemented, errors.New(what+" is not available on the Kubernetes target"))
		}
	}
	mux.HandleFunc("POST "+api.PathChaos, notHere("chaos"))
	mux.HandleFunc("POST "+api.PathPause, notHere("pause (stepped canaries)"))
	mux.HandleFunc("POST "+api.PathResume, notHere("resume (stepped canaries)"))
	mux.HandleFunc("POST "+api.PathValidate, notHere("validate (use swiftctl render and a server-side dry-run)"))
	mux.Handle("/", next)
	return mux
}

func (d *Daemon) handleKubeDiff(w http.ResponseWriter, r *http.Request) {
	m := d.readManifest()
	if m == nil {
		writeErr(w, http.StatusConflict, errors.New("no valid manifest"))
		return
	}
	d.mu.Lock()
	st := d.state
	d.mu.Unlock()
	desired, err := d.kubeDesired(m, st)
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	obs, err := kubetarget.Observe(r.Context(), d.kt.api, d.kt.cfg.Namespace, m.Project)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	plan, err := kubetarget.Compute(r.Context(), d.kt.api, desired, obs)
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	out := api.Diff{Plan: plan.Lines(), Gated: plan.Gated()}
	if out.Plan == nil {
		out.Plan = []string{}
	}
	writeJSON(w, http.StatusOK, out)
}
