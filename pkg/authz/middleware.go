package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"path"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// DeniedError is a refused request: who asked for what, what it needed and
// what the caller has.
type DeniedError struct {
	Peer   Peer
	Method string
	Path   string
	Need   Role
	Have   Role
	Known  bool  // the route is in the table
	Cause  error // why the caller is unidentified, if it is
}

// Error reads `promote needs role operate; user alice (uid 1001) has read`.
func (e *DeniedError) Error() string {
	op := operation(e.Path)
	if !e.Known {
		op = shortPath(e.Method) + " " + shortPath(e.Path) + " is not a control API route: it"
	}
	msg := op + " needs role " + e.Need.String() + "; "
	switch {
	case e.Peer.UID < 0 && e.Cause != nil:
		return msg + "the caller could not be identified: " + e.Cause.Error()
	case e.Peer.UID < 0:
		return msg + "the caller could not be identified"
	case e.Have == RoleNone:
		return msg + e.Peer.String() + " has no role"
	}
	return msg + e.Peer.String() + " has " + e.Have.String()
}

// operation names a route in messages: the last element of its path
// ("/v1/promote" is "promote").
func operation(p string) string {
	if b := path.Base(p); b != "/" && b != "." {
		return b
	}
	return p
}

type deniedKey struct{}

// DenialOf returns the refusal that the request passed to Middleware's
// onDeny carries, for the journal: nil for any other request.
func DenialOf(r *http.Request) *DeniedError {
	e, _ := r.Context().Value(deniedKey{}).(*DeniedError)
	return e
}

// Middleware lets a request through to next only if its caller's role
// (cfg.RoleOf of the peer ConnContext recorded) allows the route
// (Required). Otherwise it calls onDeny (if not nil) with the caller, the
// role needed and the request, whose DenialOf holds the whole refusal, and
// answers 403 with an api.Error such as
//
//	{"error": "promote needs role operate; user alice (uid 1001) has read"}
//
// A request on a connection without recorded credentials is refused: the
// server must use ConnContext. onDeny runs before the answer is written,
// on the request's goroutine; it must not write to the response.
func Middleware(cfg Config, next http.Handler, onDeny func(Peer, Role, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, identified := PeerFrom(r.Context())
		var denied *DeniedError
		if identified {
			err := cfg.Authorize(p, r.Method, r.URL.Path)
			if err == nil {
				next.ServeHTTP(w, r)
				return
			}
			denied = err.(*DeniedError)
		} else {
			need, known := Required(r.Method, r.URL.Path)
			denied = &DeniedError{Peer: p, Method: r.Method, Path: r.URL.Path, Need: need, Known: known, Cause: peerErr(r.Context())}
		}
		if onDeny != nil {
			onDeny(p, denied.Need, r.WithContext(context.WithValue(r.Context(), deniedKey{}, denied)))
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(api.Error{Error: denied.Error()})
	})
}
