package controller

import (
	"context"
	"errors"
	"net/http"

	"github.com/swiftdeploy/swiftdeploy/pkg/target"

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
	mux.HandleFunc("POST "+api.PathChaos, func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotImplemented, errors.New("chaos is not available on the Kubernetes target"))
	})
	// A daemon that does not hold the namespace's Lease changes nothing:
	// what would is refused, naming the leader to ask instead.
	for _, path := range []string{api.PathDeploy, api.PathDown, api.PathPromote, api.PathRollback, api.PathAbort, api.PathPause, api.PathResume, api.PathTraffic} {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			if err := d.kt.acting(); err != nil {
				writeErr(w, http.StatusServiceUnavailable, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	mux.Handle("/", next)
	return mux
}

// Check is validate on Kubernetes: the objects render, and the API server
// accepts every one (a strict server-side dry-run apply, which also runs
// admission).
func (t *kubeTarget) Check(ctx context.Context, m *manifest.Manifest, st target.Decisions) []api.Check {
	desired, err := t.desired(m, st)
	if err != nil {
		return []api.Check{{Name: "Kubernetes objects render", Detail: err.Error()}}
	}
	out := []api.Check{{Name: "Kubernetes objects render", OK: true}}
	check := api.Check{Name: "API server accepts every object (dry run)", OK: true}
	for _, obj := range desired.Objects {
		body, err := k8srender.JSON(obj)
		if err == nil {
			_, err = t.api.Apply(ctx, kubetarget.RefOf(obj), body, kube.ApplyOptions{DryRun: true})
		}
		if err != nil {
			check.OK, check.Detail = false, err.Error()
			break
		}
	}
	return append(out, check)
}
