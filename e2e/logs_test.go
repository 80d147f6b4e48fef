package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// swiftctl logs on the real engine: the lines of every replica, each
// prefixed with its container, in time order; -f streams a line written
// after it started, follows a replica that comes back and one a scale-up
// adds, and ends cleanly on Ctrl-C; --since leaves out what came before
// it.
func TestLogsMergedAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	e.writeManifest(e.manifest(images.AppImage, 2, ""))
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2})
	for range 5 {
		if _, _, err := get(e.url("/")); err != nil {
			t.Fatal(err)
		}
	}
	apps := appNames(e.status())
	if len(apps) != 2 {
		t.Fatalf("app containers %v, want 2", apps)
	}

	// Every replica's start line, prefixed with its container. The demo
	// app writes "listening" on stderr when it starts.
	out, code := e.swiftctl("logs")
	for _, name := range apps {
		if code != 0 || !hasLine(out, name+" | ", "listening") {
			t.Fatalf("swiftctl logs: exit %d, want 0 and %s's listening line, output:\n%s", code, name, out)
		}
	}
	// In time order, from the NDJSON form.
	out, code = e.swiftctl("logs", "-o", "json")
	if code != 0 {
		t.Fatalf("swiftctl logs -o json: exit %d\n%s", code, out)
	}
	seen := map[string]bool{}
	var prev time.Time
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ll api.LogLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if ll.Time.Before(prev) {
			t.Errorf("line %q comes before the one above it (%s)", l, prev)
		}
		prev = ll.Time
		seen[ll.Container] = true
	}
	for _, name := range apps {
		if !seen[name] {
			t.Errorf("-o json has no line of %s:\n%s", name, out)
		}
	}

	// -f: a line written after it started is streamed.
	cmd := exec.Command(filepath.Join(binDir, "swiftctl"), "--manifest", filepath.Join(e.dir, "manifest.yaml"), "--socket", e.socket, "logs", "-f")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// waitLines reads the follow's output until a line of each prefix
	// holding text came, in any order (replicas interleave as they write).
	waitLines := func(text string, prefixes ...string) {
		t.Helper()
		want := map[string]bool{}
		for _, p := range prefixes {
			want[p] = true
		}
		timeout := time.After(90 * time.Second)
		for len(want) > 0 {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("logs -f ended before lines of %v with %q; stderr: %s", want, text, stderr.String())
				}
				for p := range want {
					if strings.HasPrefix(l, p) && strings.Contains(l, text) || p == "(new)" && strings.Contains(l, text) && !hasPrefixOf(l, apps) {
						delete(want, p)
					}
				}
			case <-timeout:
				t.Fatalf("logs -f printed no line of %v with %q within 90s", want, text)
			}
		}
	}
	// The backlog first: both replicas are followed.
	waitLines("listening", apps[0]+" | ", apps[1]+" | ")
	mark := time.Now()
	// A graceful stop makes the app write a line, after the follow began.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.cli.ContainerKill(ctx, apps[0], client.ContainerKillOptions{Signal: "TERM"}); err != nil {
		t.Fatal(err)
	}
	waitLines("stopped gracefully", apps[0]+" | ")
	// It comes back (restarted or replaced under its name): followed again.
	waitLines("listening", apps[0]+" | ")
	// A scale-up's new replica is followed too, from its start.
	e.writeManifest(e.manifest(images.AppImage, 3, ""))
	waitLines("listening", "(new)")
	// Ctrl-C ends the follow: exit 0, nothing on stderr.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("logs -f after Ctrl-C: %v, want exit 0; stderr: %s", err, stderr.String())
	}
	for range lines { // drained
	}

	// --since: only what came after mark (the replacement's start line;
	// the stopped container, and its stop line, were removed by the
	// daemon's recreate), not the untouched replica's start line from
	// before.
	out, code = e.swiftctl("logs", "--since", mark.UTC().Format(time.RFC3339Nano))
	if code != 0 || !hasLine(out, apps[0]+" | ", "listening") || hasLine(out, apps[1]+" | ", "listening") {
		t.Errorf("swiftctl logs --since %s: exit %d, want 0, %s's new start line and not %s's start line, output:\n%s", mark.Format(time.RFC3339Nano), code, apps[0], apps[1], out)
	}
	out, code = e.swiftctl("logs", "--since", "10m")
	if code != 0 || !hasLine(out, apps[1]+" | ", "listening") {
		t.Errorf("swiftctl logs --since 10m: exit %d, want %s's start line, output:\n%s", code, apps[1], out)
	}
	// The lines went to the caller only, not into the daemon's own log.
	if b, err := os.ReadFile(e.logPath); err != nil || contains(string(b), "stopped gracefully") || contains(string(b), "msg=listening") {
		t.Errorf("the daemon's log holds the app's lines (or cannot be read: %v)", err)
	}
	// No canary runs: nothing to show, said so.
	out, code = e.swiftctl("logs", "--track", "canary")
	if code != 1 || !contains(out, "no replica of service "+e.project+" on track canary") {
		t.Errorf("swiftctl logs --track canary without a canary: exit %d, output:\n%s", code, out)
	}
	// A service the manifest does not have is refused, naming the one it
	// has (the single service is named after the project, as in
	// swiftctl releases); naming it is the same as naming none.
	n := len(appNames(e.status()))
	out, code = e.swiftctl("logs", e.project, "--tail", "1")
	if code != 0 || strings.Count(strings.TrimSpace(out), "\n") != n-1 {
		t.Errorf("swiftctl logs %s --tail 1: exit %d, want one line per replica (%d), output:\n%s", e.project, code, n, out)
	}
	out, code = e.swiftctl("logs", "worker")
	if code != 1 || !contains(out, `no service "worker" in the manifest: its services are [`+e.project+`]`) {
		t.Errorf("swiftctl logs worker: exit %d, output:\n%s", code, out)
	}
}

