package apiserver

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestListenSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "sd.sock")
	ln, err := listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o660 {
		t.Errorf("socket mode %v, want 0660 (never world-accessible)", perm)
	}
	if _, err := listen(path); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Errorf("second daemon on a live socket: err = %v", err)
	}
	// A daemon killed with -9 leaves its socket file behind; the next one
	// replaces it.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := listen(path)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	ln2.Close()
}

// Making the socket must not change the process's umask: another
// goroutine making a directory meanwhile (the manifest's directory
// restored and its state directories made again) would get the socket's
// mode, 0640, a directory no one can enter. The socket itself is never
// reachable by others, not even between bind and chmod, whatever the
// umask.
func TestListenLeavesTheUmaskAlone(t *testing.T) {
	for _, umask := range []int{0o022, 0o000} {
		old := syscall.Umask(umask)
		t.Cleanup(func() { syscall.Umask(old) })
		dir := t.TempDir()
		path := filepath.Join(dir, "sd.sock")
		var dirMode, sockMode os.FileMode
		afterBind = func(p string) {
			made := filepath.Join(dir, "restored", ".swiftdeploy")
			if err := os.MkdirAll(made, 0o750); err != nil {
				t.Errorf("make a directory while the socket is made: %v", err)
				return
			}
			if fi, err := os.Stat(made); err == nil {
				dirMode = fi.Mode().Perm()
			}
			if fi, err := os.Stat(p); err == nil {
				sockMode = fi.Mode().Perm()
			}
		}
		ln, err := listen(path)
		afterBind = nil
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		if want := os.FileMode(0o750) &^ os.FileMode(umask); dirMode != want {
			t.Errorf("umask %03o: a directory made (MkdirAll 0750) while the socket was made has mode %v, want %v", umask, dirMode, want)
		}
		if sockMode&0o007 != 0 || sockMode == 0 {
			t.Errorf("umask %03o: the socket's mode just after bind is %v, want no access for others", umask, sockMode)
		}
	}
}
