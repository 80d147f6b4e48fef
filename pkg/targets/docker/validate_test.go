package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// The candidate's upstreams point at loopback addresses, one per
// container, so that nginx -t inside the running nginx does not fail on
// the names of containers the candidate has yet to start; nothing else of
// the configuration changes.
func TestLoopbackUpstreams(t *testing.T) {
	apps := []stack.App{{Name: "demo-app-1", Port: 3000}, {Name: "demo-app-10", Port: 3000}, {Name: "demo-app-canary-1", Port: 3001}}
	conf := "upstream app_stable {\n server demo-app-1:3000 max_fails=3;\n server demo-app-10:3000 max_fails=3;\n}\n" +
		"upstream app_canary {\n server demo-app-canary-1:3001 max_fails=3;\n}\n# demo-app-1:3000 named in a comment\n"
	got := string(loopbackUpstreams([]byte(conf), apps))
	for _, want := range []string{"server 127.0.0.1:3000 ", "server 127.0.0.2:3000 ", "server 127.0.0.3:3001 ", "# demo-app-1:3000 named"} {
		if !strings.Contains(got, want) {
			t.Errorf("candidate lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "server demo-app") {
		t.Errorf("candidate still names a container as an upstream server:\n%s", got)
	}

	// Another layout of the same directives: no parameters (the ; right
	// after the address), a tab, extra spaces. Each is still rewritten; a
	// server block and a comment are not.
	conf = "upstream app_stable {\n\tserver\tdemo-app-1:3000;\n  server   demo-app-10:3000\tmax_fails=3;\n}\n" +
		"upstream app_canary {\n server demo-app-canary-1:3001;\n}\nserver {\n    # server demo-app-1:3000\n}\n"
	got = string(loopbackUpstreams([]byte(conf), apps))
	for _, want := range []string{"\tserver\t127.0.0.1:3000;\n", "  server   127.0.0.2:3000\tmax_fails=3;", " server 127.0.0.3:3001;", "server {\n", "# server demo-app-1:3000"} {
		if !strings.Contains(got, want) {
			t.Errorf("candidate lacks %q:\n%s", want, got)
		}
	}
}

// A candidate file a crashed validate left in the configuration directory
// is removed by a later validate once it is old; a fresh one (another
// validate's, under way) and nginx's own files are not.
func TestStaleCandidatesRemoved(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, age time.Duration) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leftover := write(validatePrefix+"aaaa.conf", time.Hour)
	fresh := write(validatePrefix+"bbbb.conf", time.Second)
	live := write("nginx.conf", time.Hour)
	(&Target{}).removeStaleCandidates(dir)
	for p, want := range map[string]bool{leftover: false, fresh: true, live: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists=%v after the sweep, want %v", filepath.Base(p), err == nil, want)
		}
	}
}

// The loopback rewrite on real renderings: every golden manifest of the
// renderer (several services, several canaries, a front door, paused and
// stopped traffic...) renders an nginx config in which, once rewritten, no
// upstream server names an app container, and every server line that did
// names a loopback address instead.
func TestLoopbackUpstreamsOfGoldenConfigs(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "..", "render", "testdata", "*", "manifest.yaml"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden manifests found: %v", err)
	}
	named := 0
	for _, path := range dirs {
		name := filepath.Base(filepath.Dir(path))
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Parse(data, "swiftdeploy")
			if err != nil {
				t.Fatalf("parse %s: %v", path, err)
			}
			if name == "services_canaries" {
				// As the renderer's golden case: a second canary.
				m.Named["web"].Canary = &manifest.Canary{Image: "shop-web:1.5.0", Weight: 10, Replicas: 1, Match: &manifest.Match{Cookie: "web_canary", Value: "yes"}}
			}
			s := stack.FromManifest(m, stack.Options{})
			conf, err := render.Nginx(s)
			if err != nil {
				t.Fatal(err)
			}
			apps := s.Apps()
			serverOf := func(conf string) (byApp, loopback int) {
				for _, line := range strings.Split(conf, "\n") {
					f := strings.Fields(strings.TrimSpace(line))
					if len(f) < 2 || f[0] != "server" {
						continue
					}
					addr := strings.TrimSuffix(f[1], ";")
					if strings.HasPrefix(addr, "127.") {
						loopback++
					}
					for _, a := range apps {
						if strings.HasPrefix(addr, a.Name+":") {
							byApp++
						}
					}
				}
				return byApp, loopback
			}
			before, _ := serverOf(string(conf))
			named += before
			got := string(loopbackUpstreams(conf, apps))
			after, loopback := serverOf(got)
			if after != 0 {
				t.Errorf("%d upstream server lines still name an app container after the rewrite:\n%s", after, got)
			}
			if loopback != before {
				t.Errorf("%d loopback server lines, want the %d that named app containers", loopback, before)
			}
		})
	}
	if named == 0 {
		t.Error("no golden config names an app container as an upstream server: the test checks nothing")
	}
}
