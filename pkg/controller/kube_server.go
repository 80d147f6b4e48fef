package controller

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
	"github.com/swiftdeploy/swiftdeploy/pkg/kube"
	"github.com/swiftdeploy/swiftdeploy/pkg/kubetarget"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	k8srender "github.com/swiftdeploy/swiftdeploy/pkg/render/kubernetes"
)

// kubeRoutes serves, on the Kubernetes target, the API calls whose work
// differs from Docker's, and passes the rest (deploy, history, metrics)
// to the Docker target's mux, which the same loop and journal back. What
// the Kubernetes target cannot do is refused, saying so, never half done.
// It sits behind the same authz middleware as every call.
func (d *Daemon) kubeRoutes(next *authz.Mux) *authz.Mux {
	mux := authz.NewMux()
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
	mux.HandleFunc("POST "+api.PathValidate, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, d.kubeValidate(r.Context()))
	})
	mux.Handle("/", next)
	return mux
}

// kubeValidate checks the manifest on disk without changing anything: it
// parses and renders, and the API server accepts every object it renders
// (a strict server-side dry-run apply, which also runs admission).
func (d *Daemon) kubeValidate(ctx context.Context) api.Validation {
	var v api.Validation
	data, err := os.ReadFile(d.cfg.ManifestPath)
	var m *manifest.Manifest
	if err == nil {
		m, err = accept(data, filepath.Base(d.dir))
	}
	if err != nil {
		v.Checks = append(v.Checks, api.Check{Name: "Manifest valid", Detail: err.Error()})
		return v
	}
	v.Checks = append(v.Checks, api.Check{Name: "Manifest valid", OK: true})
	d.mu.Lock()
	st := d.state
	d.mu.Unlock()
	desired, err := d.kubeDesired(m, st)
	if err != nil {
		v.Checks = append(v.Checks, api.Check{Name: "Kubernetes objects render", Detail: err.Error()})
		return v
	}
	v.Checks = append(v.Checks, api.Check{Name: "Kubernetes objects render", OK: true})
	check := api.Check{Name: "API server accepts every object (dry run)", OK: true}
	for _, obj := range desired.Objects {
		body, err := k8srender.JSON(obj)
		if err == nil {
			_, err = d.kt.api.Apply(ctx, kubetarget.RefOf(obj), body, kube.ApplyOptions{DryRun: true})
		}
		if err != nil {
			check.OK, check.Detail = false, err.Error()
			break
		}
	}
	v.Checks = append(v.Checks, check)
	return v
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
