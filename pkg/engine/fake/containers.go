package fake

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Container states the fake uses (Docker's names).
const (
	StateCreated = "created"
	StateRunning = "running"
	StateExited  = "exited"
	StateDead    = "dead"
)

// Exit codes of a stopped container.
const (
	exitGraceful = 0   // stopped with SIGTERM and exited cleanly
	exitKilled   = 137 // SIGKILL: a forced remove or a crash (Kill)
	exitFailed   = 1   // ExitOnStart, nginx refusing its config
)

type container struct {
	id, name string
	spec     engine.Spec // a deep copy of what was asked for
	image    string      // normalised spec.Image
	network  string      // the network it is attached to
	state    string
	exitCode int
	created  time.Time
	ip       string // on network, while running
	logs     strings.Builder
	// exited is closed when the container stops running or is removed.
	exited chan struct{}
	// confPath is the config file of a running nginx master ("" if the
	// container is not one) and loaded the configuration it serves.
	confPath string
	loaded   []byte
	listener net.Listener
	// followers are the FollowLogs streams of its standard output.
	followers []*logStream
	// workers are the nginx master's worker PIDs; draining are those of
	// earlier configurations that are still finishing requests (only
	// while HoldOldWorkers holds them); pids hands out the next PID.
	workers, draining []int
	pids              int
}

func (c *container) closeListener() {
	if c.listener != nil {
		c.listener.Close()
		c.listener = nil
	}
}

// toEngine returns c as engine.ListContainers reports it, with the IP on
// the named network.
func (c *container) toEngine(networkName string) engine.Container {
	l := c.spec.Labels
	out := engine.Container{
		ID:      c.id,
		Name:    c.name,
		Image:   l[stack.LabelImage],
		Role:    l[stack.LabelRole],
		Track:   l[stack.LabelTrack],
		Service: l[stack.LabelService],
		Hash:    l[stack.LabelConfigHash],
		Mounts:  l[stack.LabelMounts],
		State:   c.state,
		Created: time.Unix(c.created.Unix(), 0),
	}
	out.Replica, _ = strconv.Atoi(l[stack.LabelReplica])
	if c.ip != "" && c.network == networkName {
		out.IP = c.ip
	}
	return out
}

func copySpec(s engine.Spec) engine.Spec {
	s.Env = slices.Clone(s.Env)
	s.Cmd = slices.Clone(s.Cmd)
	s.Labels = maps.Clone(s.Labels)
	s.Aliases = slices.Clone(s.Aliases)
	s.Binds = slices.Clone(s.Binds)
	s.ExtraHosts = slices.Clone(s.ExtraHosts)
	return s
}

// Docker's rule for container names.
var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// resolve finds a container by ID, name or unique ID prefix, as Docker does.
func (e *Engine) resolve(ref string) *container {
	if c := e.containers[ref]; c != nil {
		return c
	}
	name := strings.TrimPrefix(ref, "/")
	for _, c := range e.containers {
		if c.name == name {
			return c
		}
	}
	var found *container
	for id, c := range e.containers {
		if ref != "" && strings.HasPrefix(id, ref) {
			if found != nil {
				return nil // ambiguous
			}
			found = c
		}
	}
	return found
}

// createLocked validates s and creates the container (state created). The
// image is checked only when checkImage is set.
func (e *Engine) createLocked(s engine.Spec, checkImage bool) (*container, error) {
	s = copySpec(s)
	if s.Name != "" && !validName.MatchString(s.Name) {
		return nil, daemonErr(errdefs.ErrInvalidArgument, "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", s.Name)
	}
	s.Name = strings.TrimPrefix(s.Name, "/")
	img, err := normalize(s.Image)
	if err != nil {
		return nil, err
	}
	if checkImage && !e.images[img] {
		return nil, daemonErr(errdefs.ErrNotFound, "No such image: %s", s.Image)
	}
	for _, b := range s.Binds {
		if !filepath.IsAbs(b.Source) {
			return nil, daemonErr(errdefs.ErrInvalidArgument, "invalid mount config for type \"bind\": invalid mount path: '%s' mount path must be absolute", b.Source)
		}
		if _, err := os.Stat(b.Source); err != nil {
			return nil, daemonErr(errdefs.ErrInvalidArgument, "invalid mount config for type \"bind\": bind source path does not exist: %s", b.Source)
		}
	}
	netName := s.Network
	if netName == "" {
		netName = "bridge"
	}
	if e.networkByName(netName) == nil {
		return nil, daemonErr(errdefs.ErrNotFound, "network %s not found", netName)
	}
	id := e.newID()
	if s.Name == "" {
		s.Name = "fake_" + id[:12]
	}
	if other := e.resolveName(s.Name); other != nil {
		return nil, daemonErr(errdefs.ErrConflict, "Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", s.Name, other.id)
	}
	c := &container{id: id, name: s.Name, spec: s, image: img, network: netName, state: StateCreated, created: e.now(), exited: make(chan struct{})}
	e.containers[id] = c
	e.emitLocked(c, "create")
	return c, nil
}

func (e *Engine) resolveName(name string) *container {
	for _, c := range e.containers {
		if c.name == name {
			return c
		}
	}
	return nil
}

// startLocked starts a created container: host port, address, then its
// process, which may exit at once.
func (e *Engine) startLocked(c *container) error {
	if p := c.spec.HostPort; p > 0 {
		for _, o := range e.containers {
			if o != c && o.state == StateRunning && o.spec.HostPort == p {
				return daemonErr(errdefs.ErrInternal, "driver failed programming external connectivity on endpoint %s (%s): Bind for 0.0.0.0:%d failed: port is already allocated", c.name, c.id, p)
			}
		}
		if e.hostPorts && !e.closed {
			ln, err := listen(p)
			if err != nil {
				return daemonErr(errdefs.ErrInternal, "driver failed programming external connectivity on endpoint %s (%s): failed to bind port 0.0.0.0:%d/tcp: Error starting userland proxy: %v", c.name, c.id, p, err)
			}
			c.listener = ln
		}
	}
	c.state = StateRunning
	if n := e.networkByName(c.network); n != nil {
		c.ip = n.allocIP()
	}
	e.emitLocked(c, "start")
	if e.matchesLocked(e.exitOnStart, c) {
		e.exitLocked(c, exitFailed)
		return nil
	}
	if args, ok := parseNginx(c.spec.Cmd); ok {
		e.nginxMainLocked(c, args)
	}
	return nil
}

// exitLocked stops the process of a running container.
func (e *Engine) exitLocked(c *container, code int) {
	if c.state != StateRunning {
		return
	}
	c.state = StateExited
	c.exitCode = code
	c.ip = ""
	c.confPath, c.loaded = "", nil
	c.closeListener()
	c.endFollowersLocked()
	close(c.exited)
	e.emitLocked(c, "die")
}

// removeLocked stops (gracefully when grace > 0) and removes c.
func (e *Engine) removeLocked(c *container, grace time.Duration) {
	if e.containers[c.id] != c {
		return
	}
	if c.state == StateRunning {
		e.emitLocked(c, "kill")
		if grace > 0 {
			e.exitLocked(c, exitGraceful)
			e.emitLocked(c, "stop")
		} else {
			e.exitLocked(c, exitKilled)
		}
	}
	if c.state == StateCreated || c.state == StateDead {
		close(c.exited)
	}
	delete(e.containers, c.id)
	e.emitLocked(c, "destroy")
}

// runLocked is engine.Run: create, start, and remove what failed to start.
func (e *Engine) runLocked(s engine.Spec) (*container, error) {
	c, err := e.createLocked(s, true)
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", s.Name, err)
	}
	// As Docker does, a named volume that does not exist is made, without
	// labels: the reconciler must create (and label) it first.
	for _, v := range s.Volumes {
		if _, ok := e.volumes[v.Name]; !ok {
			e.volumes[v.Name] = map[string]string{}
		}
	}
	if err := e.startLocked(c); err != nil {
		e.removeLocked(c, 0)
		return nil, fmt.Errorf("start container %s: %w", s.Name, err)
	}
	return c, nil
}

