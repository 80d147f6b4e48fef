package notify

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// countingBody counts what the notifier reads of an answer's body.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countingTransport struct {
	http.RoundTripper
	n *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.RoundTripper.RoundTrip(r)
	if err == nil {
		resp.Body = countingBody{resp.Body, c.n}
	}
	return resp, err
}

// A receiver answering 2xx with an endless body: the notifier reads at
// most MaxResponseBody (4 KiB) of it, discards it, and the delivery
// succeeds at once instead of reading until the attempt's timeout.
func TestResponseBodyIsCapped(t *testing.T) {
	var sent atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		chunk := make([]byte, 32<<10)
		for r.Context().Err() == nil {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer rcv.Close()

	var read atomic.Int64
	base := NewClient(false)
	client := &http.Client{Transport: countingTransport{base.Transport, &read}, CheckRedirect: base.CheckRedirect}
	delivered := make(chan struct{}, 1)
	f := make(failures, 4)
	n := New(Options{Client: client, Timeout: 5 * time.Second, Attempts: 1, OnFail: f.onFail,
		OnDelivered: func() { delivered <- struct{}{} }})
	defer n.Close()
	start := time.Now()
	n.Send([]Hook{{URL: rcv.URL + "/hook"}}, Message{Event: "step", Text: "x"})
	select {
	case <-delivered:
	case err := <-f:
		t.Fatalf("the delivery failed: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the delivery took %s: the body was read for longer than a 4 KiB cap allows", took)
	}
	if got := read.Load(); got > MaxResponseBody {
		t.Errorf("read %d bytes of the answer, want at most %d", got, MaxResponseBody)
	}
	// The handler counts a write once it returns, which may be after the
	// notifier closed the answer: wait for it rather than race it.
	for wait := time.Now().Add(5 * time.Second); sent.Load() <= MaxResponseBody && time.Now().Before(wait); {
		time.Sleep(10 * time.Millisecond)
	}
	if sent.Load() <= MaxResponseBody {
		t.Fatalf("the receiver sent only %d bytes: the cap was not exercised", sent.Load())
	}
	t.Logf("receiver offered %d bytes; notifier read %d", sent.Load(), read.Load())
}
