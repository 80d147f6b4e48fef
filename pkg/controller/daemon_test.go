package controller

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
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

const goodManifest = `services:
  image: app:1
  port: 3000
nginx:
  image: nginx:latest
  port: 8080
network:
  name: demo-net
`

func testDaemon(t *testing.T) *Daemon {
	t.Helper()
	dir := t.TempDir()
	jr, err := journal.Open(filepath.Join(dir, "history.jsonl"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jr.Close() })
	return &Daemon{
		cfg: Config{ManifestPath: filepath.Join(dir, "manifest.yaml")},
		log: zap.NewNop(), dir: dir, jr: jr, metrics: newDaemonMetrics(nil),
	}
}

func (d *Daemon) write(t *testing.T, s string) {
	t.Helper()
	if err := os.WriteFile(d.cfg.ManifestPath, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// An invalid edit is reported and journaled once; the last good manifest
// stays in force until a valid one arrives.
func TestReadManifestKeepsLastGood(t *testing.T) {
	d := testDaemon(t)
	d.write(t, goodManifest)
	m := d.readManifest()
	if m == nil || m.Services.Image != "app:1" {
		t.Fatalf("good manifest: %+v", m)
	}

	bad := strings.Replace(goodManifest, "port: 3000", "port: 70000", 1)
	d.write(t, bad)
	for range 2 {
		if got := d.readManifest(); got != m {
			t.Fatalf("invalid edit replaced the manifest in force: %+v", got)
		}
	}
	if errs := d.manifestErrors(); len(errs) != 1 || !strings.Contains(errs[0], "services.port") {
		t.Errorf("manifest errors = %v", errs)
	}

	d.write(t, strings.Replace(goodManifest, "app:1", "app:2", 1))
	if got := d.readManifest(); got == nil || got.Services.Image != "app:2" {
		t.Fatalf("valid edit not taken: %+v", got)
	}
	if errs := d.manifestErrors(); len(errs) != 0 {
		t.Errorf("errors not cleared: %v", errs)
	}

	if err := d.jr.Flush(); err != nil {
		t.Fatal(err)
	}
	var events []string
	err := journal.Read(filepath.Join(d.dir, "history.jsonl"), journal.Filter{Types: []string{journal.TypeEvent}}, func(r journal.Record) error {
		events = append(events, r.Event)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Reading a manifest applies nothing: only the rejection is news here.
	want := "manifest_rejected"
	if got := strings.Join(events, " "); got != want {
		t.Errorf("journaled events %q, want %q", got, want)
	}
}

func TestStackOptions(t *testing.T) {
	canary := func(img string) func(*manifest.Manifest) {
		return func(m *manifest.Manifest) { m.Services.Canary = &manifest.Canary{Image: img, Weight: 10, Replicas: 1} }
	}
	tests := []struct {
		name       string
		state      State
		mutate     func(*manifest.Manifest)
		wantStable string
		noCanary   bool
	}{
		{name: "nothing recorded", mutate: canary("app:2")},
		{name: "promotion applies while the manifest still names the old stable",
			state: State{Promoted: &Promotion{ManifestStable: "app:1", Image: "app:2"}}, mutate: canary("app:2"), wantStable: "app:2"},
		{name: "promotion lapses once the manifest names a new stable",
			state:  State{Promoted: &Promotion{ManifestStable: "app:0", Image: "app:2"}},
			mutate: canary("app:2")},
		{name: "rollback suppresses that canary image",
			state: State{RolledBack: &Rollback{CanaryImage: "app:2"}}, mutate: canary("app:2"), noCanary: true},
		{name: "rollback does not suppress a new canary image",
			state: State{RolledBack: &Rollback{CanaryImage: "app:2"}}, mutate: canary("app:3")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := manifest.Defaults()
			m.Services.Image = "app:1"
			tc.mutate(&m)
			o := tc.state.Options(&m)
			if o.StableImage != tc.wantStable || o.NoCanary != tc.noCanary {
				t.Errorf("options %+v, want StableImage %q NoCanary %v", o, tc.wantStable, tc.noCanary)
			}
		})
	}
}
