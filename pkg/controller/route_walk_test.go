package controller

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/authz"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine/fake"
)

// routeRoles is what each route of the control API may cause, and so the
// least role that may call it. A route that can start, stop or remove a
// container, or run a command in one (validate runs `nginx -t` in the
// running nginx), needs operate at least. A
// route the daemon registers that is missing here fails
// TestRouteWalkEveryRoleEveryRoute: whoever adds one decides its role.
var routeRoles = map[string]authz.Role{
	"GET /v1/status":    authz.RoleRead,
	"GET /v1/history":   authz.RoleRead,
	"GET /v1/diff":      authz.RoleRead,
	"GET /metrics":      authz.RoleRead,
	"GET /v1/whoami":    authz.RoleRead, // the caller's own role, for the dashboard
	"GET /v1/logs":      authz.RoleRead, // the app's output, as status shows what runs
	"GET /v1/releases":  authz.RoleRead,
	"POST /v1/validate": authz.RoleOperate, // runs nginx -t in the running nginx
	"POST /v1/deploy":   authz.RoleOperate,
	"POST /v1/promote":  authz.RoleOperate,
	"POST /v1/rollback": authz.RoleOperate,
	"POST /v1/abort":    authz.RoleOperate,
	"POST /v1/pause":    authz.RoleOperate,
	"POST /v1/resume":   authz.RoleOperate,
	"POST /v1/traffic":  authz.RoleOperate,
	"POST /v1/chaos":    authz.RoleAdmin,
	"POST /v1/down":     authz.RoleAdmin,
}

// Callers of each role: uids and gids no real account has, with the roles
// granted to their groups by number.
var (
	walkAuthz = authz.Config{ReadGroups: []string{"70001"}, OperateGroups: []string{"70002"}, AdminGroups: []string{"70003"}}
	walkPeers = map[authz.Role]authz.Peer{
		authz.RoleNone:    {UID: 60000, GID: 70000, PID: 1, User: "nobody-here"},
		authz.RoleRead:    {UID: 60001, GID: 70001, PID: 1, User: "reader"},
		authz.RoleOperate: {UID: 60002, GID: 70002, PID: 1, User: "operator"},
		authz.RoleAdmin:   {UID: 60003, GID: 70003, PID: 1, User: "admin"},
	}
)

// servedPatterns is every route the daemon serves, on either target (one
// set: what a target cannot do is refused by the route), read from the
// mux the server is built from (not from a copy of it).
func servedPatterns(d *Daemon) []string {
	return d.routes().Patterns()
}

// TestRouteWalkEveryRoleEveryRoute calls every served route as a caller of
// every role, through the server's real handler stack (authz middleware,
// mux, handlers, over the fake engine): a caller below the route's role is
// refused with 403 and the engine sees no mutating call; a caller with it
// gets past the middleware. The route list comes from the daemon's own
// registration, so a new route without an entry in routeRoles (or in
// authz's table with the same role) fails here.
func TestRouteWalkEveryRoleEveryRoute(t *testing.T) {
	h := newHarness(t, fakeManifest("app:1", 1, ""))
	h.d.jr.Close()
	h.d = h.newDaemonWith(func(c *Config) { c.Authz = walkAuthz })
	h.mustConverge()
	srv := h.d.server()

	patterns := servedPatterns(h.d)
	if len(patterns) < len(routeRoles) {
		t.Fatalf("the daemon serves %d routes, fewer than the %d in routeRoles: %v", len(patterns), len(routeRoles), patterns)
	}
	for _, pat := range patterns {
		want, ok := routeRoles[pat]
		if !ok {
			t.Errorf("route %q is served but has no entry in routeRoles: decide which role it needs (and add it to authz's table and docs/security.md)", pat)
			continue
		}
		method, path, _ := strings.Cut(pat, " ")
		if got, known := authz.Required(method, path); !known || got != want {
			t.Errorf("authz.Required(%s) = %s (in table: %v), want %s", pat, got, known, want)
		}
	}
	for pat := range routeRoles {
		if !slices.Contains(patterns, pat) {
			t.Errorf("routeRoles lists %q, which the daemon does not serve", pat)
		}
	}
	for _, r := range authz.Routes() {
		if !slices.Contains(patterns, r.Method+" "+r.Path) {
			t.Errorf("authz's table lists %s %s, which the daemon does not serve", r.Method, r.Path)
		}
	}

	for _, pat := range patterns {
		want, ok := routeRoles[pat]
		if !ok {
			continue
		}
		method, path, _ := strings.Cut(pat, " ")
		for _, role := range []authz.Role{authz.RoleNone, authz.RoleRead, authz.RoleOperate, authz.RoleAdmin} {
			t.Run(pat+"/"+role.String(), func(t *testing.T) {
				h.fe.ResetCalls()
				before := snapshotDir(t, h.dir)
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				req := httptest.NewRequest(method, path, nil).WithContext(authz.WithPeer(ctx, walkPeers[role]))
				rec := httptest.NewRecorder()
				srv.Handler.ServeHTTP(rec, req)
				if !role.Allows(want) {
					if rec.Code != http.StatusForbidden {
						t.Fatalf("%s as %s: status %d, want 403 (needs %s)", pat, role, rec.Code, want)
					}
					if m := h.fe.Mutations(); len(m) > 0 {
						t.Errorf("%s refused to %s, yet the engine saw %v", pat, role, m)
					}
					if after := snapshotDir(t, h.dir); !sameFiles(before, after) {
						t.Errorf("%s refused to %s, yet files beside the manifest changed", pat, role)
					}
					return
				}
				if rec.Code == http.StatusForbidden {
					t.Fatalf("%s as %s: refused (%s), want allowed", pat, role, rec.Body.String())
				}
			})
		}
		// Bring back what an admin's down took away.
		h.d.mu.Lock()
		h.d.state.Down = false
		h.d.mu.Unlock()
		_ = h.reconcile()
	}
}

