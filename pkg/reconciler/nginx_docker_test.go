package reconciler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/internal/testenv"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// nginxConf is a minimal config in the rendered one's shape that answers
// body on every request and reports revision rev on its status socket.
func nginxConf(port int, body, rev string) []byte {
	return []byte(fmt.Sprintf(`user nobody nogroup;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    access_log off;
    server { listen %d; location / { return 200 "%s"; } }
    server {
        listen unix:%s/%s;
        location = %s { return 200 "revision %s\nweight 0\nstable app-1\ncanary -\n"; }
    }
}
`, port, body, stack.NginxRunDir, stack.NginxStatusSocket, StatusPath, rev))
}

// failingReload makes the reload fail (the SIGHUP and `nginx -s reload`),
// as when the daemon's calls are cut off after the new file was renamed
// into place. It counts the signals and the reload execs.
type failingReload struct {
	Engine
	fail             bool
	signals, reloads int
}

func (f *failingReload) Exec(ctx context.Context, id string, cmd []string) (int, string, error) {
	if slices.Contains(cmd, "reload") {
		f.reloads++
		if f.fail {
			return -1, "", errors.New("injected: exec cut off")
		}
	}
	return f.Engine.Exec(ctx, id, cmd)
}

func (f *failingReload) Signal(ctx context.Context, id, signal string) error {
	f.signals++
	if f.fail {
		return errors.New("injected: signal cut off")
	}
	return f.Engine.Signal(ctx, id, signal)
}

// With the real nginx image: a config that fails `nginx -t` never replaces
// the one that serves; a good one is loaded by a graceful reload and read
// back from nginx itself; a reload that fails after the rename restores the
// old file, and the loaded revision (not the file) tells the planner that
// nginx still serves the old one.
func TestNginxInstallReloadAndReadBack(t *testing.T) {
	cli := testenv.Docker(t)
	testenv.Images(t, cli)
	project := testenv.Project(t, cli)
	eng, err := engine.New()
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	st := stack.Stack{
		Project: project,
		Network: manifest.Network{Name: project + "-net", DriverType: "bridge"},
		Stable:  []stack.App{},
		Nginx:   stack.Nginx{Name: project + "-nginx", Image: images.NginxImage, Port: port},
	}
	if err := eng.CreateNetwork(ctx, st.Network.Name, "bridge", stack.NetworkLabels(project)); err != nil {
		t.Fatal(err)
	}
	fe := &failingReload{Engine: eng}
	r := &Reconciler{Engine: fe, ConfigDir: t.TempDir(), RunDir: t.TempDir(), Log: zap.NewNop(), LoadTimeout: 10 * time.Second}
	live := filepath.Join(r.ConfigDir, confName)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	const r1, r2, rb = "1111111111111111", "2222222222222222", "bbbbbbbbbbbbbbbb"
	d1 := Desired{Stack: st, Conf: nginxConf(port, "v1", r1), Revision: r1}
	d2 := Desired{Stack: st, Conf: nginxConf(port, "v2", r2), Revision: r2}

	if err := r.startNginx(ctx, d1); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	waitBody(t, url, "v1")
	if l, err := r.nginxStatus(ctx); err != nil || l.Revision != r1 {
		t.Fatalf("loaded after start: %+v, %v", l, err)
	}

	broken := Desired{Stack: st, Conf: append(nginxConf(port, "v2", rb), []byte("bogus_directive on;\n")...), Revision: rb}
	_, err = r.reloadNginx(ctx, broken)
	if err == nil || !strings.Contains(err.Error(), "rejected by nginx -t") || !strings.Contains(err.Error(), "bogus_directive") {
		t.Fatalf("reload of a broken config: err = %v, want a rejection naming the directive", err)
	}
	if b, _ := os.ReadFile(live); !bytes.Equal(b, d1.Conf) {
		t.Errorf("a rejected config replaced the live one:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(r.ConfigDir, stagedName)); !os.IsNotExist(err) {
		t.Errorf("rejected config left staged: %v", err)
	}
	if fe.signals != 0 || fe.reloads != 0 {
		t.Errorf("a config nginx -t rejected was signalled %d times and reloaded %d times", fe.signals, fe.reloads)
	}
	waitBody(t, url, "v1")

	// The reload is cut off after the rename: the old file comes back, and
	// nginx keeps reporting r1, so a plan for r2 still reloads.
	fe.fail = true
	if _, err := r.reloadNginx(ctx, d2); err == nil || !strings.Contains(err.Error(), "previous config restored") {
		t.Fatalf("reload cut off: err = %v", err)
	}
	fe.fail = false
	if b, _ := os.ReadFile(live); !bytes.Equal(b, d1.Conf) {
		t.Errorf("failed reload left the new file live:\n%s", b)
	}
	obs, err := r.Observe(ctx, d2)
	if err != nil {
		t.Fatal(err)
	}
	if obs.Loaded == nil || obs.Loaded.Revision != r1 {
		t.Fatalf("observed loaded %+v (%s), want r1", obs.Loaded, obs.LoadedErr)
	}
	// Even a daemon that died between the rename and the reload (file new,
	// nginx old) is caught: the loaded revision is read from nginx.
	if err := os.WriteFile(live, d2.Conf, 0o644); err != nil {
		t.Fatal(err)
	}
	if obs, _ = r.Observe(ctx, d2); obs.Loaded == nil || obs.Loaded.Revision != r1 {
		t.Fatalf("file renamed, not reloaded: observed %+v, want r1", obs.Loaded)
	}

	fe.signals, fe.reloads = 0, 0
	old, err := r.reloadNginx(ctx, d2)
	if err != nil {
		t.Fatalf("reload of a good config: %v", err)
	}
	// The image runs nginx as the container's main process: SIGHUP
	// reloads it, no `nginx -s reload` is needed.
	if fe.signals != 1 || fe.reloads != 0 {
		t.Errorf("good reload: %d signals and %d nginx -s reload, want 1 and 0", fe.signals, fe.reloads)
	}
	// The workers that served before the reload were listed, and exit once
	// they have no request left: the drain ends then, not at its bound.
	if len(old) == 0 {
		t.Fatal("no nginx workers listed before the reload")
	}
	r.Drain = 20 * time.Second
	start := time.Now()
	if err := r.drain(ctx, st.Nginx.Name, old, r.Drain); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the drain of an idle nginx took %s: the old workers were not seen to exit", took)
	}
	ps, err := eng.Top(ctx, st.Nginx.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if slices.Contains(old, p.PID) {
			t.Errorf("old worker %d (%s) still runs after the drain", p.PID, p.Cmd)
		}
	}
	waitBody(t, url, "v2")
	if l, err := r.nginxStatus(ctx); err != nil || l.Revision != r2 {
		t.Fatalf("loaded after reload: %+v, %v", l, err)
	}

	// A fresh start with a broken config leaves nothing behind.
	if err := eng.Remove(ctx, st.Nginx.Name, 0); err != nil {
		t.Fatal(err)
	}
	r.LoadTimeout = 5 * time.Second
	if err := r.startNginx(ctx, broken); err == nil {
		t.Fatal("start with a broken config succeeded")
	}
	cs, err := eng.ListContainers(ctx, project, st.Network.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 0 {
		t.Errorf("containers left after a rejected start: %v", cs)
	}
}

func waitBody(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == want {
				return
			}
			last = string(b)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: last answer %q, want %q", url, last, want)
}
