package fake_test

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)
var ipOnNet = regexp.MustCompile(`^10\.\d+\.\d+\.\d+$`)

func TestRunAndList(t *testing.T) {
	f := newFake(t)
	id1 := mustRun(t, f, appSpec("demo-stable-2", stack.TrackStable, 2))
	id2 := mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	canary := appSpec("demo-canary-1", stack.TrackCanary, 1)
	canary.Image = "swift-deploy-1-node:v2"
	canary.Labels[stack.LabelImage] = canary.Image
	f.AddImage(canary.Image)
	mustRun(t, f, canary)
	// Neither a container of another project nor an unlabelled one is
	// listed.
	other := appSpec("other-stable-1", stack.TrackStable, 1)
	other.Labels[stack.LabelProject] = "other"
	mustRun(t, f, other)
	mustRun(t, f, engine.Spec{Name: "foreign", Image: appImage})

	for _, id := range []string{id1, id2} {
		if !hexID.MatchString(id) {
			t.Errorf("ID %q is not 64 hex digits", id)
		}
	}
	cs, err := f.ListContainers(bg, project, netName)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if want := []string{"demo-canary-1", "demo-stable-1", "demo-stable-2"}; !equal(names, want) {
		t.Fatalf("listed %v, want %v (sorted by name)", names, want)
	}
	c := cs[2]
	want := engine.Container{
		ID: id1, Name: "demo-stable-2", Image: appImage, Role: stack.RoleApp, Track: stack.TrackStable,
		Replica: 2, Hash: "hash-stable", State: "running", IP: c.IP, Created: time.Unix(epoch.Unix(), 0),
	}
	if c != want {
		t.Errorf("listed\n%+v\nwant\n%+v", c, want)
	}
	if !c.Running() || !c.Created.Equal(epoch.Truncate(time.Second)) {
		t.Errorf("running %v, created %v", c.Running(), c.Created)
	}
	if cs[0].Track != stack.TrackCanary || cs[0].Image != "swift-deploy-1-node:v2" {
		t.Errorf("canary listed as %+v", cs[0])
	}
	seen := map[string]bool{}
	for _, c := range cs {
		if !ipOnNet.MatchString(c.IP) || seen[c.IP] {
			t.Errorf("IP %q of %s: want a distinct 10.x.y.z", c.IP, c.Name)
		}
		seen[c.IP] = true
	}

	// IPs are reported on the named network only.
	cs, err = f.ListContainers(bg, project, "bridge")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.IP != "" {
			t.Errorf("%s has IP %s on a network it is not attached to", c.Name, c.IP)
		}
	}
	if cs, _ := f.ListContainers(bg, "nobody", netName); cs == nil || len(cs) != 0 {
		t.Errorf("unknown project listed %v, want an empty list", cs)
	}
}

func TestRunFailsLikeDocker(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		spec  func(engine.Spec) engine.Spec
		class func(error) bool
		msg   string
	}{
		{"duplicate name", func(s engine.Spec) engine.Spec { return s }, errdefs.IsConflict, `The container name "/demo-stable-1" is already in use`},
		{"missing image", func(s engine.Spec) engine.Spec { s.Name = "xx"; s.Image = "nope:1"; return s }, errdefs.IsNotFound, "No such image: nope:1"},
		{"invalid image", func(s engine.Spec) engine.Spec { s.Name = "xx"; s.Image = "UPPER"; return s }, errdefs.IsInvalidArgument, "invalid reference format"},
		{"missing network", func(s engine.Spec) engine.Spec { s.Name = "xx"; s.Network = "nonet"; return s }, errdefs.IsNotFound, "network nonet not found"},
		{"invalid name", func(s engine.Spec) engine.Spec { s.Name = "bad name"; return s }, errdefs.IsInvalidArgument, "Invalid container name"},
		{"missing bind source", func(s engine.Spec) engine.Spec {
			s.Name = "xx"
			s.Binds = []engine.Bind{{Source: dir + "/missing", Target: "/etc/x"}}
			return s
		}, errdefs.IsInvalidArgument, "bind source path does not exist"},
		{"relative bind source", func(s engine.Spec) engine.Spec {
			s.Name = "xx"
			s.Binds = []engine.Bind{{Source: "conf", Target: "/etc/x"}}
			return s
		}, errdefs.IsInvalidArgument, "must be absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
			w, _ := f.Watch(bg, project)
			s := tc.spec(appSpec("demo-stable-1", stack.TrackStable, 1))
			id, err := f.Run(bg, s)
			if err == nil || id != "" {
				t.Fatalf("Run = %q, %v; want an error", id, err)
			}
			if !tc.class(err) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q: wrong class or message, want %q", err, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "create container "+s.Name+": Error response from daemon: ") {
				t.Errorf("error %q is not wrapped like engine.Run's", err)
			}
			if got := fake.Names(f.Snapshot()); !equal(got, []string{"demo-stable-1"}) {
				t.Errorf("containers after a failed Run: %v", got)
			}
			if evs := collect(t, w, 0); len(evs) != 0 {
				t.Errorf("a failed create emitted %v", actions(evs))
			}
		})
	}
}

