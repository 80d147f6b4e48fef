// Package appclienttest holds the hostile app the tests of every client
// toward app containers (probe, scrape, chaos) are run against.
package appclienttest

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// RedirectingApp starts an app that answers every request with code,
// redirecting to a second listener standing for an address the daemon
// must not be steered to (loopback, 169.254.169.254), and returns the
// app and the count of requests that second listener saw.
func RedirectingApp(t testing.TB, code int) (app *httptest.Server, seen *atomic.Int64) {
	t.Helper()
	seen = new(atomic.Int64)
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		// Valid as a health answer and as metrics: a client that followed
		// the redirect would see success.
		_, _ = w.Write([]byte("http_requests_total 1\n"))
	}))
	t.Cleanup(second.Close)
	app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, second.URL+"/latest/meta-data/", code)
	}))
	t.Cleanup(app.Close)
	return app, seen
}

// RedirectCodes are the redirects a client could follow.
var RedirectCodes = []int{301, 302, 303, 307, 308}
