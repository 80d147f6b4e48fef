package api

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A body sent a byte at a time is cut after BodyTimeout with a 400,
// instead of holding the handler for as long as the client likes.
func TestSlowBodyIsCut(t *testing.T) {
	old := BodyTimeout
	BodyTimeout = 300 * time.Millisecond
	defer func() { BodyTimeout = old }()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v struct {
			Mode string `json:"mode"`
		}
		if err := DecodeBody(w, r, &v); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("POST /v1/chaos HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mo")); err != nil {
		t.Fatal(err)
	}
	// The rest never comes.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer within 5s to a stalled body (BodyTimeout %s): %v", BodyTimeout, err)
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
}
