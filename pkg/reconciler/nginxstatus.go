package reconciler

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// StatusPath is where nginx's status server (listening only on a Unix
// socket in the run directory) reports the configuration it has loaded.
const StatusPath = stack.NginxStatusPath

// ReadNginxStatus asks the nginx listening on socket which configuration
// its workers have loaded. Only a worker of the current generation can
// answer, so the answer is what nginx serves, not what was written.
func ReadNginxStatus(ctx context.Context, socket string) (*Loaded, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://nginx"+StatusPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("read nginx status: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("read nginx status: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read nginx status: status %d", resp.StatusCode)
	}
	return ParseLoaded(body)
}

// ParseLoaded parses the status body (see render.ParseLoadedConfig).
func ParseLoaded(body []byte) (*Loaded, error) {
	c, err := render.ParseLoadedConfig(body)
	if err != nil {
		return nil, fmt.Errorf("read nginx status: %w", err)
	}
	return &Loaded{Revision: c.Revision, Weight: c.Weight, Stable: c.Stable, Canary: c.Canary, Weights: c.Weights, Cert: c.Cert, Traffic: c.Traffic}, nil
}
