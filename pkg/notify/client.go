package notify

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Bounds of an outbound webhook request. A receiver is a third party: it
// must not be able to hold the daemon's workers, fill its memory or steer
// it somewhere else.
const (
	// ConnectTimeout bounds the TCP connect (after DNS).
	ConnectTimeout = 3 * time.Second
	// TLSTimeout bounds the TLS handshake.
	TLSTimeout = 3 * time.Second
	// MaxResponseBody is how much of an answer is read (and discarded).
	MaxResponseBody = 4 << 10
	// MaxResponseHeader bounds the answer's headers.
	MaxResponseHeader = 16 << 10
)

// NewClient returns the HTTP client webhooks are posted with:
//
//   - no redirect is followed: a 3xx is returned as it is, and post counts
//     it as a failed delivery. A receiver could otherwise bounce the daemon
//     to any address it can reach (an admin API on loopback, cloud
//     metadata at 169.254.169.254, a proxy in front of the Docker socket);
//   - connect and TLS handshake are bounded (the whole attempt is bounded
//     by Options.Timeout), and so are the answer's headers;
//   - no proxy from the environment: the address checked is the address
//     dialled;
//   - with restrict, every address the name resolves to is checked as it
//     is dialled (a net.Dialer Control hook, so after DNS: a public name
//     that resolves to 127.0.0.1 is caught, and so is a rebinding between
//     two attempts), and loopback, link-local, private, shared (CGNAT),
//     multicast and unspecified addresses are refused.
func NewClient(restrict bool) *http.Client {
	d := &net.Dialer{Timeout: ConnectTimeout, KeepAlive: 30 * time.Second}
	if restrict {
		d.Control = refuseNonPublic
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSHandshakeTimeout:    TLSTimeout,
		MaxResponseHeaderBytes: MaxResponseHeader,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// sharedSpace is 100.64.0.0/10 (RFC 6598), where some clouds put their
// metadata service (100.100.100.200).
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// NonPublic says why ip may not be posted to by a hook with allow_private
// false, or "" if it may.
func NonPublic(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local (cloud metadata lives there)"
	case ip.IsPrivate():
		return "private"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case sharedSpace.Contains(ip):
		return "shared address space (100.64.0.0/10)"
	}
	return ""
}

// refuseNonPublic is a net.Dialer Control hook: it runs with the resolved
// address about to be connected to.
func refuseNonPublic(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook address %s: %w", address, err)
	}
	if why := NonPublic(ap.Addr()); why != "" {
		return fmt.Errorf("webhook address %s is %s: refused (allow_private is false)", ap.Addr(), why)
	}
	return nil
}