func TestRemove(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ref     func(id string) string
		grace   time.Duration
		kill    bool // crash it first
		actions []string
	}{
		{"by ID, with grace", func(id string) string { return id }, 10 * time.Second, false, []string{"kill", "die", "stop", "destroy"}},
		{"by name, forced", func(string) string { return "demo-stable-1" }, 0, false, []string{"kill", "die", "destroy"}},
		{"by /name", func(string) string { return "/demo-stable-1" }, 0, false, []string{"kill", "die", "destroy"}},
		{"by ID prefix", func(id string) string { return id[:12] }, 0, false, []string{"kill", "die", "destroy"}},
		{"exited", func(string) string { return "demo-stable-1" }, 10 * time.Second, true, []string{"destroy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			id := mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
			if tc.kill {
				if err := f.Kill(id); err != nil {
					t.Fatal(err)
				}
			}
			evs, _ := f.Watch(bg, project)
			if err := f.Remove(bg, tc.ref(id), tc.grace); err != nil {
				t.Fatal(err)
			}
			if _, ok := f.Get(id); ok {
				t.Error("container still there")
			}
			var got []string
			for _, e := range collect(t, evs, len(tc.actions)) {
				got = append(got, e.Action)
			}
			if !equal(got, tc.actions) {
				t.Errorf("events %v, want %v", got, tc.actions)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		f := newFake(t)
		for _, ref := range []string{"nope", strings.Repeat("a", 64), ""} {
			if err := f.Remove(bg, ref, time.Second); err != nil {
				t.Errorf("Remove(%q) = %v, want nil", ref, err)
			}
		}
	})
	t.Run("name reusable", func(t *testing.T) {
		f := newFake(t)
		first := mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
		if err := f.Remove(bg, "demo-stable-1", 0); err != nil {
			t.Fatal(err)
		}
		if second := mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1)); second == first {
			t.Error("a new container reused the old ID")
		}
	})
}

func TestKill(t *testing.T) {
	f := newFake(t)
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	evs, _ := f.Watch(bg, project)
	if err := f.Kill("demo-stable-1"); err != nil {
		t.Fatal(err)
	}
	c := mustGet(t, f, "demo-stable-1")
	if c.State != fake.StateExited || c.IP != "" || c.ExitCode != 137 || c.Healthy {
		t.Errorf("after Kill: state %s, IP %q, exit %d, healthy %v", c.State, c.IP, c.ExitCode, c.Healthy)
	}
	if got := actions(collect(t, evs, 1)); !equal(got, []string{"demo-stable-1 die"}) {
		t.Errorf("events %v", got)
	}
	if err := f.Kill("demo-stable-1"); !errdefs.IsConflict(err) {
		t.Errorf("Kill of an exited container = %v, want a conflict", err)
	}
	if err := f.Kill("nope"); !errdefs.IsNotFound(err) {
		t.Errorf("Kill of a missing container = %v, want not found", err)
	}
	// Still listed, as exited, for the reconciler to heal.
	cs, _ := f.ListContainers(bg, project, netName)
	if len(cs) != 1 || cs[0].State != "exited" || cs[0].IP != "" {
		t.Errorf("listed %+v", cs)
	}
}

