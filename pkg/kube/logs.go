package kube

import (
	"context"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/swiftdeploy/swiftdeploy/internal/ctxio"
)

// PodLogOptions select the part of a pod container's log PodLogs reads.
type PodLogOptions struct {
	Container string
	// Since, when not zero, leaves out lines written before it (the API
	// takes whole seconds: the caller drops what is left of that second).
	Since time.Time
	// Tail, when 0 or more, starts at the last Tail lines.
	Tail   int
	Follow bool
}

// PodLogs opens a container's log of pod in ns (client-go's GetLogs),
// every line starting with the kubelet's RFC 3339 timestamp. Not
// following, the whole read is bounded by four times c.Timeout; following,
// only the time the server takes to answer, and the stream lasts until
// ctx ends or the container stops. The caller closes the reader.
func (c *Client) PodLogs(ctx context.Context, ns, pod string, o PodLogOptions) (io.ReadCloser, error) {
	opts := &corev1.PodLogOptions{Container: o.Container, Timestamps: true, Follow: o.Follow}
	if !o.Since.IsZero() {
		t := metav1.NewTime(o.Since)
		opts.SinceTime = &t
	}
	if o.Tail >= 0 {
		n := int64(o.Tail)
		opts.TailLines = &n
	}
	what := "logs of pod " + ns + "/" + pod
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
	rc, err := c.cs.CoreV1().Pods(ns).GetLogs(pod, opts).Stream(cctx)
	if timer != nil && !timer.Stop() && err == nil {
		rc.Close()
		err = fmt.Errorf("the API server did not answer within %s: %w", c.Timeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, wrap(what, err)
	}
	return ctxio.CancelOnClose(rc, cancel), nil
}
