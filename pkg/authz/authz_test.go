package authz

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// playDaemon makes the test process look like a daemon running as uid:gid.
func playDaemon(t *testing.T, uid, gid int) {
	t.Helper()
	oldU, oldG := selfUID, selfGID
	selfUID = func() int { return uid }
	selfGID = func() int { return gid }
	t.Cleanup(func() { selfUID, selfGID = oldU, oldG })
}

func TestRoleOrder(t *testing.T) {
	for _, tt := range []struct {
		have, need Role
		want       bool
	}{
		{RoleAdmin, RoleOperate, true},
		{RoleAdmin, RoleRead, true},
		{RoleOperate, RoleRead, true},
		{RoleOperate, RoleOperate, true},
		{RoleOperate, RoleAdmin, false},
		{RoleRead, RoleOperate, false},
		{RoleNone, RoleRead, false},
	} {
		if got := tt.have.Allows(tt.need); got != tt.want {
			t.Errorf("%v.Allows(%v) = %v, want %v", tt.have, tt.need, got, tt.want)
		}
	}
	for r, s := range map[Role]string{RoleNone: "none", RoleRead: "read", RoleOperate: "operate", RoleAdmin: "admin", 9: "role(9)"} {
		if r.String() != s {
			t.Errorf("Role(%d).String() = %q, want %q", int(r), r.String(), s)
		}
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		method, path string
		want         Role
		known        bool
	}{
		{"GET", api.PathStatus, RoleRead, true},
		{"HEAD", api.PathStatus, RoleRead, true},
		{"GET", api.PathHistory, RoleRead, true},
		{"GET", api.PathDiff, RoleRead, true},
		{"POST", api.PathValidate, RoleOperate, true},
		{"GET", api.PathMetrics, RoleRead, true},
		{"POST", api.PathDeploy, RoleOperate, true},
		{"POST", api.PathPromote, RoleOperate, true},
		{"POST", api.PathRollback, RoleOperate, true},
		{"POST", "/v1/abort", RoleOperate, true},
		{"POST", "/v1/pause", RoleOperate, true},
		{"POST", "/v1/resume", RoleOperate, true},
		{"POST", api.PathChaos, RoleAdmin, true},
		{"POST", api.PathDown, RoleAdmin, true},
		// Not in the table: admin.
		{"GET", api.PathPromote, RoleAdmin, false},
		{"POST", api.PathStatus, RoleAdmin, false},
		{"DELETE", api.PathDeploy, RoleAdmin, false},
		{"GET", "/v1/secret", RoleAdmin, false},
		{"GET", "/v1/status/", RoleAdmin, false},
		{"GET", "/v1//status", RoleAdmin, false},
		{"GET", "/v1/./status", RoleAdmin, false},
		{"GET", "/V1/STATUS", RoleAdmin, false},
		{"get", api.PathStatus, RoleAdmin, false},
		{"GET", "", RoleAdmin, false},
		{"GET", "/", RoleAdmin, false},
	}
	for _, tt := range tests {
		got, known := Required(tt.method, tt.path)
		if got != tt.want || known != tt.known {
			t.Errorf("Required(%q, %q) = %v, %v; want %v, %v", tt.method, tt.path, got, known, tt.want, tt.known)
		}
	}
	// Every route is listed once and Routes hands out a copy.
	seen := map[string]bool{}
	for _, r := range Routes() {
		k := r.Method + " " + r.Path
		if seen[k] {
			t.Errorf("route %s listed twice", k)
		}
		seen[k] = true
	}
	rs := Routes()
	rs[0].Role = RoleNone
	if Routes()[0].Role == RoleNone {
		t.Error("Routes returned the table itself")
	}
}