func TestExitOnStart(t *testing.T) {
	for _, key := range []string{"demo-stable-1", appImage, "docker.io/library/" + appImage} {
		t.Run(key, func(t *testing.T) {
			f := newFake(t)
			f.ExitOnStart(key)
			evs, _ := f.Watch(bg, project)
			id, err := f.Run(bg, appSpec("demo-stable-1", stack.TrackStable, 1))
			if err != nil || id == "" {
				t.Fatalf("Run = %q, %v: a process exiting after the start is no Run error", id, err)
			}
			c := mustGet(t, f, id)
			if c.State != fake.StateExited || c.ExitCode != 1 {
				t.Errorf("state %s exit %d", c.State, c.ExitCode)
			}
			want := []string{"demo-stable-1 create", "demo-stable-1 start", "demo-stable-1 die"}
			if got := actions(collect(t, evs, 3)); !equal(got, want) {
				t.Errorf("events %v, want %v", got, want)
			}
			f.Clear()
			mustRun(t, f, appSpec("demo-stable-2", stack.TrackStable, 2))
			if c := mustGet(t, f, "demo-stable-2"); c.State != fake.StateRunning {
				t.Errorf("after Clear: %s", c.State)
			}
		})
	}
}

func TestPortConflict(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	writeFile(t, dir, "nginx.conf", goodConf)
	first := nginxSpec(dir, 8080)
	mustRun(t, f, first)
	evs, _ := f.Watch(bg, project)
	second := nginxSpec(dir, 8080)
	second.Name = "demo-nginx-2"
	_, err := f.Run(bg, second)
	if err == nil || !strings.Contains(err.Error(), "port is already allocated") || !strings.HasPrefix(err.Error(), "start container demo-nginx-2: ") {
		t.Fatalf("Run on a taken port: %v", err)
	}
	if _, ok := f.Get("demo-nginx-2"); ok {
		t.Error("a container that failed to start was left behind")
	}
	want := []string{"demo-nginx-2 create", "demo-nginx-2 destroy"}
	if got := actions(collect(t, evs, 2)); !equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	// An exited container holds no port.
	if err := f.Kill(first.Name); err != nil {
		t.Fatal(err)
	}
	mustRun(t, f, second)
}

func TestWithHostPorts(t *testing.T) {
	f := newFake(t, fake.WithHostPorts())
	dir := t.TempDir()
	writeFile(t, dir, "nginx.conf", goodConf)
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	mustRun(t, f, nginxSpec(dir, port))
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("published port not listening: %v", err)
	}
	c.Close()
	if err := f.Remove(bg, project+"-nginx", 0); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("port still open after Remove")
	}

	// A port the host already uses fails the start, as with Docker.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = f.Run(bg, nginxSpec(dir, ln.Addr().(*net.TCPAddr).Port))
	if err == nil || !strings.Contains(err.Error(), "Error starting userland proxy") {
		t.Errorf("Run on a host-taken port: %v", err)
	}
	if len(f.Snapshot()) != 0 {
		t.Errorf("left %v", fake.Names(f.Snapshot()))
	}
}

func TestAddContainer(t *testing.T) {
	for _, tc := range []struct {
		state  string
		ip     bool
		events []string
	}{
		{fake.StateCreated, false, []string{"create"}},
		{fake.StateRunning, true, []string{"create", "start"}},
		{fake.StateExited, false, []string{"create", "start", "die"}},
		{fake.StateDead, false, []string{"create"}},
	} {
		t.Run(tc.state, func(t *testing.T) {
			f := newFake(t)
			evs, _ := f.Watch(bg, project)
			s := appSpec("demo-stable-1", stack.TrackStable, 1)
			s.Image = "gone:1" // a container can outlive its image
			id, err := f.AddContainer(s, tc.state)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Calls()) != 1 || f.Calls()[0].Op != fake.OpWatch {
				t.Errorf("AddContainer recorded calls: %v", f.Calls())
			}
			cs, _ := f.ListContainers(bg, project, netName)
			if len(cs) != 1 || cs[0].ID != id || cs[0].State != tc.state || (cs[0].IP != "") != tc.ip {
				t.Errorf("listed %+v", cs)
			}
			var got []string
			for _, e := range collect(t, evs, len(tc.events)) {
				got = append(got, e.Action)
			}
			if !equal(got, tc.events) {
				t.Errorf("events %v, want %v", got, tc.events)
			}
			// The reconciler removes such a leftover by ID.
			if err := f.Remove(bg, id, 0); err != nil || len(f.Snapshot()) != 0 {
				t.Errorf("Remove: %v, left %v", err, fake.Names(f.Snapshot()))
			}
		})
	}
	f := newFake(t)
	if _, err := f.AddContainer(appSpec("x1", stack.TrackStable, 1), "paused"); err == nil || len(f.Snapshot()) != 0 {
		t.Errorf("unsupported state: %v, left %v", err, fake.Names(f.Snapshot()))
	}
	if _, err := f.AddContainer(appSpec("x1", stack.TrackStable, 1), fake.StateRunning); err != nil {
		t.Fatal(err)
	}
	if _, err := f.AddContainer(appSpec("x1", stack.TrackStable, 1), fake.StateRunning); !errdefs.IsConflict(err) {
		t.Errorf("duplicate name: %v", err)
	}
}

