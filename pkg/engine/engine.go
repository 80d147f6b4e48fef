// Package engine is SwiftDeploy's narrow view of the Docker Engine: the few
// calls the reconciler needs, expressed in SwiftDeploy's own terms, over the
// maintained github.com/moby/moby client (API negotiated down to the engine's,
// 1.41 on Docker 20.10).
package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

// Engine wraps a Docker client.
type Engine struct {
	cli *client.Client
}

// New connects using DOCKER_HOST and friends, negotiating the API version.
func New() (*Engine, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Engine{cli: cli}, nil
}

// Client exposes the underlying client for callers that need more.
func (e *Engine) Client() *client.Client { return e.cli }

// Close releases the client's connections.
func (e *Engine) Close() error { return e.cli.Close() }

// Ping checks that the engine answers.
func (e *Engine) Ping(ctx context.Context) error {
	if _, err := e.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("docker engine unreachable: %w", err)
	}
	return nil
}

// Container is an owned container as observed.
type Container struct {
	ID      string
	Name    string
	Image   string // image reference recorded in the label
	Role    string
	Track   string
	Service string // the named service (stack.LabelService), "" in the seed form
	Replica int
	Hash    string
	Mounts  string // nginx: identity of its bind-mounted host directories (stack.LabelMounts)
	State   string // created, running, exited, ...
	IP      string // address on the project network, "" if not attached
	Created time.Time
}

// Running reports whether the container is up.
func (c Container) Running() bool { return c.State == "running" }

// Network is an observed Docker network.
type Network struct {
	ID     string
	Name   string
	Driver string
	Owned  bool // carries this project's label
}

// ListContainers returns every container labelled with the project, in any
// state, sorted by name.
func (e *Engine) ListContainers(ctx context.Context, project, networkName string) ([]Container, error) {
	res, err := e.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", stack.LabelProject+"="+project),
	})
	if err != nil {
		return nil, fmt.Errorf("list containers of project %s: %w", project, err)
	}
	out := make([]Container, 0, len(res.Items))
	for _, s := range res.Items {
		c := Container{
			ID:      s.ID,
			Image:   s.Labels[stack.LabelImage],
			Role:    s.Labels[stack.LabelRole],
			Track:   s.Labels[stack.LabelTrack],
			Service: s.Labels[stack.LabelService],
			Hash:    s.Labels[stack.LabelConfigHash],
			Mounts:  s.Labels[stack.LabelMounts],
			State:   string(s.State),
			Created: time.Unix(s.Created, 0),
		}
		c.Replica, _ = strconv.Atoi(s.Labels[stack.LabelReplica])
		if len(s.Names) > 0 {
			c.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		if s.NetworkSettings != nil {
			if ep := s.NetworkSettings.Networks[networkName]; ep != nil && ep.IPAddress.IsValid() {
				c.IP = ep.IPAddress.String()
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// FindNetwork returns the network with exactly this name, or nil.
func (e *Engine) FindNetwork(ctx context.Context, name, project string) (*Network, error) {
	res, err := e.cli.NetworkList(ctx, client.NetworkListOptions{
		Filters: make(client.Filters).Add("name", name),
	})
	if err != nil {
		return nil, fmt.Errorf("list networks named %s: %w", name, err)
	}
	for _, n := range res.Items {
		if n.Name == name { // the name filter matches substrings
			return &Network{ID: n.ID, Name: n.Name, Driver: n.Driver, Owned: n.Labels[stack.LabelProject] == project}, nil
		}
	}
	return nil, nil
}

// CreateNetwork creates a labelled network.
func (e *Engine) CreateNetwork(ctx context.Context, name, driver string, labels map[string]string) error {
	if _, err := e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: driver, Labels: labels}); err != nil {
		return fmt.Errorf("create network %s: %w", name, err)
	}
	return nil
}

// RemoveNetwork removes a network; a missing one is not an error.
func (e *Engine) RemoveNetwork(ctx context.Context, id string) error {
	if _, err := e.cli.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove network %s: %w", id, err)
	}
	return nil
}

// ImageExists reports whether ref is present locally.
func (e *Engine) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := e.cli.ImageInspect(ctx, ref)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return true, nil
}

// Image is what the engine knows of a local image: its ID (the digest of
// its configuration, what a container runs) and its RepoDigests (the
// registry manifests it was pulled as or pushed to; none for an image
// built here and never pushed).
type Image struct {
	Ref         string
	ID          string
	RepoDigests []string
}

