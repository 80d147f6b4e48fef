package kube

import (
	"fmt"
	"io"
	"net/http"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
)

// Rotating credentials. A bound ServiceAccount token (in-cluster, or a
// kubeconfig's tokenFile) is rewritten on disk as it rotates, and an
// exec credential plugin hands out tokens that expire. client-go re-reads
// a token file only once a minute (its cache, less 10s of leeway) and
// does not re-read it when the server answers 401, so a token revoked as
// it is replaced (a deleted bound object, a rotated static token) leaves
// the daemon with 401s for up to 50s: failed reconciles, a lost leader
// lease. The daemon's client instead reads the file through a token source
// that a 401 resets, and replays the request once after a 401: the retry
// carries the token on disk now (or the exec plugin's new one: client-go
// re-runs the plugin on a 401), so a rotation costs one extra round trip
// and no failed call.

// refreshTokenFile makes cfg's token file a source that a 401 resets
// (client-go's own cached file source, its one-minute period kept). The
// file is read once here, so a missing or empty file fails at start,
// naming it.
func refreshTokenFile(cfg *rest.Config) error {
	if cfg.BearerTokenFile == "" {
		return nil
	}
	src := transport.NewCachedFileTokenSource(cfg.BearerTokenFile)
	if _, err := src.Token(); err != nil {
		return fmt.Errorf("bearer token file: %w", err)
	}
	// The token read at load time must go: client-go's bearer wrapper
	// would set it (or the file's, on its own one-minute cache) before the
	// resettable source sees the request.
	cfg.BearerToken, cfg.BearerTokenFile = "", ""
	cfg.Wrap(transport.ResettableTokenSourceWrapTransport(src))
	return nil
}

// retryUnauthorized replays a request once when the server answers 401:
// the layers below have then dropped the credential that was refused
// (the token file's cache, the exec plugin's credential), so the replay
// carries a fresh one. A 401 means the server did not act on the
// request, so replaying a write is safe; a request whose body cannot be
// read again, or whose caller set its own Authorization, is not replayed.
type retryUnauthorized struct {
	rt http.RoundTripper
}

func (r retryUnauthorized) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || req.Header.Get("Authorization") != "" {
		return resp, err
	}
	again := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return resp, nil
		}
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		again.Body = body
	}
	// Drain a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return r.rt.RoundTrip(again)
}

// WrappedRoundTripper lets client-go reach the transport below (request
// cancellation, connection management).
func (r retryUnauthorized) WrappedRoundTripper() http.RoundTripper { return r.rt }

// httpClient is the one HTTP client of every clientset of cfg, its
// transport under retryUnauthorized.
func httpClient(cfg *rest.Config) (*http.Client, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("HTTP client of %s: %w", cfg.Host, err)
	}
	hc.Transport = retryUnauthorized{rt: hc.Transport}
	return hc, nil
}
