package e2e

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/citest"
)

// engineProxy stands between the daemon and the real Docker socket, so a
// test can make the engine unreachable for the daemon alone.
type engineProxy struct {
	t       *testing.T
	path    string
	backend string
	mu      sync.Mutex
	ln      net.Listener
	conns   map[net.Conn]bool
}

func newEngineProxy(t *testing.T) *engineProxy {
	t.Helper()
	backend := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if !strings.HasPrefix(h, "unix://") {
			citest.Unavailable(t, "DOCKER_HOST %s is not a Unix socket: the engine proxy needs one", h)
		}
		backend = strings.TrimPrefix(h, "unix://")
	}
	p := &engineProxy{t: t, path: filepath.Join(t.TempDir(), "docker.sock"), backend: backend, conns: map[net.Conn]bool{}}
	t.Cleanup(p.down)
	p.up()
	return p
}

func (p *engineProxy) up() {
	p.t.Helper()
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("unix", p.backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[b] = true, true
			p.mu.Unlock()
			go func() { io.Copy(b, c); b.Close() }()
			go func() { io.Copy(c, b); c.Close() }()
		}
	}()
}

// down refuses new connections and cuts the open ones.
func (p *engineProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	os.Remove(p.path)
}

// The daemon survives the engine going away: it reports it, keeps serving
// its API, and reconverges once the engine is back.
func TestEngineUnreachableThenBack(t *testing.T) {
	e := newEnv(t)
	proxy := newEngineProxy(t)
	e.dockerHost = "unix://" + proxy.path
	e.writeManifest(e.manifest(images.AppImage, 2, ""))
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})

	proxy.down()
	e.waitFor(30*time.Second, "status reporting the engine unreachable", func() (bool, string) {
		s := e.status()
		return s.EngineError != "", s.EngineError
	})
	e.serves("1.0.0") // the workload does not depend on the daemon

	// Drift while the daemon cannot see it (ask Docker: the daemon's status
	// reports what it can observe, which is nothing now).
	var victim string
	for _, c := range e.dockerContainers() {
		if strings.Contains(c, "-stable-") {
			victim = strings.Split(c, "/")[0]
			break
		}
	}
	if _, err := e.cli.ContainerRemove(context.Background(), victim, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	e.writeManifest(e.manifest(images.AppImage, 3, ""))
	time.Sleep(2 * time.Second)

	start := time.Now()
	proxy.up()
	e.converged(map[string]int{images.AppImage: 3})
	t.Logf("engine back → converged in %s", time.Since(start).Round(time.Millisecond))
	if s := e.status(); s.EngineError != "" {
		t.Errorf("engine error still reported after reconverging: %s", s.EngineError)
	}
	e.serves("1.0.0")
	select {
	case <-e.exited:
		t.Fatal("daemon exited while the engine was away")
	default:
	}
}
