package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
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
// a connection dropped under it. The client reads the raw frame: a close
// (opcode 8) with status 1000, not a bare end of the connection (which
// x/net/websocket's Receive would also report as io.EOF). Without
// closeAll, the read waits for the deadline.
func TestShutdownClosesWebSocketsCleanly(t *testing.T) {
	app := newServer(modeStable, "1.0.0", "h")
	srv := httptest.NewServer(app.handler())
	defer srv.Close()
	srv.Config.RegisterOnShutdown(app.sockets.closeAll)
	conn, br := dialRawWebSocket(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { _ = srv.Config.Shutdown(ctx) }()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if status, err := readCloseFrame(br); err != nil || status != 1000 {
		t.Fatalf("after shutdown: close status %d, %v; want a close frame with 1000", status, err)
	}
}

// A WebSocket whose handshake completes once closeAll has run (the server
// shutting down) gets its close frame at once; it is not left open past
// the process's exit.
func TestWebSocketOpenedAfterCloseAllIsClosed(t *testing.T) {
	app := newServer(modeStable, "1.0.0", "h")
	srv := httptest.NewServer(app.handler())
	defer srv.Close()
	app.sockets.closeAll()
	conn, br := dialRawWebSocketNoEcho(t, srv.URL)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if status, err := readCloseFrame(br); err != nil || status != 1000 {
		t.Fatalf("a socket opened after closeAll: close status %d, %v; want a close frame with 1000", status, err)
	}
}

// dialRawWebSocket opens /ws by hand and checks one echo, so the test
// reads the server's frames as they are.
func dialRawWebSocket(t *testing.T, base string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, br := dialRawWebSocketNoEcho(t, base)
	// A masked text frame "hello" (clients must mask).
	mask := []byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | 5}
	frame = append(frame, mask...)
	for i, c := range []byte("hello") {
		frame = append(frame, c^mask[i%4])
	}
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil || hdr[0] != 0x81 {
		t.Fatalf("echo frame header % x, %v", hdr, err)
	}
	if _, err := io.ReadFull(br, make([]byte, hdr[1]&0x7f)); err != nil {
		t.Fatal(err)
	}
	return conn, br
}

func dialRawWebSocketNoEcho(t *testing.T, base string) (net.Conn, *bufio.Reader) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: %s\r\n\r\n", u.Host, base)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return conn, br
}

// readCloseFrame reads the next frame and returns its close status; an
// error if it is not a close frame (or the connection ended without one).
func readCloseFrame(br *bufio.Reader) (int, error) {
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return 0, fmt.Errorf("no frame: %w", err)
	}
	if hdr[0]&0x0f != 0x8 {
		return 0, fmt.Errorf("frame opcode %#x, want 0x8 (close)", hdr[0]&0x0f)
	}
	payload := make([]byte, hdr[1]&0x7f)
	if _, err := io.ReadFull(br, payload); err != nil || len(payload) < 2 {
		return 0, fmt.Errorf("close payload % x: %v", payload, err)
	}
	return int(payload[0])<<8 | int(payload[1]), nil
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