// hasLine: a line of out starts with prefix and contains text.
func hasLine(out, prefix, text string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, text) {
			return true
		}
	}
	return false
}

func hasPrefixOf(l string, names []string) bool {
	for _, n := range names {
		if strings.HasPrefix(l, n+" | ") {
			return true
		}
	}
	return false
}

// --track on the real engine: a canary's lines only, or stable's only,
// told by the containers' track (the demo app logs its mode when it
// starts).
func TestLogsByTrack(t *testing.T) {
	e := newEnv(t)
	e.writeManifest(withCanary(e.manifest(images.AppImage, 2, ""), images.AppImageV2, 20))
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2, images.AppImageV2: 1})
	for _, tc := range []struct {
		track      string
		want, omit string
		lines      int
	}{
		{"canary", "mode=canary", "mode=stable", 1},
		{"stable", "mode=stable", "mode=canary", 2},
	} {
		out, code := e.swiftctl("logs", "--track", tc.track)
		n := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "msg=listening") {
				n++
			}
		}
		if code != 0 || n != tc.lines || !contains(out, tc.want) || contains(out, tc.omit) {
			t.Errorf("swiftctl logs --track %s: exit %d, %d start lines (want %d, %s and no %s), output:\n%s", tc.track, code, n, tc.lines, tc.want, tc.omit, out)
		}
	}

	// A follow ends cleanly when the daemon stops: the last record says
	// so (exit 0), the stream is not cut.
	cmd := exec.Command(filepath.Join(binDir, "swiftctl"), "--manifest", filepath.Join(e.dir, "manifest.yaml"), "--socket", e.socket, "logs", "-f", "--track", "canary")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.Contains(sc.Text(), "mode=canary") {
		t.Fatalf("logs -f: first line %q, want the canary's start line; stderr: %s", sc.Text(), stderr.String())
	}
	e.stopDaemon(syscall.SIGTERM)
	for sc.Scan() {
	}
	if err := cmd.Wait(); err != nil || !strings.Contains(stderr.String(), "swiftdeployd is stopping; the logs end here") {
		t.Errorf("logs -f when the daemon stopped: %v, stderr %q; want exit 0 and the daemon's last record", err, stderr.String())
	}
}
