// Package ctxio ties a stream to the context its request ran under: a
// followed log stream (from the Docker engine or the Kubernetes API
// server) is read long after the call that opened it returned, so the
// context cannot be cancelled then; it is released when the reader is
// closed. One type, shared by pkg/controller and pkg/kube, which import
// nothing of each other.
package ctxio

import (
	"context"
	"io"
)

// CancelOnClose is rc whose Close also cancels the request's context
// (after closing rc, so the body's own close runs first).
func CancelOnClose(rc io.ReadCloser, cancel context.CancelFunc) io.ReadCloser {
	return &cancelOnClose{ReadCloser: rc, cancel: cancel}
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