func TestRoleOf(t *testing.T) {
	const daemonUID, daemonGID = 4000, 4100
	playDaemon(t, daemonUID, daemonGID)
	operators := Config{ReadGroups: []string{"4201"}, OperateGroups: []string{"4202"}, AdminGroups: []string{"4203"}}
	tests := []struct {
		name string
		cfg  Config
		peer Peer
		want Role
	}{
		{"root, default config", Config{}, Peer{UID: 0, GID: 0}, RoleAdmin},
		{"root, configured", operators, Peer{UID: 0, GID: 12345}, RoleAdmin},
		{"daemon's uid", operators, Peer{UID: daemonUID, GID: 1}, RoleAdmin},
		{"default: daemon's group as primary group reads", Config{}, Peer{UID: 1001, GID: daemonGID}, RoleRead},
		{"default: daemon's group as supplementary group reads", Config{}, Peer{UID: 1001, GID: 1001, Groups: []int{7, daemonGID}}, RoleRead},
		{"default: anyone else has nothing", Config{}, Peer{UID: 1001, GID: 1001, Groups: []int{4201, 4202, 4203}}, RoleNone},
		{"configured: daemon's group alone no longer counts", operators, Peer{UID: 1001, GID: daemonGID}, RoleNone},
		{"read group", operators, Peer{UID: 1001, GID: 1001, Groups: []int{4201}}, RoleRead},
		{"operate group as primary", operators, Peer{UID: 1001, GID: 4202}, RoleOperate},
		{"admin group", operators, Peer{UID: 1001, GID: 1001, Groups: []int{4203}}, RoleAdmin},
		{"highest role wins", operators, Peer{UID: 1001, GID: 4201, Groups: []int{4203, 4202}}, RoleAdmin},
		{"groups unknown: primary gid only", operators, Peer{UID: 1001, GID: 4202, Groups: nil}, RoleOperate},
		{"unidentified", Config{}, unknownPeer, RoleNone},
		{"unidentified, even if gid matches", Config{ReadGroups: []string{"4201"}}, Peer{UID: -1, GID: 4201}, RoleNone},
		{"unresolvable group grants nothing", Config{OperateGroups: []string{"sdtest-no-such-group-x"}}, Peer{UID: 1001, GID: 1001}, RoleNone},
		{"only some groups resolve", Config{OperateGroups: []string{"sdtest-no-such-group-x", "4202"}}, Peer{UID: 1001, GID: 4202}, RoleOperate},
		{"root group by name", Config{ReadGroups: []string{"root"}}, Peer{UID: 1001, GID: 1001, Groups: []int{0}}, RoleRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.RoleOf(tt.peer); got != tt.want {
				t.Errorf("RoleOf(%+v) = %v, want %v", tt.peer, got, tt.want)
			}
		})
	}
}

func TestDeniedMessages(t *testing.T) {
	playDaemon(t, 4000, 4100)
	alice := Peer{UID: 1001, GID: 1001, User: "alice", Groups: []int{4201}}
	cfg := Config{ReadGroups: []string{"4201"}}
	tests := []struct {
		peer         Peer
		method, path string
		want         string
	}{
		{alice, "POST", api.PathPromote, "promote needs role operate; user alice (uid 1001) has read"},
		{alice, "POST", api.PathChaos, "chaos needs role admin; user alice (uid 1001) has read"},
		{Peer{UID: 1002, GID: 1002}, "GET", api.PathStatus, "status needs role read; uid 1002 has no role"},
		{alice, "GET", "/v1/nope", "GET /v1/nope is not a control API route: it needs role admin; user alice (uid 1001) has read"},
		{alice, "GET", api.PathDeploy, "GET /v1/deploy is not a control API route: it needs role admin; user alice (uid 1001) has read"},
	}
	for _, tt := range tests {
		err := cfg.Authorize(tt.peer, tt.method, tt.path)
		var de *DeniedError
		if !errors.As(err, &de) {
			t.Fatalf("Authorize(%v, %s %s) = %v, want a *DeniedError", tt.peer, tt.method, tt.path, err)
		}
		if err.Error() != tt.want {
			t.Errorf("Authorize(%v, %s %s):\n got %q\nwant %q", tt.peer, tt.method, tt.path, err, tt.want)
		}
	}
	if err := cfg.Authorize(alice, "GET", api.PathStatus); err != nil {
		t.Errorf("alice may read status: %v", err)
	}
}