func TestDeterministicIDsAndIPs(t *testing.T) {
	run := func(seed uint64) (ids, ips []string) {
		f := fake.New(fake.WithSeed(seed))
		defer f.Close()
		f.AddImage(appImage)
		if err := f.CreateNetwork(bg, netName, "", stack.NetworkLabels(project)); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 3; i++ {
			id, err := f.Run(bg, appSpec("demo-stable-"+strconv.Itoa(i), stack.TrackStable, i))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
			ips = append(ips, mustGet(t, f, id).IP)
		}
		return ids, ips
	}
	a, aIPs := run(7)
	b, bIPs := run(7)
	c, _ := run(8)
	if !equal(a, b) || !equal(aIPs, bIPs) {
		t.Errorf("same seed, different IDs or IPs: %v %v / %v %v", a, aIPs, b, bIPs)
	}
	if equal(a, c) {
		t.Error("different seeds gave the same IDs")
	}
	if want := []string{"10.1.0.2", "10.1.0.3", "10.1.0.4"}; !equal(aIPs, want) {
		t.Errorf("IPs %v, want %v", aIPs, want)
	}
}

func TestIPsAreNotReused(t *testing.T) {
	f := newFake(t)
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	old := mustGet(t, f, "demo-stable-1").IP
	if err := f.Remove(bg, "demo-stable-1", 0); err != nil {
		t.Fatal(err)
	}
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	if ip := mustGet(t, f, "demo-stable-1").IP; ip == old || ip == "" {
		t.Errorf("new container got IP %q (old %q)", ip, old)
	}
}