// ListContainers returns every container labelled with the project, in any
// state, sorted by name, with IPs on networkName.
func (e *Engine) ListContainers(ctx context.Context, project, networkName string) (out []engine.Container, err error) {
	c := e.begin(OpListContainers, project, networkName)
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return nil, fmt.Errorf("list containers of project %s: %w", project, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out = []engine.Container{}
	for _, ct := range e.containers {
		if ct.spec.Labels[stack.LabelProject] == project {
			out = append(out, ct.toEngine(networkName))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Run creates and starts a container and returns its ID. Its process may
// exit right after the start (ExitOnStart, an nginx refusing its config):
// Run still succeeds, as with Docker, and the container is left exited.
func (e *Engine) Run(ctx context.Context, s engine.Spec) (id string, err error) {
	c := e.begin(OpRun, s.Name, s.Image)
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return "", fmt.Errorf("create container %s: %w", s.Name, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ct, err := e.runLocked(s)
	if err != nil {
		return "", err
	}
	return ct.id, nil
}

// Remove stops and removes a container given by ID, name or unique ID
// prefix; a missing one is not an error.
func (e *Engine) Remove(ctx context.Context, id string, grace time.Duration) (err error) {
	c := e.begin(OpRemove, id, grace.String())
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		if grace > 0 {
			return fmt.Errorf("stop container %s: %w", id, ferr)
		}
		return fmt.Errorf("remove container %s: %w", id, ferr)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ct := e.resolve(id); ct != nil {
		e.removeLocked(ct, grace)
	}
	return nil
}

// RunOnce runs a short-lived container to completion and returns its exit
// code and output (stdout and stderr); the container is always removed. A
// container whose process does not exit by itself (anything but the nginx
// commands) runs until ctx ends, Kill or Remove.
func (e *Engine) RunOnce(ctx context.Context, s engine.Spec) (code int, out string, err error) {
	c := e.beginImage(OpRunOnce, s.Name, strings.Join(s.Cmd, " "), s.Image)
	defer c.end(&err)
	if ferr := e.admit(ctx, c); ferr != nil {
		return -1, "", fmt.Errorf("create container %s: %w", s.Name, ferr)
	}
	s.Restart = false
	e.mu.Lock()
	ct, err := e.runLocked(s)
	if err != nil {
		e.mu.Unlock()
		return -1, "", err
	}
	e.mu.Unlock()
	select {
	case <-ct.exited:
	case <-ctx.Done():
		e.mu.Lock()
		e.removeLocked(ct, 0)
		e.mu.Unlock()
		return -1, "", fmt.Errorf("wait for container %s: %w", s.Name, ctx.Err())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.containers[ct.id] != ct {
		return ct.exitCode, "", fmt.Errorf("logs of container %s: %w", s.Name, daemonErr(errdefs.ErrNotFound, "No such container: %s", ct.id))
	}
	code, out = ct.exitCode, ct.logs.String()
	e.removeLocked(ct, 0)
	return code, out, nil
}

// AddContainer creates a container directly, without recording a call and
// without needing its image, in state created, running, exited (code 1)
// or dead: a test's starting state, such as a leftover of a crash between
// create and start. A running one starts its process (an nginx loads its
// config) and publishes its port like Run; its events are emitted.
func (e *Engine) AddContainer(s engine.Spec, state string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.createLocked(s, false)
	if err != nil {
		return "", err
	}
	switch state {
	case StateCreated:
	case StateRunning, StateExited:
		if err := e.startLocked(c); err != nil {
			e.removeLocked(c, 0)
			return "", err
		}
		if state == StateExited {
			e.exitLocked(c, exitFailed)
		}
	case StateDead:
		c.state = StateDead
	default:
		e.removeLocked(c, 0)
		return "", fmt.Errorf("fake engine: cannot add a container in state %q", state)
	}
	return c.id, nil
}
