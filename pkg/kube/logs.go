package kube

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// PodLogOptions select the part of a pod container's log PodLogs reads.
type PodLogOptions struct {
	Container string
	// Since, when not zero, leaves out lines written before it.
	Since time.Time
	// Tail, when 0 or more, starts at the last Tail lines.
	Tail   int
	Follow bool
}

// PodLogs opens a container's log of pod in ns (GET .../pods/NAME/log),
// every line starting with the kubelet's RFC 3339 timestamp. Not
// following, the whole read is bounded by four times c.Timeout; following,
// only the time the server takes to answer, and the stream lasts until
// ctx ends or the container stops. The caller closes the reader.
func (c *Client) PodLogs(ctx context.Context, ns, pod string, o PodLogOptions) (io.ReadCloser, error) {
	q := url.Values{"timestamps": {"true"}}
	if o.Container != "" {
		q.Set("container", o.Container)
	}
	if !o.Since.IsZero() {
		q.Set("sinceTime", o.Since.UTC().Format(time.RFC3339))
	}
	if o.Tail >= 0 {
		q.Set("tailLines", strconv.Itoa(o.Tail))
	}
	if o.Follow {
		q.Set("follow", "true")
	}
	what := "logs of pod " + ns + "/" + pod
	path := Pods.collection(ns) + "/" + url.PathEscape(pod) + "/log?" + q.Encode()
	var (
		cctx   context.Context
		cancel context.CancelFunc
		timer  *time.Timer
	)
	if o.Follow {
		cctx, cancel = context.WithCancel(ctx)
		timer = time.AfterFunc(c.Timeout, cancel)
	} else {
		cctx, cancel = context.WithTimeout(ctx, 4*c.Timeout)
	}
	req, err := c.request(cctx, http.MethodGet, path, nil, "")
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	req.Header.Set("Accept", "*/*")
	resp, err := c.stream.Do(req)
	if timer != nil && !timer.Stop() && err == nil {
		resp.Body.Close()
		err = fmt.Errorf("the API server did not answer within %s: %w", c.Timeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		defer cancel()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, &Error{Code: resp.StatusCode, What: what, Message: strings.TrimSpace(string(b))}
	}
	return &cancelBody{ReadCloser: resp.Body, cancel: cancel}, nil
}

// cancelBody releases a request's context with its body.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