func TestPeerNames(t *testing.T) {
	for _, tt := range []struct {
		p            Peer
		str, journal string
	}{
		{Peer{UID: 1001, User: "alice"}, "user alice (uid 1001)", "alice"},
		{Peer{UID: 1001}, "uid 1001", "uid:1001"},
		{unknownPeer, "an unidentified caller", ""},
	} {
		if tt.p.String() != tt.str || tt.p.Name() != tt.journal {
			t.Errorf("%+v: String %q Name %q, want %q %q", tt.p, tt.p.String(), tt.p.Name(), tt.str, tt.journal)
		}
	}
}

type denial struct {
	peer Peer
	need Role
	msg  string
}

// serve runs one request through the middleware as peer (nil: a
// connection without recorded credentials).
func serve(t *testing.T, cfg Config, peer *Peer, method, path string) (*httptest.ResponseRecorder, []denial, bool) {
	t.Helper()
	reached := false
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true })
	var denials []denial
	h := Middleware(cfg, next, func(p Peer, need Role, r *http.Request) {
		d := denial{peer: p, need: need}
		if e := DenialOf(r); e != nil {
			d.msg = e.Error()
		}
		denials = append(denials, d)
	})
	req := httptest.NewRequest(method, "http://swiftdeployd"+path, nil)
	if peer != nil {
		req = req.WithContext(withPeer(req.Context(), *peer))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, denials, reached
}

