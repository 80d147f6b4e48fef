package selfmetrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// CheckAddr accepts a --metrics-listen address only on a loopback or
// private interface, named explicitly: the metrics say which rollouts
// failed and why, which is not for the internet, and an empty host
// (":9090") would listen on every interface. Hostnames must resolve to
// such addresses only.
func CheckAddr(ctx context.Context, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--metrics-listen %q: %w", addr, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("--metrics-listen %q: port %q: %w", addr, port, err)
	}
	if host == "" {
		return fmt.Errorf("--metrics-listen %q: name the interface (127.0.0.1:%s, or a private address); an empty host listens on every interface", addr, port)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		found, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		if err != nil {
			return fmt.Errorf("--metrics-listen %q: resolve %s: %w", addr, host, err)
		}
		ips = found
	}
	for _, ip := range ips {
		ip = ip.Unmap()
		if !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast()) {
			return fmt.Errorf("--metrics-listen %q: %s is not a loopback or private address", addr, ip)
		}
	}
	return nil
}

// Serve serves h's families at /metrics on addr (checked by CheckAddr)
// until ctx ends. It returns once listening, with the bound address
// (useful with port 0) and a channel that yields the server's end.
func Serve(ctx context.Context, addr string, h http.Handler) (net.Addr, <-chan error, error) {
	if err := CheckAddr(ctx, addr); err != nil {
		return nil, nil, err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr(), done, nil
}
