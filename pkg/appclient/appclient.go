// Package appclient builds the HTTP clients the daemon talks to app
// containers with: health probes, metrics scrapes and chaos requests.
//
// The daemon runs as root next to the Docker socket, and an app container
// is code it does not trust: a compromised app must not be able to steer
// the daemon's requests anywhere but to itself. So a client from New
// follows no redirect (a 3xx is returned as the answer: a health probe
// counts it as a failure like any other non-2xx, a scrape as an
// unexpected status), uses no proxy from the environment (the address is
// the container's), and bounds the connect and the answer's headers.
// Callers bound the body they read (a probe reads none, a scrape
// metrics.MaxBodySize, a chaos answer 64 KiB).
package appclient

import (
	"net"
	"net/http"
	"time"
)

// Bounds of a request to an app container.
const (
	// ConnectTimeout bounds the TCP connect (and a TLS handshake).
	ConnectTimeout = 2 * time.Second
	// MaxResponseHeader bounds the answer's headers.
	MaxResponseHeader = 16 << 10
)

// New returns a client for requests to app containers. timeout bounds a
// whole request, body included; 0 leaves it to the request's context.
func New(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSHandshakeTimeout:    ConnectTimeout,
		MaxResponseHeaderBytes: MaxResponseHeader,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
	}
	return &http.Client{Timeout: timeout, Transport: tr, CheckRedirect: NoRedirect}
}

// NoRedirect is an http.Client CheckRedirect that follows nothing: the
// client returns the 3xx itself.
func NoRedirect(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}
