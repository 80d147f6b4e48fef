package authz_test

import (
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
)

// A daemon's server: the peer is recorded when a connection is accepted,
// every request goes through the middleware, and refusals are journaled.
func ExampleMiddleware() {
	fs := flag.NewFlagSet("swiftdeployd", flag.ContinueOnError)
	authzConfig := authz.RegisterFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		log.Fatal(err)
	}
	cfg, err := authzConfig() // refuses unknown groups: do not start
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	// mux.HandleFunc("GET "+api.PathStatus, ...) and the other routes
	onDeny := func(p authz.Peer, need authz.Role, r *http.Request) {
		d := authz.DenialOf(r)
		// journal an "access_denied" event: user p.Name(), message d.Error(),
		// details method, path, need, have, uid, gid, pid
		log.Printf("refused: %v (need %v, have %v)", d, need, d.Have)
	}
	srv := &http.Server{
		Handler:           authz.Middleware(cfg, mux, onDeny),
		ConnContext:       authz.ConnContext,
		ReadHeaderTimeout: 5 * time.Second,
	}
	ln, err := net.Listen("unix", "/run/swiftdeploy/swiftdeployd.sock")
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(srv.Serve(ln))
}
