package reconciler

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StatusPath is where nginx's status server (listening only on a Unix
// socket in the run directory) reports the configuration it has loaded.
const StatusPath = "/swiftdeploy/config"

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

// ParseLoaded parses the status body: lines "revision R", "weight N",
// "stable a,b", "canary -".
func ParseLoaded(body []byte) (*Loaded, error) {
	var l Loaded
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		key, val, _ := strings.Cut(strings.TrimSpace(line), " ")
		seen[key] = true
		switch key {
		case "revision":
			l.Revision = val
		case "weight":
			w, err := strconv.Atoi(val)
			if err != nil {
				return nil, fmt.Errorf("nginx status: weight %q: %w", val, err)
			}
			l.Weight = w
		case "stable":
			l.Stable = names(val)
		case "canary":
			l.Canary = names(val)
		}
	}
	if !seen["revision"] || l.Revision == "" {
		return nil, fmt.Errorf("nginx status: no revision in %q", body)
	}
	return &l, nil
}

func names(v string) []string {
	v = strings.TrimSpace(v)
	if v == "" || v == "-" {
		return nil
	}
	return strings.Split(v, ",")
}