func TestRunOnce(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "good.conf", goodConf)
	writeFile(t, dir, "bad.conf", badConf)
	for _, tc := range []struct {
		name string
		file string
		code int
		out  string
	}{
		{"accepted", "good.conf", 0, ""},
		{"rejected", "bad.conf", 1, "nginx: [emerg] unknown directive \"invalid\" in /etc/swiftdeploy/bad.conf:2\nnginx: configuration file /etc/swiftdeploy/bad.conf test failed\n"},
		{"missing file", "none.conf", 1, "open() \"/etc/swiftdeploy/none.conf\" failed (2: No such file or directory)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			evs, _ := f.Watch(bg, project)
			code, out, err := f.RunOnce(bg, checkSpec(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(out, tc.out) || (tc.out == "" && out != "") {
				t.Errorf("RunOnce = %d, %q; want %d, %q", code, out, tc.code, tc.out)
			}
			if len(f.Snapshot()) != 0 {
				t.Errorf("left %v", fake.Names(f.Snapshot()))
			}
			got := collect(t, evs, 4)
			if a := actions(got); !equal(a, []string{"demo-nginx-check create", "demo-nginx-check start", "demo-nginx-check die", "demo-nginx-check destroy"}) {
				t.Errorf("events %v", a)
			}
			for _, e := range got {
				if e.Role != "check" {
					t.Errorf("event %+v: role %q", e, e.Role)
				}
			}
		})
	}
	t.Run("name taken", func(t *testing.T) {
		f := newFake(t)
		if _, err := f.AddContainer(checkSpec(dir, "good.conf"), fake.StateCreated); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.RunOnce(bg, checkSpec(dir, "good.conf")); !errdefs.IsConflict(err) {
			t.Errorf("RunOnce over a leftover: %v, want a conflict", err)
		}
	})
	t.Run("a process that does not exit", func(t *testing.T) {
		f := newFake(t)
		ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
		defer cancel()
		code, _, err := f.RunOnce(ctx, engine.Spec{Name: "demo-once", Image: appImage})
		if code != -1 || !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "wait for container demo-once: ") {
			t.Errorf("RunOnce = %d, %v", code, err)
		}
		if len(f.Snapshot()) != 0 {
			t.Errorf("left %v", fake.Names(f.Snapshot()))
		}
	})
	t.Run("killed while waited for", func(t *testing.T) {
		f := newFake(t)
		go func() {
			for {
				if f.Kill("demo-once") == nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		code, out, err := f.RunOnce(bg, engine.Spec{Name: "demo-once", Image: appImage})
		if code != 137 || out != "" || err != nil {
			t.Errorf("RunOnce = %d, %q, %v", code, out, err)
		}
		if len(f.Snapshot()) != 0 {
			t.Errorf("left %v", fake.Names(f.Snapshot()))
		}
	})
	t.Run("missing image", func(t *testing.T) {
		f := newFake(t)
		if code, _, err := f.RunOnce(bg, engine.Spec{Name: "xx", Image: "nope"}); code != -1 || !errdefs.IsNotFound(err) {
			t.Errorf("RunOnce = %d, %v", code, err)
		}
	})
}

func TestSnapshotHelpers(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	writeFile(t, dir, "nginx.conf", goodConf)
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	mustRun(t, f, appSpec("demo-stable-2", stack.TrackStable, 2))
	c := appSpec("demo-canary-1", stack.TrackCanary, 1)
	c.Image = "docker.io/library/swift-deploy-1-node:v2"
	f.AddImage(c.Image)
	mustRun(t, f, c)
	mustRun(t, f, nginxSpec(dir, 8080))

	for _, tc := range []struct {
		name string
		got  []fake.ContainerInfo
		want []string
	}{
		{"all", f.Snapshot(), []string{"demo-canary-1", "demo-nginx", "demo-stable-1", "demo-stable-2"}},
		{"apps", f.ByRole(stack.RoleApp), []string{"demo-canary-1", "demo-stable-1", "demo-stable-2"}},
		{"nginx", f.ByRole(stack.RoleNginx), []string{"demo-nginx"}},
		{"stable", f.ByTrack(stack.TrackStable), []string{"demo-stable-1", "demo-stable-2"}},
		{"v2", f.ByImage("swift-deploy-1-node:v2"), []string{"demo-canary-1"}},
		{"nginx image", f.ByImage("docker.io/library/nginx:1.27"), []string{"demo-nginx"}},
		{"running", f.Filter(func(c fake.ContainerInfo) bool { return c.Running() }), []string{"demo-canary-1", "demo-nginx", "demo-stable-1", "demo-stable-2"}},
	} {
		if got := fake.Names(tc.got); !equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	n := mustGet(t, f, "demo-nginx")
	if n.Network != netName || n.Spec.HostPort != 8080 || n.Labels[stack.LabelRole] != stack.RoleNginx || string(n.Loaded) != goodConf || !n.Healthy {
		t.Errorf("nginx info %+v", n)
	}
	// Snapshots are copies.
	n.Labels[stack.LabelRole] = "changed"
	n.Spec.Cmd[0] = "changed"
	if again := mustGet(t, f, "demo-nginx"); again.Role != stack.RoleNginx || again.Spec.Cmd[0] != "nginx" {
		t.Error("a snapshot aliases the fake's state")
	}
}

func TestSpecIsCopied(t *testing.T) {
	f := newFake(t)
	s := appSpec("demo-stable-1", stack.TrackStable, 1)
	mustRun(t, f, s)
	s.Labels[stack.LabelTrack] = "mutated"
	if c := mustGet(t, f, "demo-stable-1"); c.Track != stack.TrackStable {
		t.Error("the fake keeps the caller's label map")
	}
}