func TestMiddleware(t *testing.T) {
	playDaemon(t, 4000, 4100)
	cfg := Config{ReadGroups: []string{"4201"}, OperateGroups: []string{"4202"}}
	alice := Peer{UID: 1001, GID: 1001, PID: 77, User: "alice", Groups: []int{4201}}

	rec, denials, reached := serve(t, cfg, &alice, "GET", api.PathStatus)
	if !reached || rec.Code != http.StatusOK || len(denials) != 0 {
		t.Fatalf("alice GET status: reached %v, code %d, denials %v", reached, rec.Code, denials)
	}

	rec, denials, reached = serve(t, cfg, &alice, "POST", api.PathPromote)
	want := "promote needs role operate; user alice (uid 1001) has read"
	if reached || rec.Code != http.StatusForbidden {
		t.Fatalf("alice POST promote: reached %v, code %d", reached, rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var e api.Error
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error != want {
		t.Errorf("body %q (%v), want error %q", rec.Body, err, want)
	}
	if len(denials) != 1 || denials[0].peer.UID != 1001 || denials[0].peer.PID != 77 || denials[0].need != RoleOperate || denials[0].msg != want {
		t.Errorf("onDeny got %+v", denials)
	}

	// No credentials recorded: refused, with the reason.
	rec, denials, reached = serve(t, cfg, nil, "GET", api.PathStatus)
	if reached || rec.Code != http.StatusForbidden || len(denials) != 1 || denials[0].peer.UID != -1 {
		t.Fatalf("no peer: reached %v, code %d, denials %+v", reached, rec.Code, denials)
	}
	if !strings.Contains(rec.Body.String(), "status needs role read; the caller could not be identified: the server does not record peer credentials") {
		t.Errorf("no peer: body %s", rec.Body)
	}

	// A nil onDeny is allowed.
	h := Middleware(cfg, http.NotFoundHandler(), nil)
	req := httptest.NewRequest("POST", "http://swiftdeployd"+api.PathDown, nil)
	req = req.WithContext(withPeer(context.Background(), alice))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("nil onDeny: code %d", rec.Code)
	}
}

func TestPeerOfRejectsNonUnix(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := PeerOf(c)
	if err == nil || p.UID != -1 {
		t.Fatalf("PeerOf(tcp) = %+v, %v; want an error and an unidentified peer", p, err)
	}
	if _, err := PeerOf(nil); err == nil {
		t.Error("PeerOf(nil) succeeded")
	}
	a, b := net.Pipe() // no socket, no address
	defer a.Close()
	defer b.Close()
	if p, err := PeerOf(a); err == nil || p.UID != -1 {
		t.Errorf("PeerOf(pipe) = %+v, %v; want an error", p, err)
	}
}

func TestParseConfig(t *testing.T) {
	c, err := parseConfig([]byte("read_groups: [devs, '1005']\noperate_groups:\n  - deployers\nadmin_groups: [ops]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.ReadGroups, []string{"devs", "1005"}) || !slices.Equal(c.OperateGroups, []string{"deployers"}) || !slices.Equal(c.AdminGroups, []string{"ops"}) {
		t.Errorf("parsed %+v", c)
	}
	c, err = parseConfig([]byte(`{"operate_groups": ["deployers"]}`))
	if err != nil || !slices.Equal(c.OperateGroups, []string{"deployers"}) {
		t.Errorf("JSON: %+v, %v", c, err)
	}
	for _, tt := range []struct{ in, want string }{
		{"read_group: [devs]\n", "field read_group not found"},
		{"read_groups: devs\n", "cannot unmarshal"},
		{"read_groups: [devs]\n---\nadmin_groups: [ops]\n", "more than one YAML document"},
		{"", "empty file"},
		{"read_groups: ['']\n", "empty group name"},
		{"read_groups: [' ']\n", "empty group name"},
		{"read_groups: [[devs]]\n", "cannot unmarshal"},
	} {
		_, err := parseConfig([]byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseConfig(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := LoadFile(write("ok.yaml", "read_groups: ['0']\nadmin_groups: ['4203']\n", 0o600))
	if err != nil || !slices.Equal(c.AdminGroups, []string{"4203"}) {
		t.Fatalf("LoadFile: %+v, %v", c, err)
	}
	if _, err := LoadFile(write("writable.yaml", "read_groups: ['0']\n", 0o666)); err == nil || !strings.Contains(err.Error(), "chmod go-w") {
		t.Errorf("group/world-writable file: %v", err)
	}
	if _, err := LoadFile(write("badgroup.yaml", "operate_groups: [sdtest-no-such-group-x]\n", 0o644)); err == nil || !strings.Contains(err.Error(), "operate group") {
		t.Errorf("unknown group: %v", err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := LoadFile(dir); err == nil {
		t.Error("directory accepted")
	}
	big := write("big.yaml", "read_groups: ['0']\n#"+strings.Repeat("x", MaxConfigBytes)+"\n", 0o600)
	if _, err := LoadFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
	if os.Geteuid() == 0 {
		p := write("foreign.yaml", "read_groups: ['0']\n", 0o644)
		if err := os.Chown(p, 4321, 4321); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadFile(p); err == nil || !strings.Contains(err.Error(), "owned by uid 4321") {
			t.Errorf("file owned by another user: %v", err)
		}
	}
}

func TestRegisterFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "authz.yaml")
	if err := os.WriteFile(file, []byte("read_groups: ['4201']\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("swiftdeployd", flag.ContinueOnError)
	get := RegisterFlags(fs)
	err := fs.Parse([]string{"--operate-group", "4202", "--operate-group=root", "--admin-group", "4203", "--read-group", "4204", "--authz-config", file})
	if err != nil {
		t.Fatal(err)
	}
	c, err := get()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.ReadGroups, []string{"4201", "4204"}) || !slices.Equal(c.OperateGroups, []string{"4202", "root"}) || !slices.Equal(c.AdminGroups, []string{"4203"}) {
		t.Errorf("config %+v", c)
	}

	fs = flag.NewFlagSet("swiftdeployd", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	RegisterFlags(fs)
	if err := fs.Parse([]string{"--read-group", ""}); err == nil {
		t.Error("empty --read-group accepted")
	}

	fs = flag.NewFlagSet("swiftdeployd", flag.ContinueOnError)
	get = RegisterFlags(fs)
	if err := fs.Parse([]string{"--admin-group", "sdtest-no-such-group-x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := get(); err == nil || !strings.Contains(err.Error(), `admin group: group "sdtest-no-such-group-x"`) {
		t.Errorf("unknown group: %v", err)
	}

	fs = flag.NewFlagSet("swiftdeployd", flag.ContinueOnError)
	get = RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if c, err := get(); err != nil || !c.IsDefault() {
		t.Errorf("no flags: %+v, %v; want the default config", c, err)
	}
}
