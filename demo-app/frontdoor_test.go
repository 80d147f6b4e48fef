package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

// At shutdown every open WebSocket gets a close frame: its client sees a
// clean close (and a browser reconnects, to the new version) rather than
// a connection dropped under it. Without closeAll, Receive waits for the
// deadline.
func TestShutdownClosesWebSocketsCleanly(t *testing.T) {
	app := newServer(modeStable, "1.0.0", "h")
	srv := httptest.NewServer(app.handler())
	defer srv.Close()
	srv.Config.RegisterOnShutdown(app.sockets.closeAll)
	ws, err := websocket.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", "", srv.URL)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	defer ws.Close()
	if err := websocket.Message.Send(ws, "hello"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { _ = srv.Config.Shutdown(ctx) }()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	err = websocket.Message.Receive(ws, &got)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("after shutdown the client read %q, %v; want io.EOF (a close frame)", got, err)
	}
}

func TestLivePage(t *testing.T) {
	srv := httptest.NewServer(newServer(modeStable, "1.0.0", "h").handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/live")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(b), "new WebSocket(") {
		t.Errorf("GET /live = %d %s, %d bytes; want the live page", resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
	}
}
