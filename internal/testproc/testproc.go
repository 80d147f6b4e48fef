// Package testproc starts a real server a test needs (Prometheus, a
// registry) as a child process and stops it when the test ends: SIGTERM,
// then SIGKILL after a grace period, with its output kept in a log file
// whose tail the test shows if it failed.
package testproc

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StopGrace is how long a server has to exit after SIGTERM before it is
// killed.
const StopGrace = 10 * time.Second

// Start runs cmd with its output in logPath, in its own process group (so
// a ^C of the test run is not delivered to it twice), and stops it at
// t's cleanup. It fails t if the process cannot start. name is what the
// log is called when it is shown.
func Start(t testing.TB, name string, cmd *exec.Cmd, logPath string) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: log file: %v", name, err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		Stop(cmd, StopGrace)
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log (last 40 lines):\n%s", name, lastLines(string(b), 40))
		}
	})
}

// Stop ends a started process: SIGTERM, then SIGKILL once grace has
// passed. It returns when the process has been waited for.
func Stop(cmd *exec.Cmd, grace time.Duration) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