// Digest is the image's content address as a release records it: its
// first repo digest, else its ID.
func (i Image) Digest() string {
	if len(i.RepoDigests) > 0 {
		return i.RepoDigests[0]
	}
	return i.ID
}

// InspectImage looks up ref locally. An image that is not present is an
// error for which errdefs.IsNotFound holds.
func (e *Engine) InspectImage(ctx context.Context, ref string) (Image, error) {
	res, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		return Image{}, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return Image{Ref: ref, ID: res.ID, RepoDigests: res.RepoDigests}, nil
}

// TagImage makes target name the image source names (a tag or an ID).
func (e *Engine) TagImage(ctx context.Context, source, target string) error {
	if _, err := e.cli.ImageTag(ctx, client.ImageTagOptions{Source: source, Target: target}); err != nil {
		return fmt.Errorf("tag image %s as %s: %w", source, target, err)
	}
	return nil
}

// UntagImage removes the reference ref (`docker rmi ref` without force):
// the image itself goes only if ref was its last name and no container
// uses it. A reference that is not there is not an error.
func (e *Engine) UntagImage(ctx context.Context, ref string) error {
	_, err := e.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{})
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("untag image %s: %w", ref, err)
	}
	return nil
}

// MissingImages returns the refs that are not present locally.
func (e *Engine) MissingImages(ctx context.Context, refs []string) ([]string, error) {
	var missing []string
	for _, ref := range refs {
		ok, err := e.ImageExists(ctx, ref)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, ref)
		}
	}
	return missing, nil
}

// PullImage pulls ref and waits for the pull to finish. auth is the
// engine's X-Registry-Auth value for ref's registry (registryauth), ""
// for an anonymous pull; it is secret and appears in no error.
func (e *Engine) PullImage(ctx context.Context, ref, auth string) error {
	resp, err := e.cli.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	defer resp.Close()
	if err := resp.Wait(ctx); err != nil {
		return fmt.Errorf("pull image %s: %w", ref, err)
	}
	return nil
}

// PullDenied reports whether a pull failed because the registry refused
// the credentials or the access (401/403: "unauthorized", "denied", no
// credentials where some are required): an answer that will not change
// until the credentials or the image do, unlike a network error.
func PullDenied(err error) bool {
	if err == nil {
		return false
	}
	if errdefs.IsUnauthorized(err) || errdefs.IsPermissionDenied(err) {
		return true
	}
	// Engines before the typed errors (20.10 among them) answer a denied
	// pull with a 500 whose text is the registry's error code.
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"unauthorized", "access denied", "denied: ", "authentication required", "no basic auth credentials", "access to the resource is denied"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// Spec describes a container to run.
type Spec struct {
	Name     string
	Image    string
	Env      []string
	Cmd      []string
	Labels   map[string]string
	Network  string
	Aliases  []string
	HostPort int    // published as the same container port; 0 = none
	HostIP   string // host address the port binds to; "" = all IPv4 addresses
	// ExtraPorts are published like HostPort, on the same address (nginx's
	// HTTPS port); only with HostPort.
	ExtraPorts []int
	Binds      []Bind
	ExtraHosts []string
	NanoCPUs   int64
	Memory     int64
	// Restart lets the engine bring the container back after a host reboot.
	Restart bool
	// NoHealthcheck turns off the image's HEALTHCHECK: the engine then runs
	// no periodic exec in the container.
	NoHealthcheck bool

	// What an app container needs (manifest services fields): nil or ""
	// keeps the image's own.
	Entrypoint []string
	User       string
	WorkingDir string
	// Volumes mounts named volumes (which must exist: a plan op creates
	// them).
	Volumes []VolumeMount
	// StopTimeout is the grace `docker stop` gives the container; 0 keeps
	// Docker's.
	StopTimeout time.Duration
	// Files are written into the container before it starts (secrets).
	Files []File
}

// VolumeMount mounts a named volume.
type VolumeMount struct {
	Name, Target string
	ReadOnly     bool
}

// Bind mounts a host path into the container.
type Bind struct {
	Source, Target string
	ReadOnly       bool
}

// Run creates and starts a container, returning its ID. A container that
// fails to start is removed so that no half-made object is left behind.
func (e *Engine) Run(ctx context.Context, s Spec) (string, error) {
	cfg := &container.Config{
		Image:      s.Image,
		Env:        s.Env,
		Cmd:        s.Cmd,
		Entrypoint: s.Entrypoint,
		User:       s.User,
		WorkingDir: s.WorkingDir,
		Labels:     s.Labels,
	}
	if s.StopTimeout > 0 {
		secs := int(s.StopTimeout.Seconds())
		cfg.StopTimeout = &secs
	}
	if s.NoHealthcheck {
		cfg.Healthcheck = &container.HealthConfig{Test: []string{"NONE"}}
	}
	hc := &container.HostConfig{
		ExtraHosts: s.ExtraHosts,
		Resources:  container.Resources{NanoCPUs: s.NanoCPUs, Memory: s.Memory},
		LogConfig:  container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3"}},
	}
	if s.Restart {
		hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
	}
	for _, b := range s.Binds {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: b.Source, Target: b.Target, ReadOnly: b.ReadOnly})
	}
	for _, v := range s.Volumes {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Source: v.Name, Target: v.Target, ReadOnly: v.ReadOnly})
	}
	if s.HostPort > 0 {
		ip := netip.IPv4Unspecified()
		if s.HostIP != "" {
			var err error
			if ip, err = netip.ParseAddr(s.HostIP); err != nil {
				return "", fmt.Errorf("container %s: bind address %q: %w", s.Name, s.HostIP, err)
			}
		}
		cfg.ExposedPorts = network.PortSet{}
		hc.PortBindings = network.PortMap{}
		for _, port := range append([]int{s.HostPort}, s.ExtraPorts...) {
			p, err := network.ParsePort(strconv.Itoa(port) + "/tcp")
			if err != nil {
				return "", fmt.Errorf("container %s: port %d: %w", s.Name, port, err)
			}
			cfg.ExposedPorts[p] = struct{}{}
			hc.PortBindings[p] = []network.PortBinding{{HostIP: ip, HostPort: strconv.Itoa(port)}}
		}
	}
	var nc *network.NetworkingConfig
	if s.Network != "" {
		hc.NetworkMode = container.NetworkMode(s.Network)
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			s.Network: {Aliases: s.Aliases},
		}}
	}
	end := trace.Begin(ctx, "create", s.Name)
	res, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: s.Name, Config: cfg, HostConfig: hc, NetworkingConfig: nc})
	end()
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", s.Name, err)
	}
	if len(s.Files) > 0 {
		if err = e.copyFiles(ctx, res.ID, s.User, s.Files); err == nil {
			end = trace.Begin(ctx, "start", s.Name)
			_, err = e.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
			end()
		}
	} else {
		end = trace.Begin(ctx, "start", s.Name)
		_, err = e.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
		end()
	}
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		_ = e.Remove(cctx, res.ID, 0)
		cancel()
		return "", fmt.Errorf("start container %s: %w", s.Name, err)
	}
	return res.ID, nil
}

