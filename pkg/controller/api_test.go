package controller

import (
	"net/http"

	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
)

// server is the control API's http.Server over d, as Run serves it on
// the socket (role checks included).
func (d *Daemon) server() *http.Server { return d.newAPI().HTTPServer() }

// routes are the control API's routes over d, without the role checks.
func (d *Daemon) routes() *authz.Mux { return d.newAPI().Routes() }

// serveAPI answers r as the control API over d would for a caller the
// roles allow.
func serveAPI(d *Daemon, w http.ResponseWriter, r *http.Request) { d.routes().ServeHTTP(w, r) }
