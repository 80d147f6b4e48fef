package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/websocket"
)

func TestUploadCountsTheBody(t *testing.T) {
	srv := httptest.NewServer(newServer(modeStable, "1.0.0", "h").handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/upload", "application/octet-stream", strings.NewReader(strings.Repeat("x", 5_000_000)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got uploadResponse
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || got.Bytes != 5_000_000 {
		t.Errorf("POST /upload = %d %+v, want 200 and 5000000 bytes", resp.StatusCode, got)
	}
}

// The WebSocket goes through the metrics middleware, which must hand the
// connection over (http.Hijacker).
func TestWebSocketEcho(t *testing.T) {
	srv := httptest.NewServer(newServer(modeStable, "1.0.0", "h").handler())
	defer srv.Close()
	ws, err := websocket.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", "", srv.URL)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	defer ws.Close()
	for _, msg := range []string{"hello", "again"} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil {
			t.Fatal(err)
		}
		if got != "1.0.0 "+msg {
			t.Errorf("echo = %q, want %q", got, "1.0.0 "+msg)
		}
	}
}
