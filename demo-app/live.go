package main

import (
	_ "embed"
	"net/http"
	"sync"

	"golang.org/x/net/websocket"
)

// sockets are the open WebSockets, so shutdown can close each with a
// close frame (a clean close, which a browser reconnects after) rather
// than drop the TCP connection under it.
type sockets struct {
	mu     sync.Mutex
	open   map[*websocket.Conn]struct{}
	closed bool // closeAll ran: a socket opened since is closed at once
}

func (s *sockets) add(ws *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		// Opened while the server shuts down (its handshake was under
		// way): it gets its close frame too.
		_ = ws.Close()
		return
	}
	if s.open == nil {
		s.open = make(map[*websocket.Conn]struct{})
	}
	s.open[ws] = struct{}{}
}

func (s *sockets) remove(ws *websocket.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, ws)
}

// closeAll sends a close frame on every open WebSocket and closes it. It
// returns once every frame is written, also when another closeAll (the
// server's shutdown hook, which runs in a goroutine of its own that
// Shutdown does not wait for) is writing them: the process may exit right
// after.
func (s *sockets) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for ws := range s.open {
		_ = ws.Close() // writes the close frame (1000), then closes
	}
	s.open = nil
}

//go:embed live.html
var livePage []byte

// handleLive serves a page that keeps a WebSocket to /ws open (and
// reopens it after a close) and fetches / every 250 ms, recording what
// it saw in window.live: what a browser session does during a rollout.
func handleLive(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(livePage)
}
