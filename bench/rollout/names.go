package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Every Docker object, project and temp directory a run creates is named
// "sdbench-<pid>-<random>-…", so a later run can tell a leftover (its pid
// is gone) from the objects of a run still going.
const namePrefix = "sdbench-"

// Labels the benchmark puts on what it creates itself (compose services and
// networks, floor containers). swiftdeployd labels its own objects with
// stack.LabelProject; those are found by project name.
const (
	labelRun         = "io.swiftdeploy.bench.run"
	labelComposeProj = "com.docker.compose.project"
)

var runPattern = regexp.MustCompile(`^` + namePrefix + `([0-9]+)-`)

// newRunID returns "sdbench-<pid>-<4 hex>".
func newRunID() string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%d-%s", namePrefix, os.Getpid(), hex.EncodeToString(b[:]))
}

// leftover reports whether name belongs to a run whose process is gone.
func leftover(name string) bool {
	m := runPattern.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil || pid <= 0 || pid > 1<<22 {
		return false
	}
	if pid == os.Getpid() {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// runOf is the bench run or project an object belongs to, from its labels.
func runOf(labels map[string]string) string {
	for _, k := range []string{labelRun, stack.LabelProject, labelComposeProj} {
		if v := labels[k]; strings.HasPrefix(v, namePrefix) {
			return v
		}
	}
	return ""
}

// sweep removes Docker objects and temp directories of runs whose process
// is gone (own=false), or everything of this run (own=true, at exit).
func sweep(ctx context.Context, cli *client.Client, runID string, own bool) error {
	match := func(name string) bool {
		if own {
			return name == runID || strings.HasPrefix(name, runID+"-") || strings.HasPrefix(name, runID+"_")
		}
		return leftover(name)
	}
	var errs []error
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	projects := map[string]bool{}
	for _, c := range cs.Items {
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		owner := runOf(c.Labels)
		if !match(owner) && !match(name) {
			continue
		}
		if p := c.Labels[stack.LabelProject]; p != "" {
			projects[p] = true
		}
		if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", name, err))
		}
	}
	// swiftdeployd's networks carry the project label; RemoveProject
	// takes what is left of each such project.
	for p := range projects {
		if err := testenv.RemoveProject(ctx, cli, p); err != nil {
			errs = append(errs, err)
		}
	}
	ns, err := cli.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
	}
	for _, n := range ns.Items {
		if !match(runOf(n.Labels)) && !match(n.Name) {
			continue
		}
		if err := removeNetwork(ctx, cli, n.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), namePrefix+"*"))
	for _, d := range dirs {
		if match(filepath.Base(d)) {
			if err := os.RemoveAll(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeNetwork removes a network, retrying for a few seconds: the engine
// may report "active endpoints" for a moment after the last container went.
func removeNetwork(ctx context.Context, cli *client.Client, id string) error {
	var err error
	for range 10 {
		_, err = cli.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		if sleep(ctx, time.Second) != nil {
			break
		}
	}
	return err
}

// freePort returns a loopback port nothing listens on, checked free on all
// interfaces too (swiftdeployd publishes nginx on 0.0.0.0).
func freePort() (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if portFree(port) {
			return port, nil
		}
	}
	return 0, errors.New("no free port found in 20 tries")
}

// portFree reports whether port can be bound on all interfaces and nothing
// answers on loopback (a DNAT rule without a proxy process would).
func portFree(port int) bool {
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
	if err == nil {
		c.Close()
		return false
	}
	return true
}

// waitPortFree waits until port is free again after a teardown.
func waitPortFree(ctx context.Context, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !portFree(port) {
		if time.Now().After(deadline) {
			return fmt.Errorf("port %d still in use %s after teardown", port, timeout)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
