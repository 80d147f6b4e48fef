package reconciler

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
// body on every request.
func nginxConf(port int, body string) []byte {
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
}
`, port, body))
}

// A config that fails `nginx -t` never replaces the one that serves, and a
// good one is swapped in by a graceful reload, in the real nginx image.
func TestNginxInstallAndReload(t *testing.T) {
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
	desired := stack.Stack{
		Project: project,
		Network: manifest.Network{Name: project + "-net", DriverType: "bridge"},
		Nginx:   stack.Nginx{Name: project + "-nginx", Image: images.NginxImage, Port: port},
	}
	if err := eng.CreateNetwork(ctx, desired.Network.Name, "bridge", stack.NetworkLabels(project)); err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{Engine: eng, ConfigDir: t.TempDir(), Log: zap.NewNop()}
	live := filepath.Join(r.ConfigDir, confName)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)

	if err := r.startNginx(ctx, desired, nginxConf(port, "v1")); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	waitBody(t, url, "v1")

	broken := append(nginxConf(port, "v2"), []byte("bogus_directive on;\n")...)
	err = r.reloadNginx(ctx, desired, broken)
	if err == nil || !strings.Contains(err.Error(), "rejected by nginx -t") || !strings.Contains(err.Error(), "bogus_directive") {
		t.Fatalf("reload of a broken config: err = %v, want a rejection naming the directive", err)
	}
	if b, _ := os.ReadFile(live); !bytes.Equal(b, nginxConf(port, "v1")) {
		t.Errorf("a rejected config replaced the live one:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(r.ConfigDir, nginxCheck)); !os.IsNotExist(err) {
		t.Errorf("rejected config left staged: %v", err)
	}
	waitBody(t, url, "v1")

	if err := r.reloadNginx(ctx, desired, nginxConf(port, "v2")); err != nil {
		t.Fatalf("reload of a good config: %v", err)
	}
	waitBody(t, url, "v2")

	// A fresh start with a broken config starts nothing.
	if err := eng.Remove(ctx, desired.Nginx.Name, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.startNginx(ctx, desired, broken); err == nil {
		t.Fatal("start with a broken config succeeded")
	}
	cs, err := eng.ListContainers(ctx, project, desired.Network.Name)
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
