package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
