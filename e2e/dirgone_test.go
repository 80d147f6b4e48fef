package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// The manifest's directory, which by default also holds the control
// socket, the state directory (nginx's mounted config and status socket)
// and the journal, is removed under a running daemon and recreated with a
// changed manifest (a redeploy of the configuration, a restored backup).
// While it is gone nothing is torn down or recreated and nginx keeps
// serving; once it is back the daemon listens on its socket again, writes
// its journal to the new file and says so, replaces nginx (whose mounts
// pin the removed directory, so it could never load a new config), and
// converges to the manifest that came back.
func TestManifestDirRemovedAndRecreated(t *testing.T) {
	e := newEnv(t)
	e.logPath = filepath.Join(t.TempDir(), "daemon.log") // outlives e.dir
	e.writeManifest(e.manifest(images.AppImage, 2, ""))
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})
	nginxBefore := e.nginxID()

	l := startLoad(e.url("/"), 10*time.Millisecond)
	finished := false
	defer func() {
		if !finished {
			l.finish()
		}
	}()
	e.waitFor(10*time.Second, "load answered", func() (bool, string) { return l.ok.Load() > 50, fmt.Sprint(l.ok.Load()) })

	if err := os.RemoveAll(e.dir); err != nil {
		t.Fatal(err)
	}
	gone := time.Now()
	okAtRemoval := l.ok.Load()
	// Several of the daemon's retries and watch checks pass meanwhile.
	time.Sleep(3 * time.Second)
	if _, err := os.Stat(e.dir); !os.IsNotExist(err) {
		t.Fatalf("the daemon recreated the removed manifest directory: %v", err)
	}
	if id := e.nginxID(); id != nginxBefore {
		t.Fatalf("nginx was replaced while the directory was missing: %s -> %s", nginxBefore, id)
	}
	failedWhileGone := l.failed.Load()
	servedWhileGone := l.ok.Load() - okAtRemoval
	if servedWhileGone < 100 || failedWhileGone != 0 {
		t.Fatalf("while the directory was missing: %d answered, %d failed (%v), want nginx to keep serving", servedWhileGone, failedWhileGone, l.failures)
	}

	if err := os.Mkdir(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	e.writeManifest(e.manifest(images.AppImage, 3, "")) // changed while away
	e.converged(map[string]int{images.AppImage: 3})
	took := time.Since(back)
	if id := e.nginxID(); id == nginxBefore {
		t.Errorf("nginx %s kept: its mounts pin the removed directory", id)
	}
	s := e.status()
	if s.Mode != "stable" || s.NginxError != "" || s.Journal == nil || s.Journal.Reopened == nil {
		t.Errorf("status after the directory came back: mode %q, nginx error %q, journal %+v; want stable, nginx readable, the journal reopen reported", s.Mode, s.NginxError, s.Journal)
	}
	// What nginx serves now reaches all three replicas.
	e.waitFor(20*time.Second, "responses from 3 replicas", func() (bool, string) {
		hosts := map[string]bool{}
		for range 60 {
			if code, info, err := get(e.url("/")); err == nil && code == 200 {
				hosts[info.Hostname] = true
			}
		}
		return len(hosts) == 3, fmt.Sprint(hosts)
	})
	ok, failed, samples := l.finish()
	finished = true
	t.Logf("directory gone %s: 0 of %d requests failed while it was missing; back → converged to 3 replicas with nginx replaced in %s; %d of %d requests failed in all (the nginx replacement: %v)",
		back.Sub(gone).Round(time.Millisecond), servedWhileGone, took.Round(time.Millisecond), failed, ok+failed, samples)

	for _, ev := range []string{"journal_reopened", "control_socket_recreated"} {
		if got := e.events(ev); len(got) != 1 {
			t.Errorf("%d %s events in the new journal, want 1", len(got), ev)
		}
	}
	rep, err := journal.Verify(filepath.Join(e.dir, "history.jsonl"))
	if err != nil || !rep.OK {
		t.Errorf("new journal: %+v, %v; want a chain that verifies", rep, err)
	}
	out, code := e.swiftctl("status")
	if code != 0 || !strings.Contains(out, "Journal file was removed or replaced") {
		t.Errorf("swiftctl status after the directory came back: exit %d\n%s", code, out)
	}
}

// nginxID is the ID of the project's nginx container as Docker sees it.
func (e *env) nginxID() string {
	e.t.Helper()
	res, err := e.cli.ContainerList(context.Background(), client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", "io.swiftdeploy.project="+e.project).Add("label", "io.swiftdeploy.role=nginx"),
	})
	if err != nil {
		e.t.Fatalf("list nginx: %v", err)
	}
	if len(res.Items) != 1 {
		e.t.Fatalf("%d nginx containers running, want 1", len(res.Items))
	}
	return res.Items[0].ID
}
