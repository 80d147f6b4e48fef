package fake_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

var (
	testStaged = []string{"nginx", "-t", "-q", "-c", stack.ConfigDir + "/nginx.conf.next"}
	reload     = []string{"nginx", "-s", "reload", "-c", stack.ConfigDir + "/nginx.conf"}
)

func TestNginxLoadsItsConfigAtStart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		live   *string // nil: no file
		runs   bool
		loaded string
		logs   string
	}{
		{"valid", ptr(goodConf), true, goodConf, ""},
		{"invalid", ptr(badConf), false, "", "nginx: [emerg] unknown directive \"invalid\" in /etc/swiftdeploy/nginx.conf:2\n"},
		{"missing", nil, false, "", "nginx: [emerg] open() \"/etc/swiftdeploy/nginx.conf\" failed (2: No such file or directory)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			dir := t.TempDir()
			if tc.live != nil {
				writeFile(t, dir, "nginx.conf", *tc.live)
			}
			evs, _ := f.Watch(bg, project)
			id, err := f.Run(bg, nginxSpec(dir, 8080))
			if err != nil {
				t.Fatalf("Run: %v (nginx exiting is not a start failure)", err)
			}
			c := mustGet(t, f, id)
			if c.Running() != tc.runs || string(f.Loaded(id)) != tc.loaded || c.Logs != tc.logs {
				t.Errorf("running %v, loaded %q, logs %q", c.Running(), f.Loaded(id), c.Logs)
			}
			n := 2
			if !tc.runs {
				n = 3
			}
			got := collect(t, evs, n)
			if !tc.runs && (len(got) != 3 || got[2].Action != "die" || got[2].Role != stack.RoleNginx) {
				t.Errorf("events %v: want a die of the nginx", actions(got))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestNginxTestInTheRunningContainer(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	writeFile(t, dir, "nginx.conf", goodConf)
	mustRun(t, f, nginxSpec(dir, 8080))
	for _, tc := range []struct {
		name   string
		staged string
		cmd    []string
		code   int
		out    string
	}{
		{"quiet ok", goodConf, testStaged, 0, ""},
		{"loud ok", goodConf, []string{"nginx", "-t", "-c", "/etc/swiftdeploy/nginx.conf.next"}, 0,
			"nginx: the configuration file /etc/swiftdeploy/nginx.conf.next syntax is ok\nnginx: configuration file /etc/swiftdeploy/nginx.conf.next test is successful\n"},
		{"rejected", "events {}\n\n\n  invalid_directive;\n", testStaged, 1,
			"nginx: [emerg] unknown directive \"invalid\" in /etc/swiftdeploy/nginx.conf.next:4\nnginx: configuration file /etc/swiftdeploy/nginx.conf.next test failed\n"},
		{"not mounted", goodConf, []string{"nginx", "-t", "-q"}, 1,
			"nginx: [emerg] open() \"/etc/nginx/nginx.conf\" failed (2: No such file or directory)\nnginx: configuration file /etc/nginx/nginx.conf test failed\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, dir, "nginx.conf.next", tc.staged)
			code, out, err := f.Exec(bg, project+"-nginx", tc.cmd)
			if err != nil || code != tc.code || out != tc.out {
				t.Errorf("Exec = %d, %q, %v; want %d, %q", code, out, err, tc.code, tc.out)
			}
			if string(f.Loaded(project+"-nginx")) != goodConf {
				t.Error("nginx -t changed what nginx serves")
			}
		})
	}
}

func TestNginxReload(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	writeFile(t, dir, "nginx.conf", goodConf)
	name := project + "-nginx"
	mustRun(t, f, nginxSpec(dir, 8080))
	v2 := goodConf + "# v2\n"

	steps := []struct {
		name   string
		live   string
		setup  func()
		code   int
		out    string // substring
		loaded string
	}{
		{"valid", v2, nil, 0, "[notice] 1#1: signal process started", v2},
		{"invalid", badConf, nil, 1, "nginx: [emerg] unknown directive \"invalid\"", v2},
		{"forced failure", goodConf, func() { f.FailReload(errors.New("reload refused")) }, 1, "nginx: [emerg] reload refused", v2},
		{"still forced", goodConf, nil, 1, "reload refused", v2},
		{"failure lifted", goodConf, func() { f.FailReload(nil) }, 0, "signal process started", goodConf},
		{"forced then cleared", v2, func() { f.FailReload(errors.New("x")); f.Clear() }, 0, "", v2},
		{"custom validator", goodConf, func() {
			f.SetValidator(func(path string, conf []byte) error {
				if bytes.Contains(conf, []byte("listen 8080")) {
					return errors.New("no 8080 in " + path)
				}
				return nil
			})
		}, 1, "nginx: [emerg] no 8080 in /etc/swiftdeploy/nginx.conf", v2},
		{"default validator back", goodConf, func() { f.SetValidator(nil) }, 0, "", goodConf},
	}
	for _, s := range steps {
		writeFile(t, dir, "nginx.conf", s.live)
		if s.setup != nil {
			s.setup()
		}
		code, out, err := f.Exec(bg, name, reload)
		if err != nil || code != s.code || !strings.Contains(out, s.out) {
			t.Errorf("%s: reload = %d, %q, %v; want %d, %q", s.name, code, out, err, s.code, s.out)
		}
		if got := string(f.Loaded(name)); got != s.loaded {
			t.Errorf("%s: loaded %q, want %q", s.name, got, s.loaded)
		}
	}
	if c := mustGet(t, f, name); !c.Running() {
		t.Error("a failed reload stopped nginx")
	}
}

// The master re-reads the file it was started with; the signal process
// only checks the one given to -s reload.
func TestNginxReloadReadsTheMastersFile(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	writeFile(t, dir, "nginx.conf", goodConf)
	writeFile(t, dir, "other.conf", goodConf)
	mustRun(t, f, nginxSpec(dir, 8080))
	writeFile(t, dir, "nginx.conf", badConf)
	code, _, err := f.Exec(bg, "demo-nginx", []string{"nginx", "-s", "reload", "-c", "/etc/swiftdeploy/other.conf"})
	if err != nil || code != 0 {
		t.Fatalf("reload = %d, %v", code, err)
	}
	c := mustGet(t, f, "demo-nginx")
	if string(c.Loaded) != goodConf || !strings.Contains(c.Logs, "[emerg] unknown directive") {
		t.Errorf("loaded %q, logs %q: want the old config kept and the failure logged", c.Loaded, c.Logs)
	}
}

func TestNginxInstallFlow(t *testing.T) {
	// The reconciler's install: stage, nginx -t, rename, reload.
	f := newFake(t)
	dir := t.TempDir()
	writeFile(t, dir, "nginx.conf", goodConf)
	mustRun(t, f, nginxSpec(dir, 8080))
	next := goodConf + "# next\n"
	writeFile(t, dir, "nginx.conf.next", next)
	if code, out, err := f.Exec(bg, "demo-nginx", testStaged); code != 0 || err != nil {
		t.Fatalf("nginx -t = %d %q %v", code, out, err)
	}
	if err := os.Rename(filepath.Join(dir, "nginx.conf.next"), filepath.Join(dir, "nginx.conf")); err != nil {
		t.Fatal(err)
	}
	if string(f.Loaded("demo-nginx")) != goodConf {
		t.Error("the rename alone changed what nginx serves")
	}
	if code, _, err := f.Exec(bg, "demo-nginx", reload); code != 0 || err != nil {
		t.Fatalf("reload = %d %v", code, err)
	}
	if string(f.Loaded("demo-nginx")) != next {
		t.Errorf("loaded %q", f.Loaded("demo-nginx"))
	}
}

func TestExec(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	writeFile(t, dir, "nginx.conf", goodConf)
	mustRun(t, f, nginxSpec(dir, 8080))
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	exited := appSpec("demo-stable-2", stack.TrackStable, 2)
	mustRun(t, f, exited)
	if err := f.Kill(exited.Name); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		target string
		cmd    []string
		class  func(error) bool // nil: no error
		code   int
		out    string
	}{
		{"missing container", "nope", testStaged, errdefs.IsNotFound, -1, ""},
		{"exited container", exited.Name, testStaged, errdefs.IsConflict, -1, ""},
		{"empty command", "demo-nginx", nil, errdefs.IsInvalidArgument, -1, ""},
		{"not nginx", "demo-stable-1", testStaged, nil, 127, "not modelled"},
		{"other command", "demo-nginx", []string{"cat", "/etc/swiftdeploy/nginx.conf"}, nil, 127, "not modelled"},
		{"bad option", "demo-nginx", []string{"nginx", "-x"}, nil, 1, `nginx: invalid option: "x"`},
		{"bad signal", "demo-nginx", []string{"nginx", "-s", "bogus"}, nil, 1, `invalid option: "-s bogus"`},
		{"missing argument", "demo-nginx", []string{"nginx", "-c"}, nil, 1, `option "-c" requires an argument`},
		{"second master", "demo-nginx", []string{"nginx", "-c", "/etc/swiftdeploy/nginx.conf"}, nil, 1, "Address already in use"},
		{"version", "demo-nginx", []string{"nginx", "-v"}, nil, 0, "nginx version"},
		{"reopen", "demo-nginx", []string{"nginx", "-s", "reopen"}, nil, 0, "signal process started"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, err := f.Exec(bg, tc.target, tc.cmd)
			switch {
			case tc.class != nil && (err == nil || !tc.class(err) || !strings.HasPrefix(err.Error(), "exec ")):
				t.Errorf("error %v: wrong class or not wrapped like engine.Exec's", err)
			case tc.class == nil && err != nil:
				t.Errorf("error %v", err)
			}
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Errorf("Exec = %d, %q; want %d, %q", code, out, tc.code, tc.out)
			}
		})
	}

	t.Run("stop", func(t *testing.T) {
		evs, _ := f.Watch(bg, project)
		code, _, err := f.Exec(bg, "demo-nginx", []string{"nginx", "-s", "quit"})
		if code != 0 || err != nil {
			t.Fatalf("quit = %d, %v", code, err)
		}
		if c := mustGet(t, f, "demo-nginx"); c.Running() || f.Loaded("demo-nginx") != nil {
			t.Errorf("after nginx -s quit: %s, loaded %q", c.State, f.Loaded("demo-nginx"))
		}
		want := []string{
			"demo-nginx exec_create: nginx -s quit", "demo-nginx exec_start: nginx -s quit",
			"demo-nginx exec_die", "demo-nginx die",
		}
		if got := actions(collect(t, evs, 4)); !equal(got, want) {
			t.Errorf("events %v, want %v", got, want)
		}
	})
}

