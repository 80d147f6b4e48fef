package e2e

import (
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
)

// hangingEngine listens where the daemon expects the engine, accepts every
// connection and never answers: the worst engine there is.
type hangingEngine struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func hangOn(t *testing.T, path string) *hangingEngine {
	t.Helper()
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	h := &hangingEngine{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c) // read nothing, write nothing
			h.mu.Unlock()
		}
	}()
	t.Cleanup(h.close)
	return h
}

func (h *hangingEngine) close() {
	h.ln.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
	os.Remove(h.ln.Addr().String())
}

// The engine hangs: it accepts and never answers. The daemon does not
// wedge: status answers and says the engine does not answer, the workload
// keeps serving, and once the engine answers again the daemon reconverges
// by itself (here to a manifest edited meanwhile).
func TestEngineHangsThenRecovers(t *testing.T) {
	e := newEnv(t)
	proxy := newEngineProxy(t)
	e.dockerHost = "unix://" + proxy.path
	e.writeManifest(e.manifest(images.AppImage, 2, ""))
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})

	proxy.down()
	hang := hangOn(t, proxy.path)
	start := time.Now()
	e.waitFor(60*time.Second, "status reporting the hung engine", func() (bool, string) {
		s := e.status()
		return contains(s.EngineError, "did not answer"), s.EngineError
	})
	detected := time.Since(start)
	e.serves("1.0.0")
	e.writeManifest(e.manifest(images.AppImage, 3, ""))
	time.Sleep(2 * time.Second)

	hang.close()
	proxy.up()
	start = time.Now()
	e.converged(map[string]int{images.AppImage: 3})
	e.waitFor(60*time.Second, "engine error cleared", func() (bool, string) {
		s := e.status()
		return s.EngineError == "", s.EngineError
	})
	recovered := time.Since(start)
	t.Logf("fault figures: engine hangs | detected in %s | recovered in %s", detected.Round(100*time.Millisecond), recovered.Round(100*time.Millisecond))
	select {
	case <-e.exited:
		t.Fatal("daemon exited while the engine hung")
	default:
	}
}
