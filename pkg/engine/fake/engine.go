package fake

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Engine is the in-memory Docker Engine. The zero value is not usable: call
// New.
type Engine struct {
	mu  sync.Mutex
	rnd *rand.Rand
	now func() time.Time
	// hostPorts makes published ports real listeners on 127.0.0.1.
	hostPorts bool

	containers map[string]*container        // by ID
	networks   map[string]*network          // by ID
	volumes    map[string]map[string]string // labels by name
	netSeq     int                          // second octet of the next network's subnet
	images     map[string]bool              // normalised refs present locally
	pullable   map[string]bool              // normalised refs a pull can fetch
	pullAuth   map[string]string            // normalised refs a pull needs these credentials for
	builds     map[string]int               // how many times AddImage made each ref (its ID)
	tagID      map[string]string            // normalised ref -> the image ID it names

	health      marks // healthy or not
	exitOnStart marks
	ignoreHUP   marks
	holdWorkers marks
	validator   Validator
	failReload  error

	calls      []*Call
	beforeCall func(op, target string)
	failNext   map[string][]error
	failAlways map[string]error
	hangs      map[string]chan struct{}
	down       bool

	watchers map[*watcher]bool
	closed   bool
}

// Option configures New.
type Option func(*Engine)

// WithSeed seeds the generator of container and network IDs (default 1).
func WithSeed(seed uint64) Option {
	return func(e *Engine) { e.rnd = rand.New(rand.NewPCG(seed, seed^0x5eed)) }
}

// WithClock sets the clock that stamps containers' Created time (default
// time.Now).
func WithClock(now func() time.Time) Option {
	return func(e *Engine) { e.now = now }
}

// WithHostPorts makes every running container that publishes a host port
// (engine.Spec.HostPort) listen on 127.0.0.1:port for real, accepting and
// closing connections, so that code which waits for the port to open (the
// reconciler's startNginx) works against the fake. A port the host already
// uses makes Run fail as Docker does ("port is already allocated"). Call
// Close to release the listeners.
func WithHostPorts() Option {
	return func(e *Engine) { e.hostPorts = true }
}

// New returns an engine with no containers, no images and the pre-defined
// networks bridge, host and none.
func New(opts ...Option) *Engine {
	e := &Engine{
		now:         time.Now,
		containers:  map[string]*container{},
		networks:    map[string]*network{},
		volumes:     map[string]map[string]string{},
		images:      map[string]bool{},
		pullable:    map[string]bool{},
		pullAuth:    map[string]string{},
		builds:      map[string]int{},
		tagID:       map[string]string{},
		health:      newMarks(),
		exitOnStart: newMarks(),
		ignoreHUP:   newMarks(),
		holdWorkers: newMarks(),
		failNext:    map[string][]error{},
		failAlways:  map[string]error{},
		hangs:       map[string]chan struct{}{},
		watchers:    map[*watcher]bool{},
	}
	WithSeed(1)(e)
	for _, o := range opts {
		o(e)
	}
	for _, n := range []struct{ name, driver string }{{"bridge", "bridge"}, {"host", "host"}, {"none", "null"}} {
		e.addNetworkLocked(n.name, n.driver, nil, true)
	}
	return e
}

// Close ends every Watch (closing its event channel without an error) and
// releases host-port listeners. The engine stays usable for assertions.
// It never fails; the error is there to match engine.Engine.Close.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for w := range e.watchers {
		w.stop(nil)
		delete(e.watchers, w)
	}
	for _, c := range e.containers {
		c.closeListener()
	}
	return nil
}

// Ping checks that the engine answers: it fails only while Down or when a
// fault is injected.
func (e *Engine) Ping(ctx context.Context) (err error) {
	c := e.begin(OpPing, "", "")
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return fmt.Errorf("docker engine unreachable: %w", ferr)
	}
	return nil
}

// newID returns 64 hex digits from the seeded generator. Callers hold mu.
func (e *Engine) newID() string {
	b := make([]byte, 32)
	for i := 0; i < len(b); i += 8 {
		v := e.rnd.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(b)
}

// withMessage is implemented by every containerd errdefs class.
type withMessage interface{ WithMessage(string) error }

// daemonErr builds an error as the Docker client returns it for a daemon's
// error response: the errdefs class of the HTTP status, and the message
// prefixed with "Error response from daemon: ".
func daemonErr(class error, format string, a ...any) error {
	msg := "Error response from daemon: " + fmt.Sprintf(format, a...)
	if wm, ok := class.(withMessage); ok {
		return wm.WithMessage(msg)
	}
	return fmt.Errorf("%s: %w", msg, class)
}

// ErrEngineDown is the failure of every call while the engine is Down, with
// the Docker client's message for a refused connection.
var ErrEngineDown = errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?")

// listen opens a host-port listener that accepts and drops connections.
func listen(port int) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", fmt.Sprint(port)))
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln, nil
}
