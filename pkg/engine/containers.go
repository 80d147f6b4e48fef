package engine

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/trace"
)

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
