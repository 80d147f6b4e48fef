package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Callers of each role: uids and gids no real account has, with the roles
// granted to their groups by number.
var (
	testAuthz = authz.Config{ReadGroups: []string{"70001"}, OperateGroups: []string{"70002"}, AdminGroups: []string{"70003"}}
	testPeers = map[authz.Role]authz.Peer{
		authz.RoleNone:    {UID: 60000, GID: 70000, PID: 1, User: "nobody-here"},
		authz.RoleRead:    {UID: 60001, GID: 70001, PID: 1, User: "reader"},
		authz.RoleOperate: {UID: 60002, GID: 70002, PID: 1, User: "operator"},
		authz.RoleAdmin:   {UID: 60003, GID: 70003, PID: 1, User: "admin"},
	}
)

// request calls the server's handler (role checks included) as a caller
// of role.
func request(s *Server, role authz.Role, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body)).
		WithContext(authz.WithPeer(context.Background(), testPeers[role]))
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// lastLine is the last NDJSON record of a streamed answer.
func lastLine(t *testing.T, body string) api.Progress {
	t.Helper()
	var p api.Progress
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		p = api.Progress{}
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			t.Fatalf("not NDJSON: %q", body)
		}
	}
	return p
}

// Every route the server registers has the role authz's table gives it; a
// caller below it is refused with 403 before the controller hears of the
// call, and the refusal is passed on for the journal, naming the caller,
// the route and both roles.
func TestRefusedCallsNeverReachTheController(t *testing.T) {
	f := &fakeController{}
	s := New(f, Options{Authz: testAuthz})
	patterns := s.Routes().Patterns()
	if len(patterns) < 17 {
		t.Fatalf("the server registers %d routes: %v", len(patterns), patterns)
	}
	for _, pat := range patterns {
		method, path, _ := strings.Cut(pat, " ")
		need, known := authz.Required(method, path)
		if !known {
			t.Errorf("%s is served but not in authz's table", pat)
			continue
		}
		for role := authz.RoleNone; role < need; role++ {
			before := len(f.Refusals())
			rec := request(s, role, method, path, "{}")
			if rec.Code != http.StatusForbidden {
				t.Errorf("%s as %s: %d, want 403 (needs %s)", pat, role, rec.Code, need)
			}
			if c := f.Calls(); len(c) > 0 {
				t.Fatalf("%s refused to %s, yet the controller was called: %v", pat, role, c)
			}
			refused := f.Refusals()
			if len(refused) != before+1 {
				t.Fatalf("%s as %s: %d refusals passed on, want 1", pat, role, len(refused)-before)
			}
			r := refused[len(refused)-1]
			if r.User != testPeers[role].Name() || r.Details["path"] != path || r.Details["need"] != need.String() || r.Details["have"] != role.String() {
				t.Errorf("%s as %s: refusal record %+v", pat, role, r)
			}
		}
	}
	// An over-long path is cut in the record: a caller cannot grow it.
	long := "/v1/" + strings.Repeat("x", 4*authz.MaxPathInMessage)
	request(s, authz.RoleNone, http.MethodGet, long, "")
	refused := f.Refusals()
	if p, _ := refused[len(refused)-1].Details["path"].(string); len(p) > authz.MaxPathInMessage+len("…") {
		t.Errorf("a refused path of %d bytes is journaled with %d", len(long), len(p))
	}
}

// A daemon that may not act (a Kubernetes follower) refuses every call
// that would change what runs, with the controller's reason and 503,
// before decoding anything or calling the operation; reads still answer.
func TestNotActingRefusesMutations(t *testing.T) {
	f := &fakeController{actErr: Unavailable(errors.New("not the leader: daemon-b holds the Lease"))}
	s := New(f, Options{Authz: testAuthz})
	// Every route that needs operate or more, from the server's own table
	// (a route added later without the check fails here), but validate,
	// which changes nothing, and chaos, which the Kubernetes target itself
	// refuses (501).
	var mutating []string
	for _, pat := range s.Routes().Patterns() {
		method, path, _ := strings.Cut(pat, " ")
		if need, _ := authz.Required(method, path); need >= authz.RoleOperate && path != api.PathValidate && path != api.PathChaos {
			mutating = append(mutating, path)
		}
	}
	if len(mutating) < 8 {
		t.Fatalf("%d mutating routes found in %v", len(mutating), s.Routes().Patterns())
	}
	for _, path := range mutating {
		rec := request(s, authz.RoleAdmin, http.MethodPost, path, `{"action":"pause"}`)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "daemon-b") {
			t.Errorf("POST %s on a follower: %d %s, want 503 naming the leader", path, rec.Code, rec.Body.String())
		}
	}
	if c := f.Calls(); len(c) > 0 {
		t.Fatalf("the follower's controller was called: %v", c)
	}
	if rec := request(s, authz.RoleRead, http.MethodGet, api.PathStatus, ""); rec.Code != http.StatusOK {
		t.Errorf("status on a follower: %d", rec.Code)
	}
}

