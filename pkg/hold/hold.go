// Package hold parks the requests of a paused front door (swiftctl traffic
// pause) on a Unix socket that is never accepted on.
package hold

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Hold is the socket a paused front door parks requests on
// (stack.NginxHoldSocket in the nginx config directory). It listens and
// never accepts: the kernel queues each connection nginx opens, with the
// request written into it, and nginx waits for an answer up to the pause's
// bound. Release closes the listener, which resets every queued
// connection; nginx takes the reset as an upstream error and sends the
// request on to the app (the paused config's error_page 502 = @app).
//
// A front door is paused only while a Hold is open: Open before the
// reload that pauses, Release after the reload that resumes, so that no
// request is released into a config that still pauses.
type Hold struct {
	mu sync.Mutex
	ln *net.UnixListener
}

// Path is where the hold socket lives for config directory dir.
func Path(configDir string) string {
	return filepath.Join(configDir, stack.NginxHoldSocket)
}

// Open listens on the hold socket in configDir if it is not open already.
// The socket is connectable by anyone (nginx's workers run as nobody): it
// reads nothing and answers nothing, so a stranger can only queue a
// connection that the next Release resets.
func (h *Hold) Open(configDir string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln != nil {
		return nil
	}
	path := Path(configDir)
	// A socket file left by a daemon that died: nothing listens on it.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("hold socket %s: remove stale: %w", path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("hold socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return fmt.Errorf("hold socket %s: %w", path, err)
	}
	h.ln = ln
	return nil
}

// Release closes the hold socket, sending every held request on.
func (h *Hold) Release() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln == nil {
		return nil
	}
	err := h.ln.Close()
	h.ln = nil
	if err != nil {
		return fmt.Errorf("release hold socket: %w", err)
	}
	return nil
}

// Holding reports whether the hold socket is open.
func (h *Hold) Holding() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ln != nil
}
