package apiserver

import (
	"context"
	"errors"
	"net/http"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Controller is what the control API asks of the control plane: each
// route is one call here, and the server adds only what is the API's own
// (roles, decoding, status codes, streaming). pkg/controller's *Daemon
// implements it; the tests of the API's logic use a fake.
//
// progress receives the lines a transition reports as it goes (streamed
// to the client); user is the caller's OS user, for the journal.
type Controller interface {
	// Status is what runs and how it fares.
	Status(ctx context.Context) api.Status
	// Validate checks the manifest on disk without changing what runs.
	Validate(ctx context.Context) api.Validation
	// Diff is what the next reconcile would do; with down, what `down`
	// (removing volumes too with volumes) would remove.
	Diff(ctx context.Context, down, volumes bool) (api.Diff, error)
	// History is the journal's newest records matching f, at most limit.
	History(f journal.Filter, limit int) ([]journal.Record, error)
	// Releases lists a service's releases ("" names the only or primary
	// one), newest first.
	Releases(ctx context.Context, service string) (api.Releases, error)
	// Logs opens the logs q asks for. Once it returns, the caller must
	// call copy, which sends their lines through emit until they end,
	// emit fails or ctx ends, and closes them.
	Logs(ctx context.Context, q api.LogQuery) (copy func(emit func(api.LogLine) error) error, err error)

	// Deploy waits for a reconcile of the manifest as it is now.
	Deploy(ctx context.Context, user string, progress func(string)) error
	// Promote promotes the canary (or moves it one step on, unless full).
	Promote(ctx context.Context, user string, req api.PromoteRequest, progress func(string)) error
	// Rollback drops the canary, or brings back the release req.To.
	Rollback(ctx context.Context, user string, req api.RollbackRequest, progress func(string)) error
	// Abort rolls the canary back now, journaled with reason.
	Abort(ctx context.Context, user string, req api.AbortRequest, progress func(string)) error
	// Down removes what the project runs (and its volumes with volumes).
	Down(ctx context.Context, user string, volumes bool, progress func(string)) error
	// Traffic puts a hold on the front door (nil: requests pass again).
	Traffic(ctx context.Context, user string, hold *stack.Traffic, progress func(string)) error
	// SetPaused pauses or resumes the stepped canary's walk.
	SetPaused(user, service string, paused bool) error
	// Chaos injects req's failure into a track's app containers.
	Chaos(ctx context.Context, user string, req api.ChaosRequest) (api.ChaosResult, error)

	// Acting is nil when this daemon may change what runs, else why not
	// (a Kubernetes daemon that does not hold its namespace's Lease
	// names the leader). Every mutating route asks it first.
	Acting() error
	// Metrics serves the daemon's own metrics (GET /metrics).
	Metrics() http.Handler
	// Refused journals a refused call; key groups a caller's repeats of
	// one refusal so that they can be counted rather than written one by
	// one.
	Refused(key string, rec journal.Record)
	// SocketRecreated journals that the control socket was made again
	// after it was removed.
	SocketRecreated(path string)
}

// Error is a failure the controller classes: the API answers it with
// Status (a failure of no class is a 500, or a streamed error line).
type Error struct {
	Status int
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// BadRequest: the request names a value that cannot be (400).
func BadRequest(err error) error { return &Error{http.StatusBadRequest, err} }

// NotFound: the request names what does not exist (404).
func NotFound(err error) error { return &Error{http.StatusNotFound, err} }

// Conflict: the daemon's state does not allow the request now, such as no
// valid manifest (409).
func Conflict(err error) error { return &Error{http.StatusConflict, err} }

// TooMany: a bound of answers served at once is reached (429).
func TooMany(err error) error { return &Error{http.StatusTooManyRequests, err} }

// NotImplemented: the target cannot do this at all (501).
func NotImplemented(err error) error { return &Error{http.StatusNotImplemented, err} }

// BadGateway: what the request was passed on to failed (502).
func BadGateway(err error) error { return &Error{http.StatusBadGateway, err} }

// Unavailable: what the daemon reads or drives cannot be reached now, or
// this daemon is not the one acting (503).
func Unavailable(err error) error { return &Error{http.StatusServiceUnavailable, err} }

// statusOf is err's class, or fallback when it has none.
func statusOf(err error, fallback int) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	var re *api.RequestError
	if errors.As(err, &re) {
		return re.Status
	}
	return fallback
}

// Denied is a refusal by policy: its reasons (and whether retrying may
// pass) go to the client as such, beside the message.
type Denied struct {
	Reasons   []string
	Transient bool
	Err       error
}

func (e *Denied) Error() string { return e.Err.Error() }
func (e *Denied) Unwrap() error { return e.Err }