// The controller's classed failures answer with their status; a failure
// of no class gets the route's own (503 for what reads the target, 500
// for the journal and the release book).
func TestFailuresAnswerWithTheirClass(t *testing.T) {
	plain := errors.New("engine unreachable")
	for _, tc := range []struct {
		err          error
		method, path string
		body         string
		want         int
	}{
		{Conflict(errors.New("no valid manifest")), http.MethodGet, api.PathDiff, "", http.StatusConflict},
		{plain, http.MethodGet, api.PathDiff, "", http.StatusServiceUnavailable},
		{NotFound(errors.New("no service")), http.MethodGet, api.PathReleases, "", http.StatusNotFound},
		{plain, http.MethodGet, api.PathReleases, "", http.StatusInternalServerError},
		{plain, http.MethodGet, api.PathHistory, "", http.StatusInternalServerError},
		{BadGateway(errors.New("chaos to c1: refused")), http.MethodPost, api.PathChaos, `{"mode":"error","rate":0.5}`, http.StatusBadGateway},
		{NotImplemented(errors.New("not on Kubernetes")), http.MethodPost, api.PathChaos, `{"mode":"error"}`, http.StatusNotImplemented},
		{plain, http.MethodPost, api.PathPause, "", http.StatusConflict},
		{NotFound(errors.New("no replica")), http.MethodGet, api.PathLogs, "", http.StatusNotFound},
	} {
		f := &fakeController{err: tc.err}
		if tc.path == api.PathLogs {
			f.logsErr = tc.err
		}
		rec := request(New(f, Options{Authz: testAuthz}), authz.RoleAdmin, tc.method, tc.path, tc.body)
		var e api.Error
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != tc.want || e.Error != tc.err.Error() {
			t.Errorf("%s %s failing with %q: %d %q, want %d with the message", tc.method, tc.path, tc.err, rec.Code, e.Error, tc.want)
		}
	}
}

// A request the server cannot read is refused with 400 before the
// controller is called: a bad body, a bad history limit or time, a traffic
// hold out of its bounds.
func TestBadRequestsNeverReachTheController(t *testing.T) {
	f := &fakeController{}
	s := New(f, Options{Authz: testAuthz})
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodPost, api.PathChaos, `{"mode":"error","bogus":1}`},
		{http.MethodPost, api.PathPromote, `{"full":"yes"}`},
		{http.MethodPost, api.PathTraffic, `{"action":"pause","max":"11m"}`},
		{http.MethodPost, api.PathTraffic, `{"action":"resume","message":"x"}`},
		{http.MethodPost, api.PathTraffic, `{"action":"drain"}`},
		{http.MethodGet, api.PathHistory + "?limit=-1", ""},
		{http.MethodGet, api.PathHistory + "?since=yesterday", ""},
		{http.MethodGet, api.PathLogs + "?tail=many", ""},
	} {
		rec := request(s, authz.RoleAdmin, tc.method, tc.path, tc.body)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s %s %s: %d %s, want 400", tc.method, tc.path, tc.body, rec.Code, rec.Body.String())
		}
	}
	if c := f.Calls(); len(c) > 0 {
		t.Fatalf("bad requests reached the controller: %v", c)
	}
	rec := request(s, authz.RoleOperate, http.MethodPost, api.PathTraffic, `{"action":"pause","max":"45s"}`)
	if rec.Code != http.StatusOK || len(f.traffic) != 1 || f.traffic[0].Mode != stack.TrafficPause || f.traffic[0].Max != 45*time.Second {
		t.Errorf("a good pause: %d %s, controller got %+v", rec.Code, rec.Body.String(), f.traffic)
	}
}

