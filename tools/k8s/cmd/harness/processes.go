package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// components in start order; down stops them in reverse.
var components = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// spawn starts a component in its own session, so that it outlives this
// command, logging to DIR/NAME.log, and records its pid in DIR/NAME.pid.
func spawn(dir, name, bin string, args ...string) error {
	log, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	return os.WriteFile(filepath.Join(dir, name+".pid"), []byte(strconv.Itoa(pid)+"\n"), 0o600)
}

func pidOf(dir, name string) int {
	b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie is not running; nor is a pid reused by something else.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
		return false
	}
	return true
}

func running(dir string) bool {
	for _, n := range components {
		if alive(pidOf(dir, n)) {
			return true
		}
	}
	return false
}

// stopAll stops the components this harness started, by the pids it
// recorded, newest first: SIGTERM, then SIGKILL after 10s.
func stopAll(dir string) error {
	for i := len(components) - 1; i >= 0; i-- {
		name := components[i]
		pid := pidOf(dir, name)
		if pid > 0 && alive(pid) {
			// Only a process whose command line is the component's.
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if !strings.Contains(string(cmdline), name) {
				fmt.Fprintf(os.Stderr, "harness: pid %d is not %s any more; leaving it alone\n", pid, name)
			} else {
				_ = syscall.Kill(pid, syscall.SIGTERM)
				deadline := time.Now().Add(10 * time.Second)
				for alive(pid) && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
				}
				if alive(pid) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		_ = os.Remove(filepath.Join(dir, name+".pid"))
	}
	return nil
}

func waitFor(timeout time.Duration, what, dir string, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = check(); last == nil {
			return nil
		}
		for _, n := range components {
			if pid := pidOf(dir, n); pid > 0 && !alive(pid) {
				return fmt.Errorf("waiting for %s: %s exited; the end of %s:\n%s", what, n, filepath.Join(dir, n+".log"), tail(filepath.Join(dir, n+".log"), 30))
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %v", what, timeout, last)
}

func tail(file string, lines int) string {
	b, _ := os.ReadFile(file)
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