// Remove stops a container gracefully (SIGTERM, then SIGKILL after grace)
// and removes it. A container that is already gone is not an error.
func (e *Engine) Remove(ctx context.Context, id string, grace time.Duration) error {
	if grace > 0 {
		secs := int(grace.Seconds())
		end := trace.Begin(ctx, "stop", id)
		_, err := e.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs})
		end()
		if err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("stop container %s: %w", id, err)
		}
	}
	end := trace.Begin(ctx, "remove", id)
	_, err := e.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	end()
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

// Process is one process of a container, as `docker top` lists it.
type Process struct {
	PID int    // on the host
	Cmd string // the command line, or the title the process set (nginx's "nginx: worker process")
}

// Top lists a running container's processes (`docker top`: the engine runs
// ps on the host).
func (e *Engine) Top(ctx context.Context, id string) ([]Process, error) {
	res, err := e.cli.ContainerTop(ctx, id, client.ContainerTopOptions{})
	if err != nil {
		return nil, fmt.Errorf("list processes of container %s: %w", id, err)
	}
	return parseTop(res.Titles, res.Processes)
}

// parseTop reads ps's PID and command columns, whatever the ps arguments.
func parseTop(titles []string, rows [][]string) ([]Process, error) {
	pid, cmd := -1, -1
	for i, t := range titles {
		switch t {
		case "PID":
			pid = i
		case "CMD", "COMMAND", "ARGS":
			cmd = i
		}
	}
	if pid < 0 || cmd < 0 {
		return nil, fmt.Errorf("unexpected process list columns %q", titles)
	}
	out := make([]Process, 0, len(rows))
	for _, r := range rows {
		if len(r) <= max(pid, cmd) {
			return nil, fmt.Errorf("unexpected process list row %q", r)
		}
		n, err := strconv.Atoi(r[pid])
		if err != nil {
			return nil, fmt.Errorf("unexpected PID %q in process list: %w", r[pid], err)
		}
		out = append(out, Process{PID: n, Cmd: r[cmd]})
	}
	return out, nil
}

