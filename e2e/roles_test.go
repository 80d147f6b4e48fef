package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/deploy/images"
	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/journal"
)

// A person in the read group, on the real daemon and with the real CLI:
// `swiftctl status` works, `swiftctl promote` is refused with the role it
// needs, the refusal is journaled with the caller, and nothing changes.
// The users and groups are real (useradd, groupadd), made for the test.
func TestReadGroupUserCanLookButNotPromote(t *testing.T) {
	requireUserAdmin(t)
	sfx := randomSuffix(t)
	sockGroup, readGroup := "sds"+sfx, "sdr"+sfx
	sockGID := addTestGroup(t, sockGroup)
	addTestGroup(t, readGroup)
	alice := addTestUser(t, "sda"+sfx, sockGroup, readGroup)

	// A directory alice can enter, holding the socket and a copy of the
	// CLI (the test's build directory is root's only).
	world, err := os.MkdirTemp("", "sdtest-roles-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(world) })
	if err := os.Chmod(world, 0o755); err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(world, "swiftctl")
	copyExecutable(t, filepath.Join(binDir, "swiftctl"), cli)

	e := newEnv(t)
	e.socket = filepath.Join(world, "sd.sock")
	e.api = api.NewClient(e.socket)
	// The daemon runs as root with the socket's group as its gid, as the
	// systemd unit does with Group=; alice's role comes from --read-group.
	e.daemonCred = &syscall.Credential{Uid: 0, Gid: uint32(sockGID), Groups: []uint32{}}
	e.daemonArgs = []string{"--read-group", readGroup}
	e.writeManifest(withCanary(e.manifest(images.AppImage, 2, ""), images.AppImageV2, 20))
	e.startDaemon()
	e.converged(map[string]int{images.AppImage: 2, images.AppImageV2: 1})

	fi, err := os.Stat(e.socket)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || st.Gid != uint32(sockGID) {
		t.Fatalf("socket mode %v gid %d, want 0660 owned by group %s (%d)", fi.Mode().Perm(), st.Gid, sockGroup, sockGID)
	}
	before := names(e.status().Containers)

	asUser := func(u testUser, args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli, append([]string{"--socket", e.socket}, args...)...)
		cmd.Dir = world
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + world}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("swiftctl %v as %s: %v", args, u.name, err)
		}
		return string(out), code
	}
	asAlice := func(args ...string) (string, int) { t.Helper(); return asUser(alice, args...) }

	out, code := asAlice("status")
	if code != 0 || !contains(out, "Mode: canary") {
		t.Errorf("swiftctl status as %s (read): exit %d, output:\n%s", alice.name, code, out)
	}
	// logs is a read: alice sees every replica's lines, each prefixed
	// with its container.
	out, code = asAlice("logs")
	for _, c := range e.status().Containers {
		if c.Role == "app" && (code != 0 || !contains(out, c.Name+" | ")) {
			t.Errorf("swiftctl logs as %s (read): exit %d, want 0 and lines of %s, output:\n%s", alice.name, code, c.Name, out)
		}
	}
	out, code = asAlice("promote")
	want := fmt.Sprintf("promote needs role operate; user %s (uid %d) has read", alice.name, alice.uid)
	if code != 1 || !contains(out, want) {
		t.Errorf("swiftctl promote as %s (read): exit %d, want 1 and %q, output:\n%s", alice.name, code, want, out)
	}

	// The refusal is in the journal, once, with who asked and what for.
	var denied []journal.Record
	e.waitFor(10*time.Second, "access_denied journaled", func() (bool, string) {
		denied = e.events(journal.EventAccessDenied)
		return len(denied) > 0, "no access_denied event yet"
	})
	if len(denied) != 1 {
		t.Fatalf("%d access_denied events, want 1: %+v", len(denied), denied)
	}
	d := denied[0]
	if d.User != alice.name || !strings.Contains(d.Message, want) || d.Details["path"] != api.PathPromote ||
		d.Details["need"] != "operate" || d.Details["have"] != "read" || d.Details["uid"] != float64(alice.uid) {
		t.Errorf("access_denied record %+v, want user %s, path %s, need operate, have read, uid %d", d, alice.name, api.PathPromote, alice.uid)
	}

	// Nothing was promoted: the same containers, still a canary, and no
	// promotion journaled.
	s := e.status()
	if after := names(s.Containers); fmt.Sprint(after) != fmt.Sprint(before) || s.Mode != "canary" {
		t.Errorf("after a refused promote: mode %q containers %v, want canary %v", s.Mode, after, before)
	}
	if p := e.events(journal.EventPromoted); len(p) != 0 {
		t.Errorf("a refused promote journaled %d promotions", len(p))
	}

	// bob can open the socket (its group) but has no role: even logs is
	// refused, naming the role it needs.
	bob := addTestUser(t, "sdb"+sfx, sockGroup)
	out, code = asUser(bob, "logs")
	want = fmt.Sprintf("logs needs role read; user %s (uid %d) has no role", bob.name, bob.uid)
	if code != 1 || !contains(out, want) || contains(out, " | ") {
		t.Errorf("swiftctl logs as %s (no role): exit %d, want 1 and %q and no line, output:\n%s", bob.name, code, want, out)
	}
}

// requireUserAdmin fails (CI=true) or skips unless the test can create
// users and groups and run processes as them.
func requireUserAdmin(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root to create test users and groups and run processes as them"
	}
	for _, tool := range []string{"useradd", "userdel", "groupadd", "groupdel"} {
		if _, err := exec.LookPath(tool); why == "" && err != nil {
			why = "needs " + tool + ": " + err.Error()
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why + " (CI=true: not skipping)")
	}
	t.Skip(why)
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func runTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// addTestGroup creates a group, removed when the test ends; it returns
// the gid.
func addTestGroup(t *testing.T, name string) int {
	t.Helper()
	runTool(t, "groupadd", name)
	t.Cleanup(func() {
		if out, err := exec.Command("groupdel", name).CombinedOutput(); err != nil {
			t.Errorf("groupdel %s: %v: %s", name, err, out)
		}
	})
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

type testUser struct {
	name string
	uid  int
	cred *syscall.Credential
}

// addTestUser creates a user (its own group, no home, no login shell) in
// the given supplementary groups, removed when the test ends; cred is
// what a login of it would have.
func addTestUser(t *testing.T, name string, groups ...string) testUser {
	t.Helper()
	runTool(t, "useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", "--groups", strings.Join(groups, ","), name)
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
		if _, err := user.LookupGroup(name); err == nil {
			_ = exec.Command("groupdel", name).Run()
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	gids, err := u.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	for _, g := range gids {
		n, _ := strconv.Atoi(g)
		cred.Groups = append(cred.Groups, uint32(n))
	}
	return testUser{name: name, uid: uid, cred: cred}
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
