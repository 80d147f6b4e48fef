package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultSocket is where both binaries look for the control socket unless
// --socket or SWIFTDEPLOY_SOCKET says otherwise: inside the project's state
// directory, so that one host can run a daemon per project.
func DefaultSocket(manifestDir string) string {
	if s := os.Getenv(EnvSocket); s != "" {
		return s
	}
	return filepath.Join(manifestDir, ".swiftdeploy", "swiftdeployd.sock")
}

// ErrDaemonDown means nothing listens on the socket.
var ErrDaemonDown = errors.New("daemon not running")

// Client talks to swiftdeployd over its Unix socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(socket string) *Client {
	return &Client{Socket: socket, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", socket)
			if err != nil && (errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED)) {
				return nil, fmt.Errorf("%w: %v", ErrDaemonDown, err)
			}
			return c, err
		},
	}}}
}

func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://swiftdeployd"+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, ErrDaemonDown) {
			return nil, ErrDaemonDown
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, &StatusError{Code: resp.StatusCode, Msg: e.Error}
		}
		return nil, &StatusError{Code: resp.StatusCode, Msg: string(bytes.TrimSpace(b))}
	}
	return resp, nil
}

// StatusError is a non-2xx answer from the daemon.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return e.Msg }

// Get decodes the JSON answer of a GET into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// Post sends body and decodes the JSON answer into out (if not nil).
func (c *Client) Post(ctx context.Context, path string, body, out any) error {
	resp, err := c.do(ctx, http.MethodPost, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Stream posts body and calls fn for every progress line until the final
// one, which it returns.
func (c *Client) Stream(ctx context.Context, path string, body any, fn func(Progress)) (Progress, error) {
	resp, err := c.do(ctx, http.MethodPost, path, body)
	if err != nil {
		return Progress{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var p Progress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return Progress{}, fmt.Errorf("bad progress line from daemon: %w", err)
		}
		if p.Done {
			return p, nil
		}
		fn(p)
	}
	if err := sc.Err(); err != nil {
		return Progress{}, fmt.Errorf("read progress: %w", err)
	}
	return Progress{}, errors.New("daemon closed the stream before finishing")
}