// A transition streams its progress lines, then one last line with the
// outcome; a policy's denial carries its reasons and whether a retry may
// pass.
func TestTransitionsStreamProgressAndDenials(t *testing.T) {
	f := &fakeController{progress: []string{"Canary safety: checking"},
		err: &Denied{Reasons: []string{"error rate 9% over 5%"}, Transient: true, Err: errors.New("promotion denied")}}
	rec := request(New(f, Options{Authz: testAuthz}), authz.RoleOperate, http.MethodPost, api.PathPromote, "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("promote: %d %s", rec.Code, rec.Header())
	}
	if !strings.Contains(rec.Body.String(), `"line":"Canary safety: checking"`) {
		t.Errorf("the progress line is not streamed: %s", rec.Body.String())
	}
	last := lastLine(t, rec.Body.String())
	if !last.Done || last.Error != "promotion denied" || len(last.Denied) != 1 || !last.Transient {
		t.Errorf("last line %+v, want done, the denial's reasons and transient", last)
	}
}

// The logs answers served at once are bounded (429 past the bound, free
// again once one ends), and a follow ends when the streams are stopped
// (the daemon stops), its last line saying so.
func TestLogsBoundAndStop(t *testing.T) {
	started := make(chan struct{}, 1)
	f := &fakeController{logs: func(ctx context.Context, emit func(api.LogLine) error) error {
		if err := emit(api.LogLine{Container: "c1", Line: "hello"}); err != nil {
			return err
		}
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}}
	s := New(f, Options{Authz: testAuthz, MaxLogReaders: 1})
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- request(s, authz.RoleRead, http.MethodGet, api.PathLogs+"?follow=true", "") }()
	<-started
	rec := request(s, authz.RoleRead, http.MethodGet, api.PathLogs, "")
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "1 logs readers already") {
		t.Errorf("a second reader: %d %s, want 429", rec.Code, rec.Body.String())
	}
	s.StopStreams()
	var first *httptest.ResponseRecorder
	select {
	case first = <-done:
	case <-time.After(30 * time.Second): // a hang, not a margin
		t.Fatal("the follow did not end when the streams stopped")
	}
	var last api.LogLine
	sc := bufio.NewScanner(strings.NewReader(first.Body.String()))
	for sc.Scan() {
		last = api.LogLine{}
		_ = json.Unmarshal(sc.Bytes(), &last)
	}
	if !last.Done || !last.Stopped || !strings.Contains(first.Body.String(), "hello") {
		t.Errorf("the follow's answer %q: want its line, then done and stopped", first.Body.String())
	}
	f.logs = nil
	if rec := request(s, authz.RoleRead, http.MethodGet, api.PathLogs, ""); rec.Code != http.StatusOK {
		t.Errorf("once the first ended: %d %s", rec.Code, rec.Body.String())
	}
}

// The socket removed with its directory is made again once the
// controller says the directory may be used, and the controller hears of
// it (for the journal); calls reach the server on the new socket.
func TestGuardMakesTheSocketAgain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "sd.sock")
	f := &fakeController{}
	s := New(f, Options{Socket: path, Authz: testAuthz, GuardEvery: 10 * time.Millisecond})
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	guarded := make(chan struct{})
	go func() { s.Guard(ctx); close(guarded) }()
	t.Cleanup(func() { cancel(); <-guarded; _ = s.Shutdown(context.Background()) })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // several guard rounds: the directory is gone, nothing is made
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("the guard made the socket's directory again by itself")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second) // a hang, not a margin
	for !containsCall(f.Calls(), "socket_recreated") {
		if time.Now().After(deadline) {
			t.Fatal("the socket was not made again once its directory was back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := api.NewClient(path)
	var st api.Status
	if err := c.Get(context.Background(), api.PathStatus, &st); err != nil {
		t.Fatalf("status over the socket made again: %v", err)
	}
}

func containsCall(calls []string, name string) bool {
	for _, c := range calls {
		if c == name {
			return true
		}
	}
	return false
}
