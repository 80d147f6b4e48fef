package ctxio

import (
	"context"
	"io"
	"strings"
	"testing"
)

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

// Closing the stream closes the body and cancels its context; reading
// does not.
func TestCancelOnClose(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	body := &closeCounter{Reader: strings.NewReader("line\n")}
	rc := CancelOnClose(body, cancel)
	if b, err := io.ReadAll(rc); err != nil || string(b) != "line\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	if ctx.Err() != nil {
		t.Fatal("the context ended before the stream was closed")
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if body.closed != 1 || ctx.Err() == nil {
		t.Fatalf("after Close: body closed %d times, context %v; want closed once and cancelled", body.closed, ctx.Err())
	}
}
