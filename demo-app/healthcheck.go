package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthcheckTimeout is short so a hung app fails the probe quickly, within
// any reasonable HEALTHCHECK --timeout.
const healthcheckTimeout = 3 * time.Second

// probeHealth GETs url and succeeds only on 200. It replaces curl in the
// FROM scratch image's HEALTHCHECK.
func probeHealth(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health check %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check %s: %w", url, err)
	}
	defer resp.Body.Close()
	// Drain a little so the connection closes cleanly; the body is tiny.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check %s: status %d", url, resp.StatusCode)
	}
	return nil
}
