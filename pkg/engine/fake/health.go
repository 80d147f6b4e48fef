package fake

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// marks are flags set on container names or images. A key is recorded
// both as a name and, normalised, as an image: a container matches by its
// name first, then by its image.
type marks struct {
	names, images map[string]bool
}

func newMarks() marks { return marks{names: map[string]bool{}, images: map[string]bool{}} }

func (m marks) set(key string, v bool) {
	m.names[key] = v
	if n, err := normalize(key); err == nil {
		m.images[n] = v
	}
}

func (m marks) lookup(c *container) (v, ok bool) {
	if v, ok := m.names[c.name]; ok {
		return v, true
	}
	v, ok = m.images[c.image]
	return v, ok
}

func (e *Engine) matchesLocked(m marks, c *container) bool {
	v, ok := m.lookup(c)
	return ok && v
}

// healthyLocked: running and not marked unhealthy.
func (e *Engine) healthyLocked(c *container) bool {
	if c.state != StateRunning {
		return false
	}
	if v, ok := e.health.lookup(c); ok {
		return v
	}
	return true
}

// SetHealthy marks the container with this name, or every container of
// this image, healthy or not, now and for containers started later (a
// mark on a name wins over one on an image). Running containers are
// healthy unless marked.
func (e *Engine) SetHealthy(nameOrImage string, healthy bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.health.set(nameOrImage, healthy)
}

// ExitOnStart makes containers with this name or image exit (code 1, a die
// event) right after they start, until Clear.
func (e *Engine) ExitOnStart(nameOrImage string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.exitOnStart.set(nameOrImage, true)
}

// probe answers a GET of rawURL: the status a container at the URL's host
// would answer, or an error if nothing listens there (unprefixed, as a
// RoundTripper returns it).
func (e *Engine) probe(ctx context.Context, rawURL string) (status int, err error) {
	c := e.begin(OpProbe, rawURL, "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return 0, ferr
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, err
	}
	if u.Scheme != "http" {
		return 0, fmt.Errorf("fake engine: unsupported protocol scheme %q", u.Scheme)
	}
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = "80"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ct := range e.containers {
		if ct.ip != "" && ct.ip == host {
			if e.healthyLocked(ct) {
				return http.StatusOK, nil
			}
			return http.StatusServiceUnavailable, nil
		}
	}
	return 0, fmt.Errorf("dial tcp %s: connect: no route to host", net.JoinHostPort(host, port))
}

// Probe is a health check of the container whose IP the URL names
// (http://<ip>:<port><path>, as the reconciler builds it): nil if it is
// running and healthy, an error otherwise. The port and path are not
// checked. Probes are recorded as OpProbe calls; Down does not affect them.
func (e *Engine) Probe(ctx context.Context, rawURL string) error {
	status, err := e.probe(ctx, rawURL)
	if err != nil {
		return fmt.Errorf("Get %q: %w", rawURL, err) // as http.Client reports it
	}
	if status < 200 || status > 299 {
		return fmt.Errorf("GET %s: status %d", rawURL, status)
	}
	return nil
}

// Transport returns an http.RoundTripper that answers every request with
// Probe's verdict (200 "ok" or 503 "unhealthy", an error if no container
// has the host's IP), so an http.Client can stand in for the network:
// &http.Client{Transport: f.Transport()}.
func (e *Engine) Transport() http.RoundTripper { return transport{e} }

type transport struct{ e *Engine }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	status, err := t.e.probe(req.Context(), req.URL.String())
	if err != nil {
		return nil, err
	}
	body := "ok\n"
	if status != http.StatusOK {
		body = "unhealthy\n"
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}
