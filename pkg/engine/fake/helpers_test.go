package fake_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/reconciler"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// The fake stands in for the real engine wherever the reconciler and the
// daemon use one.
var (
	_ reconciler.Engine = (*fake.Engine)(nil)
	_ daemonEngine      = (*fake.Engine)(nil)
	_ daemonEngine      = (*engine.Engine)(nil)
)

// daemonEngine is what pkg/controller calls besides reconciler.Engine.
type daemonEngine interface {
	Ping(ctx context.Context) error
	Watch(ctx context.Context, project string) (<-chan engine.Event, <-chan error)
	FollowLogs(ctx context.Context, id string, since time.Time) (io.ReadCloser, error)
	Close() error
}

const (
	project    = "demo"
	netName    = "demo-net"
	appImage   = "swift-deploy-1-node:v1"
	nginxImage = "nginx:1.27"
	goodConf   = "events {}\nhttp { server { listen 8080; } }\n"
	badConf    = "events {}\ninvalid on;\n"
)

var bg = context.Background()

// fixedClock is a clock that does not move unless told.
var epoch = time.Date(2025, 3, 1, 12, 0, 0, 500_000_000, time.UTC)

// newFake returns an engine with the app and nginx images present and the
// project network created, calls reset.
func newFake(t *testing.T, opts ...fake.Option) *fake.Engine {
	t.Helper()
	f := fake.New(append([]fake.Option{fake.WithClock(func() time.Time { return epoch })}, opts...)...)
	t.Cleanup(func() { f.Close() })
	f.AddImage(appImage, nginxImage)
	if err := f.CreateNetwork(bg, netName, "bridge", stack.NetworkLabels(project)); err != nil {
		t.Fatal(err)
	}
	f.ResetCalls()
	return f
}

func appSpec(name, track string, replica int) engine.Spec {
	a := stack.App{Name: name, Image: appImage, Track: track, Replica: replica, Hash: "hash-" + track}
	return engine.Spec{Name: name, Image: appImage, Labels: a.Labels(project), Network: netName, Restart: true}
}

// nginxSpec is the front door as the reconciler runs it, its config
// directory bind-mounted from dir.
func nginxSpec(dir string, port int) engine.Spec {
	n := stack.Nginx{Name: project + "-nginx", Image: nginxImage, Port: port, Hash: "nginx-hash"}
	return engine.Spec{
		Name:     n.Name,
		Image:    n.Image,
		Cmd:      []string{"nginx", "-c", stack.ConfigDir + "/nginx.conf", "-g", "daemon off;"},
		Labels:   n.Labels(project),
		Network:  netName,
		HostPort: port,
		Binds:    []engine.Bind{{Source: dir, Target: stack.ConfigDir, ReadOnly: true}},
		Restart:  true,
	}
}

// checkSpec is the throwaway `nginx -t` container of startNginx.
func checkSpec(dir, file string) engine.Spec {
	s := nginxSpec(dir, 0)
	s.Name = project + "-nginx-check"
	s.Cmd = []string{"nginx", "-t", "-q", "-c", stack.ConfigDir + "/" + file}
	s.Labels = map[string]string{stack.LabelProject: project, stack.LabelRole: "check"}
	s.Restart = false
	return s
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRun(t *testing.T, f *fake.Engine, s engine.Spec) string {
	t.Helper()
	id, err := f.Run(bg, s)
	if err != nil {
		t.Fatalf("run %s: %v", s.Name, err)
	}
	return id
}

func mustGet(t *testing.T, f *fake.Engine, name string) fake.ContainerInfo {
	t.Helper()
	c, ok := f.Get(name)
	if !ok {
		t.Fatalf("container %s not found", name)
	}
	return c
}

// freePort returns a TCP port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// collect reads events until n arrived or a second passed; with n = 0 it
// waits 50ms for events that should not come.
func collect(t *testing.T, evs <-chan engine.Event, n int) []engine.Event {
	t.Helper()
	var out []engine.Event
	wait := time.Second
	if n == 0 {
		n, wait = 1, 50*time.Millisecond
	}
	timeout := time.After(wait)
	for len(out) < n {
		select {
		case ev, ok := <-evs:
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-timeout:
			return out
		}
	}
	return out
}

func actions(evs []engine.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Name+" "+e.Action)
	}
	return out
}

func equal[T comparable](a, b []T) bool { return slices.Equal(a, b) }
