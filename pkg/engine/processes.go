package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

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
