package main

import (
	"io"
	"net/http"
	"time"

	"golang.org/x/net/websocket"
)

// What a real web app sends through the front door, for its tests: an
// upload (POST /upload, the body counted) and a WebSocket echo (/ws).

// maxUpload bounds what /upload reads.
const maxUpload = 256 << 20

type uploadResponse struct {
	Bytes   int64  `json:"bytes"`
	Version string `json:"version"`
}

func (s *server) handleUpload(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxUpload))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "upload: "+err.Error())
		return
	}
	w.Header().Set("X-App-Version", s.version)
	writeJSON(w, http.StatusOK, uploadResponse{Bytes: n, Version: s.version})
}

// websocket echoes every message back prefixed with the app's version,
// so a client sees which container holds its connection. A Server, not a
// Handler: it does not insist on an Origin header.
func (s *server) websocket() http.Handler {
	return websocket.Server{Handler: func(ws *websocket.Conn) {
		s.sockets.add(ws)
		defer s.sockets.remove(ws)
		defer ws.Close()
		// The HTTP server's read and write timeouts were set on the
		// connection for the handshake request; a WebSocket lives longer.
		_ = ws.SetDeadline(time.Time{})
		for {
			var msg string
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				return // closed by the client, or broken
			}
			if err := websocket.Message.Send(ws, s.version+" "+msg); err != nil {
				return
			}
		}
	}}
}
