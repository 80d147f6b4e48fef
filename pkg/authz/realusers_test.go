//go:build linux

package authz

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// The tests below make requests as real Unix users: they re-execute the
// test binary under the user's uid, gid and groups with clientEnv set, and
// TestMain turns that process into a small client of the control API.
const (
	clientEnv       = "SDTEST_AUTHZ_CLIENT" // the socket to call
	clientMethodEnv = "SDTEST_AUTHZ_METHOD"
	clientPathEnv   = "SDTEST_AUTHZ_PATH"
)

func TestMain(m *testing.M) {
	if sock := os.Getenv(clientEnv); sock != "" {
		os.Exit(runClient(sock, os.Getenv(clientMethodEnv), os.Getenv(clientPathEnv)))
	}
	os.Exit(m.Run())
}

// clientResult is what the client process prints.
type clientResult struct {
	Code  int    `json:"code"`
	Error string `json:"error,omitempty"`
	UID   int    `json:"uid"`
}

// runClient makes one request with the CLI's own client (api.Client) and
// prints a clientResult.
func runClient(sock, method, path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := api.NewClient(sock)
	var out json.RawMessage
	var err error
	switch method {
	case http.MethodGet:
		err = c.Get(ctx, path, &out)
	case http.MethodPost:
		var body any
		if path == api.PathChaos {
			body = api.ChaosRequest{Mode: "recover"}
		}
		err = c.Post(ctx, path, body, &out)
	default:
		err = fmt.Errorf("client: method %s not supported", method)
	}
	res := clientResult{Code: http.StatusOK, UID: os.Getuid()}
	var se *api.StatusError
	switch {
	case errors.As(err, &se):
		res.Code, res.Error = se.Code, se.Msg
	case err != nil:
		fmt.Fprintln(os.Stderr, "client:", err)
		return 2
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// requireRoot skips a test that needs root, except under CI where it fails.
func requireRoot(t *testing.T) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "needs root to create test users and groups (useradd, groupadd) and run processes as them"
	default:
		for _, tool := range []string{"useradd", "userdel", "groupadd", "groupdel"} {
			if _, err := exec.LookPath(tool); err != nil {
				why = "needs " + tool + ": " + err.Error()
				break
			}
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

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// addGroup creates a group, removed when the test ends; it returns the gid.
func addGroup(t *testing.T, name string) int {
	t.Helper()
	run(t, "groupadd", name)
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

// testUser is a user created for the test, with the credentials a login
// of it would have.
type testUser struct {
	name string
	uid  int
	gid  int
	cred *syscall.Credential
}

// addUser creates a user (with its own group, no home, no login shell)
// in the supplementary groups given; removed when the test ends.
func addUser(t *testing.T, name string, groups ...string) testUser {
	t.Helper()
	args := []string{"--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin"}
	if len(groups) > 0 {
		args = append(args, "--groups", strings.Join(groups, ","))
	}
	run(t, "useradd", append(args, name)...)
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
		// userdel removes the user's own group; make sure.
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
	return testUser{name: name, uid: uid, gid: gid, cred: cred}
}

func suffix(t *testing.T) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// world is a directory every test user can enter, holding a copy of the
// test binary they can execute (go test's build directory is root's only).
type world struct {
	dir, bin string
}

func newWorld(t *testing.T) world {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdtest-authz-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "authz.test")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return world{dir: dir, bin: bin}
}

// recorder keeps what onDeny was told.
type recorder struct {
	mu      sync.Mutex
	denials []denial
}

func (rc *recorder) onDeny(p Peer, need Role, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	d := denial{peer: p, need: need}
	if e := DenialOf(r); e != nil {
		d.msg = e.Error()
	}
	rc.denials = append(rc.denials, d)
}

func (rc *recorder) take() []denial {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	d := rc.denials
	rc.denials = nil
	return d
}

// startServer serves a stand-in for the daemon's API (every route answers
// 200) behind the middleware on a socket in w.dir, built as the daemon
// builds its server: ConnContext records the peer when a connection is
// accepted. The socket is 0666 here so that users outside every group can
// connect and be refused by the middleware rather than by the file mode.
func startServer(t *testing.T, w world, name string, cfg Config) (string, *recorder) {
	t.Helper()
	mux := http.NewServeMux()
	for _, r := range Routes() {
		mux.HandleFunc(r.Method+" "+r.Path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`)
		})
	}
	rc := &recorder{}
	sock := filepath.Join(w.dir, name+".sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Middleware(cfg, mux, rc.onDeny), ConnContext: ConnContext, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return sock, rc
}

// call makes one request as cred from a child process and returns its
// result and pid.
func call(t *testing.T, w world, sock string, cred *syscall.Credential, method, path string) (clientResult, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.bin)
	cmd.Dir = w.dir
	cmd.Env = []string{clientEnv + "=" + sock, clientMethodEnv + "=" + method, clientPathEnv + "=" + path, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("client as uid %d: %s %s: %v: %s", cred.Uid, method, path, err, stderr.String())
	}
	var res clientResult
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		t.Fatalf("client output %q: %v", stdout.String(), err)
	}
	if res.UID != int(cred.Uid) {
		t.Fatalf("client ran as uid %d, want %d", res.UID, cred.Uid)
	}
	return res, cmd.Process.Pid
}

type expect struct {
	method, path string
	code         int
	msg          string // the 403 message, exactly
}

func TestRealUsers(t *testing.T) {
	requireRoot(t)
	sfx := suffix(t)
	readGroup, opGroup := "sdtest-read-"+sfx, "sdtest-op-"+sfx
	readGID := addGroup(t, readGroup)
	addGroup(t, opGroup)
	reader := addUser(t, "sdtest-r-"+sfx, readGroup)
	operator := addUser(t, "sdtest-o-"+sfx, opGroup)
	outsider := addUser(t, "sdtest-n-"+sfx)
	root := &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{0}}

	w := newWorld(t)
	sock, rc := startServer(t, w, "configured", Config{ReadGroups: []string{readGroup}, OperateGroups: []string{opGroup}})
	who := func(u testUser) string { return fmt.Sprintf("user %s (uid %d)", u.name, u.uid) }

	cases := []struct {
		name   string
		user   testUser
		cred   *syscall.Credential
		expect []expect
	}{
		{"reader", reader, reader.cred, []expect{
			{"GET", api.PathStatus, 200, ""},
			{"GET", api.PathHistory + "?limit=5", 200, ""},
			{"GET", api.PathMetrics, 200, ""},
			{"POST", api.PathValidate, 403, "validate needs role operate; " + who(reader) + " has read"},
			{"POST", api.PathPromote, 403, "promote needs role operate; " + who(reader) + " has read"},
			{"POST", api.PathDeploy, 403, "deploy needs role operate; " + who(reader) + " has read"},
			{"POST", api.PathChaos, 403, "chaos needs role admin; " + who(reader) + " has read"},
		}},
		{"operator", operator, operator.cred, []expect{
			{"GET", api.PathStatus, 200, ""},
			{"POST", api.PathPromote, 200, ""},
			{"POST", api.PathRollback, 200, ""},
			{"POST", api.PathDeploy, 200, ""},
			{"POST", api.PathChaos, 403, "chaos needs role admin; " + who(operator) + " has operate"},
			{"POST", api.PathDown, 403, "down needs role admin; " + who(operator) + " has operate"},
		}},
		// The same operator from a process that dropped its supplementary
		// groups: it is judged by the groups it holds, not by /etc/group.
		{"operator without its groups", operator, &syscall.Credential{Uid: uint32(operator.uid), Gid: uint32(operator.gid), Groups: []uint32{}}, []expect{
			{"GET", api.PathStatus, 403, "status needs role read; " + who(operator) + " has no role"},
			{"POST", api.PathPromote, 403, "promote needs role operate; " + who(operator) + " has no role"},
		}},
		// Primary group counts too: the reader running with the read group
		// as its gid and no supplementary groups.
		{"reader by primary group", reader, &syscall.Credential{Uid: uint32(reader.uid), Gid: uint32(readGID), Groups: []uint32{}}, []expect{
			{"GET", api.PathStatus, 200, ""},
			{"POST", api.PathPromote, 403, "promote needs role operate; " + who(reader) + " has read"},
		}},
		{"root", testUser{name: "root", uid: 0}, root, []expect{
			{"POST", api.PathChaos, 200, ""},
			{"POST", api.PathDown, 200, ""},
			{"POST", api.PathPromote, 200, ""},
			{"GET", api.PathStatus, 200, ""},
		}},
		{"outsider", outsider, outsider.cred, []expect{
			{"GET", api.PathStatus, 403, "status needs role read; " + who(outsider) + " has no role"},
			{"GET", api.PathHistory, 403, "history needs role read; " + who(outsider) + " has no role"},
			{"GET", api.PathMetrics, 403, "metrics needs role read; " + who(outsider) + " has no role"},
			{"POST", api.PathPromote, 403, "promote needs role operate; " + who(outsider) + " has no role"},
			{"POST", api.PathChaos, 403, "chaos needs role admin; " + who(outsider) + " has no role"},
			{"GET", "/v1/unknown", 403, "GET /v1/unknown is not a control API route: it needs role admin; " + who(outsider) + " has no role"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc.take()
			for _, e := range tc.expect {
				res, pid := call(t, w, sock, tc.cred, e.method, e.path)
				if res.Code != e.code || res.Error != e.msg {
					t.Errorf("%s %s: got %d %q, want %d %q", e.method, e.path, res.Code, res.Error, e.code, e.msg)
				}
				ds := rc.take()
				if e.code != http.StatusForbidden {
					if len(ds) != 0 {
						t.Errorf("%s %s allowed, yet onDeny was called: %+v", e.method, e.path, ds)
					}
					continue
				}
				if len(ds) != 1 {
					t.Errorf("%s %s: onDeny called %d times, want once", e.method, e.path, len(ds))
					continue
				}
				d := ds[0]
				need, _ := Required(e.method, strings.SplitN(e.path, "?", 2)[0])
				if d.peer.UID != tc.user.uid || d.peer.User != tc.user.name || d.peer.PID != pid || d.need != need || d.msg != e.msg {
					t.Errorf("%s %s: onDeny got %+v (pid %d), want uid %d user %s pid %d need %v msg %q",
						e.method, e.path, d, d.peer.PID, tc.user.uid, tc.user.name, pid, need, e.msg)
				}
				if d.peer.Groups == nil || !slices.Equal(d.peer.Groups, sortedInts(tc.cred.Groups)) {
					t.Errorf("%s %s: peer groups %v, want the process's %v", e.method, e.path, d.peer.Groups, tc.cred.Groups)
				}
			}
		})
	}
}

// TestRealUsersDefaults: with no configuration, members of the daemon's
// group may read and nothing more; everyone else but root and the daemon's
// uid has no role.
func TestRealUsersDefaults(t *testing.T) {
	requireRoot(t)
	sfx := suffix(t)
	daemonGroup := "sdtest-read-" + sfx
	daemonGID := addGroup(t, daemonGroup)
	member := addUser(t, "sdtest-m-"+sfx, daemonGroup)
	outsider := addUser(t, "sdtest-n-"+sfx)
	daemon := addUser(t, "sdtest-d-"+sfx)
	// The test process plays a daemon running as the daemon user and
	// group (restored after the server stops: cleanups run last first).
	playDaemon(t, daemon.uid, daemonGID)

	w := newWorld(t)
	sock, _ := startServer(t, w, "default", Config{})
	who := func(u testUser) string { return fmt.Sprintf("user %s (uid %d)", u.name, u.uid) }
	for _, tc := range []struct {
		user testUser
		exp  []expect
	}{
		{member, []expect{
			{"GET", api.PathStatus, 200, ""},
			{"GET", api.PathDiff, 200, ""},
			{"POST", api.PathDeploy, 403, "deploy needs role operate; " + who(member) + " has read"},
			{"POST", api.PathChaos, 403, "chaos needs role admin; " + who(member) + " has read"},
		}},
		{outsider, []expect{
			{"GET", api.PathStatus, 403, "status needs role read; " + who(outsider) + " has no role"},
		}},
		{daemon, []expect{
			{"POST", api.PathChaos, 200, ""},
			{"POST", api.PathDown, 200, ""},
		}},
	} {
		for _, e := range tc.exp {
			res, _ := call(t, w, sock, tc.user.cred, e.method, e.path)
			if res.Code != e.code || res.Error != e.msg {
				t.Errorf("%s: %s %s: got %d %q, want %d %q", tc.user.name, e.method, e.path, res.Code, res.Error, e.code, e.msg)
			}
		}
	}
}

// TestPeerOfSelf reads this process's own credentials over a real socket;
// it needs no privileges.
func TestPeerOfSelf(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan Peer, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(got)
			return
		}
		defer c.Close()
		ctx := ConnContext(context.Background(), c)
		p, ok := PeerFrom(ctx)
		if !ok {
			t.Errorf("PeerFrom: no peer: %v", peerErr(ctx))
		}
		got <- p
	}()
	c, err := net.Dial("unix", filepath.Join(dir, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := <-got
	want, _ := os.Getgroups()
	if p.UID != os.Geteuid() || p.GID != os.Getegid() || p.PID != os.Getpid() || !slices.Equal(p.Groups, want) {
		t.Errorf("peer %+v, want uid %d gid %d pid %d groups %v", p, os.Geteuid(), os.Getegid(), os.Getpid(), want)
	}
	if u, err := user.Current(); err == nil && p.User != u.Username {
		t.Errorf("peer user %q, want %q", p.User, u.Username)
	}
}

// sortedInts is gs as the kernel keeps a process's groups: sorted.
func sortedInts(gs []uint32) []int {
	out := make([]int, len(gs))
	for i, g := range gs {
		out[i] = int(g)
	}
	slices.Sort(out)
	return out
}