// Signal sends a signal ("HUP", "TERM"...) to a running container's main
// process. It is one API call, without the process an exec starts.
func (e *Engine) Signal(ctx context.Context, id, signal string) error {
	if _, err := e.cli.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: signal}); err != nil {
		return fmt.Errorf("signal %s to container %s: %w", signal, id, err)
	}
	return nil
}

// Exec runs cmd in a running container and returns its exit code and
// combined output.
func (e *Engine) Exec(ctx context.Context, id string, cmd []string) (int, string, error) {
	created, err := e.cli.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return -1, "", fmt.Errorf("exec %q in %s: %w", strings.Join(cmd, " "), id, err)
	}
	att, err := e.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return -1, "", fmt.Errorf("exec %q in %s: attach: %w", strings.Join(cmd, " "), id, err)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil && !errors.Is(err, io.EOF) {
		return -1, out.String(), fmt.Errorf("exec %q in %s: read output: %w", strings.Join(cmd, " "), id, err)
	}
	insp, err := e.cli.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
	if err != nil {
		return -1, out.String(), fmt.Errorf("exec %q in %s: inspect: %w", strings.Join(cmd, " "), id, err)
	}
	return insp.ExitCode, out.String(), nil
}

// RunOnce runs a short-lived container to completion and returns its exit
// code and output; the container is always removed.
func (e *Engine) RunOnce(ctx context.Context, s Spec) (int, string, error) {
	s.Restart = false
	id, err := e.Run(ctx, s)
	if err != nil {
		return -1, "", err
	}
	defer func() { // cleanup outlives a cancelled caller, but not a hung engine
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = e.Remove(cctx, id, 0)
	}()
	wait := e.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	var code int
	select {
	case r := <-wait.Result:
		code = int(r.StatusCode)
	case err := <-wait.Error:
		return -1, "", fmt.Errorf("wait for container %s: %w", s.Name, err)
	}
	logs, err := e.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return code, "", fmt.Errorf("logs of container %s: %w", s.Name, err)
	}
	defer logs.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, logs)
	return code, out.String(), nil
}

// Event is a lifecycle change of an owned container.
type Event struct {
	ContainerID string
	Name        string
	Role        string // the container's role label
	Action      string
	// Signal is the number of the signal a "kill" event sent ("1" for
	// SIGHUP), "" for other events.
	Signal string
}

// Watch streams container events for the project until ctx ends or the
// stream fails; the error channel receives the failure.
func (e *Engine) Watch(ctx context.Context, project string) (<-chan Event, <-chan error) {
	res := e.cli.Events(ctx, client.EventsListOptions{
		Filters: make(client.Filters).
			Add("type", string(events.ContainerEventType)).
			Add("label", stack.LabelProject+"="+project),
	})
	out := make(chan Event)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		for {
			select {
			case m := <-res.Messages:
				ev := Event{ContainerID: m.Actor.ID, Name: m.Actor.Attributes["name"], Role: m.Actor.Attributes[stack.LabelRole], Action: string(m.Action), Signal: m.Actor.Attributes["signal"]}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case err := <-res.Err:
				errc <- err
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, errc
}

// FollowLogs streams what a container writes to its standard output from
// since on (stderr is left out), demultiplexed, until ctx ends, the
// container stops (io.EOF, as Docker ends a follow then) or the connection
// breaks. The caller bounds how long establishing the stream may take
// through ctx and must Close the reader; cancelling ctx also ends it.
func (e *Engine) FollowLogs(ctx context.Context, id string, since time.Time) (io.ReadCloser, error) {
	rc, err := e.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{
		ShowStdout: true,
		Follow:     true,
		Since:      since.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return nil, fmt.Errorf("follow logs of container %s: %w", id, err)
	}
	pr, pw := io.Pipe()
	go func() {
		// The stream is multiplexed (the container has no TTY): stdout
		// frames go to the pipe, anything else is dropped.
		if _, err := stdcopy.StdCopy(pw, io.Discard, rc); err != nil {
			pw.CloseWithError(fmt.Errorf("logs of container %s: %w", id, err))
		} else {
			pw.Close() // the container stopped: io.EOF
		}
		rc.Close()
	}()
	return &logStream{PipeReader: pr, rc: rc}, nil
}

// logStream is FollowLogs' reader: closing it ends the engine's stream.
type logStream struct {
	*io.PipeReader
	rc io.Closer
}

func (s *logStream) Close() error {
	err := s.rc.Close()
	s.PipeReader.Close()
	return err
}