// snapshotDir maps each file beside the manifest (not the journal, which
// records refusals, nor the socket) to its contents.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if strings.HasPrefix(e.Name(), "history.jsonl") || strings.HasSuffix(e.Name(), ".sock") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil // removed meanwhile
		}
		out[p] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameFiles(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestValidateRunsOnlyAcceptedImages: validate's `nginx -t` runs inside
// the running nginx, whose image a deploy applied (through the gates),
// never in an image only named on disk: otherwise whoever can call
// validate could make the daemon run any local image. It starts no
// container at all.
func TestValidateRunsOnlyAcceptedImages(t *testing.T) {
	h := newHarness(t, strings.Replace(fakeManifest("app:1", 1, ""), "nginx:latest", "evil:1", 1))
	h.fe.AddImage("evil:1")

	// Nothing applied yet, no nginx runs: validate runs nothing at all.
	h.fe.ResetCalls()
	v := h.d.Validate(context.Background())
	if c := append(h.fe.CallsTo(fake.OpRunOnce), h.fe.CallsTo(fake.OpExec)...); len(c) > 0 {
		t.Fatalf("validate before any deploy ran %v", c)
	}
	if ok, detail := checkOf(v, "Nginx config valid"); ok || !strings.Contains(detail, "no deploy") {
		t.Errorf("nginx check before any deploy: ok=%v %q, want not run, saying no deploy was applied", ok, detail)
	}

	// Applied with nginx:latest; the file now names evil:1.
	h.write(fakeManifest("app:1", 1, ""))
	h.mustConverge()
	h.write(strings.Replace(fakeManifest("app:1", 1, ""), "nginx:latest", "evil:1", 1))
	h.fe.ResetCalls()
	v = h.d.Validate(context.Background())
	if runs := h.fe.CallsTo(fake.OpRunOnce); len(runs) > 0 {
		t.Errorf("validate ran containers %v, want none", runs)
	}
	execs := h.fe.CallsTo(fake.OpExec)
	if len(execs) != 1 || !strings.HasPrefix(execs[0].Detail, "nginx -t") || execs[0].Target != "demo-nginx" {
		t.Fatalf("validate's execs %v, want one nginx -t in the running demo-nginx", execs)
	}
	if ok, detail := checkOf(v, "Nginx config valid"); !ok || !strings.Contains(detail, "evil:1") {
		t.Errorf("nginx check: ok=%v %q, want ok and a note that evil:1 was not used", ok, detail)
	}
}

func checkOf(v api.Validation, name string) (bool, string) {
	for _, c := range v.Checks {
		if c.Name == name {
			return c.OK, c.Detail
		}
	}
	return false, "(no check " + name + ")"
}