func TestNginxAsAOneOffProcess(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	s := nginxSpec(dir, 0)
	s.Name = "demo-nginx-validate"
	for _, tc := range []struct {
		cmd  []string
		code int
		out  string
	}{
		{[]string{"nginx", "-s", "reload"}, 1, "/run/nginx.pid"},
		{[]string{"nginx", "-V"}, 0, "nginx version"},
		{[]string{"/usr/sbin/nginx", "-q", "-bogus"}, 1, "invalid option"},
	} {
		s.Cmd = tc.cmd
		code, out, err := f.RunOnce(bg, s)
		if err != nil || code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("%v: RunOnce = %d, %q, %v", tc.cmd, code, out, err)
		}
	}
}

func TestDefaultValidator(t *testing.T) {
	if err := fake.DefaultValidator("/x", []byte(goodConf)); err != nil {
		t.Error(err)
	}
	err := fake.DefaultValidator("/x", []byte("a\nb\nc invalid\n"))
	if err == nil || err.Error() != `unknown directive "invalid" in /x:3` {
		t.Errorf("got %v", err)
	}
}

func TestLoadedOfOthers(t *testing.T) {
	f := newFake(t)
	mustRun(t, f, appSpec("demo-stable-1", stack.TrackStable, 1))
	if f.Loaded("demo-stable-1") != nil || f.Loaded("nope") != nil {
		t.Error("Loaded of a non-nginx container")
	}
}
