package controller

import (
	"errors"
	"net/http"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
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
			if err := d.kt.Acting(); err != nil {
				writeErr(w, http.StatusServiceUnavailable, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	mux.Handle("/", next)
	return mux
}
