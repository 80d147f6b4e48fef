package testproc

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// A process that ignores SIGTERM is killed once the grace has passed, and
// Stop returns only after it was waited for.
func TestStopKillsAfterGrace(t *testing.T) {
	cmd := exec.Command("sh", "-c", "trap '' TERM; while :; do sleep 0.05; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let sh install its trap
	began := time.Now()
	Stop(cmd, 300*time.Millisecond)
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Errorf("Stop returned after %s, before the grace of 300ms: SIGTERM was not ignored?", took)
	}
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != -1 {
		t.Errorf("process state %v, want killed by a signal", cmd.ProcessState)
	}
}

// A process that exits on SIGTERM is not waited for the whole grace.
func TestStopTermsFirst(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	Stop(cmd, 20*time.Second)
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Stop took %s: SIGTERM did not end sleep", took)
	}
}

// Start keeps the output in the log file and stops the process at cleanup.
func TestStartStopsAtCleanup(t *testing.T) {
	log := filepath.Join(t.TempDir(), "p.log")
	cmd := exec.Command("sh", "-c", "echo hello; exec sleep 30")
	t.Run("inner", func(t *testing.T) { Start(t, "sleeper", cmd, log) })
	if cmd.ProcessState == nil {
		t.Fatal("the process was not stopped at the subtest's cleanup")
	}
}
