// Package authz decides who may call which route of swiftdeployd's control
// API. The daemon serves the API on a Unix socket only, so the caller is a
// local process whose uid, gid and groups the kernel vouches for
// (SO_PEERCRED, SO_PEERGROUPS): no passwords, tokens or TLS are involved.
//
// Every route needs one of three roles, admin ⊇ operate ⊇ read:
//
//	read     status, history, diff, metrics, logs
//	operate  validate, deploy, promote, rollback, abort, pause, resume
//	admin    chaos, down, and any route not in the table
//
// Root and the daemon's own uid are always admin. Other callers get a role
// through membership of the Unix groups named in Config. See
// docs/security.md.
package authz

import (
	"net/http"
	"os"
	"slices"
	"strconv"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
)

// Role is what a caller may do. Roles are ordered: a higher role includes
// every lower one.
type Role int

// The roles, lowest first.
const (
	RoleNone    Role = iota // may call nothing
	RoleRead                // may look: status, history, diff, metrics, logs
	RoleOperate             // may start containers or change what runs: validate, deploy, promote, rollback, abort, pause, resume
	RoleAdmin               // may break or remove it: chaos, down
)

func (r Role) String() string {
	switch r {
	case RoleNone:
		return "none"
	case RoleRead:
		return "read"
	case RoleOperate:
		return "operate"
	case RoleAdmin:
		return "admin"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// Allows reports whether a caller holding r may call a route that needs need.
func (r Role) Allows(need Role) bool { return r >= need }

// Config maps roles to Unix groups, by name or by numeric gid. A caller gets
// the highest role of any group it is in (its primary group or one of its
// supplementary groups). Root (uid 0) and the daemon's own uid are admin
// whatever the configuration says.
//
// The zero Config is the safe default: only root and the daemon's uid have
// a role, except that members of the daemon's own group (the group its
// socket is created with, and so the only non-root callers that can open the
// 0660 socket at all) may read. As soon as any list is set, only the listed
// groups have roles: the default for the daemon's group no longer applies.
type Config struct {
	ReadGroups    []string `yaml:"read_groups" json:"read_groups"`
	OperateGroups []string `yaml:"operate_groups" json:"operate_groups"`
	AdminGroups   []string `yaml:"admin_groups" json:"admin_groups"`
}

// The daemon's own ids; variables so that tests can play the daemon.
var (
	selfUID = os.Geteuid
	selfGID = os.Getegid
)

// IsDefault reports whether no group is configured, so that the defaults
// apply.
func (c Config) IsDefault() bool {
	return len(c.ReadGroups) == 0 && len(c.OperateGroups) == 0 && len(c.AdminGroups) == 0
}

// RoleOf returns the role of the caller p. A group name that does not
// resolve (see Validate) grants nothing. An unidentified peer (UID < 0) has
// no role.
func (c Config) RoleOf(p Peer) Role {
	if p.UID < 0 {
		return RoleNone
	}
	if p.UID == 0 || p.UID == selfUID() {
		return RoleAdmin
	}
	if c.IsDefault() {
		if p.inGroup(selfGID()) {
			return RoleRead
		}
		return RoleNone
	}
	for _, g := range []struct {
		names []string
		role  Role
	}{{c.AdminGroups, RoleAdmin}, {c.OperateGroups, RoleOperate}, {c.ReadGroups, RoleRead}} {
		for _, name := range g.names {
			if gid, err := lookupGID(name); err == nil && p.inGroup(gid) {
				return g.role
			}
		}
	}
	return RoleNone
}

// Authorize returns nil if p may call method path, else a *DeniedError
// saying what was needed and what p has.
func (c Config) Authorize(p Peer, method, path string) error {
	need, known := Required(method, path)
	have := c.RoleOf(p)
	if have.Allows(need) {
		return nil
	}
	return &DeniedError{Peer: p, Method: method, Path: path, Need: need, Have: have, Known: known}
}

// Route is one entry of the control API's route table.
type Route struct {
	Method string
	Path   string
	Role   Role
}

// routes is the table behind Required, in the order docs/security.md lists
// them.
var routes = []Route{
	{http.MethodGet, api.PathStatus, RoleRead},
	{http.MethodGet, api.PathHistory, RoleRead},
	{http.MethodGet, api.PathDiff, RoleRead},
	{http.MethodGet, api.PathMetrics, RoleRead},
	{http.MethodGet, api.PathWhoami, RoleRead},
	// The app's own output: what a person may read of it is what status
	// shows them anyway, so read.
	{http.MethodGet, api.PathLogs, RoleRead},
	{http.MethodGet, api.PathReleases, RoleRead},
	// validate runs `nginx -t` in a throwaway container: whatever can
	// start a container is operate at least.
	{http.MethodPost, api.PathValidate, RoleOperate},
	{http.MethodPost, api.PathDeploy, RoleOperate},
	{http.MethodPost, api.PathPromote, RoleOperate},
	{http.MethodPost, api.PathRollback, RoleOperate},
	{http.MethodPost, api.PathAbort, RoleOperate},
	{http.MethodPost, api.PathPause, RoleOperate},
	{http.MethodPost, api.PathResume, RoleOperate},
	{http.MethodPost, api.PathTraffic, RoleOperate},
	{http.MethodPost, api.PathChaos, RoleAdmin},
	{http.MethodPost, api.PathDown, RoleAdmin},
}

// Routes returns a copy of the route table.
func Routes() []Route { return slices.Clone(routes) }

// Required returns the role a request for method and path needs, and
// whether the route is in the table. A route not in the table (an unknown
// path, or a known path with another method) needs admin: new routes are
// closed until someone decides who may call them. HEAD needs what GET
// needs, as net/http's mux serves HEAD with the GET handler. path is matched
// exactly, as r.URL.Path: a path the mux would clean or redirect
// ("/v1//status", "/v1/status/") is not in the table.
func Required(method, path string) (Role, bool) {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	for _, r := range routes {
		if r.Method == method && r.Path == path {
			return r.Role, true
		}
	}
	return RoleAdmin, false
}
