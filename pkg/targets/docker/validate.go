package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// Check is validate on the Docker host: the images exist locally and
// nginx accepts the configuration the manifest renders. It changes
// nothing: its engine calls are reads and an `nginx -t` exec in the
// running nginx, each with a timeout.
func (t *Target) Check(ctx context.Context, m *manifest.Manifest, st targets.Decisions) []api.Check {
	var out []api.Check
	if s := &m.Services; len(s.EnvFile) > 0 || len(s.Secrets) > 0 {
		// Read as a deploy reads them; the check names the field and the
		// file, never the content.
		withFiles, err := t.WithFiles(m)
		if err != nil {
			out = append(out, api.Check{Name: "Env files and secrets readable", Detail: err.Error()})
		} else {
			m = withFiles
			out = append(out, api.Check{Name: "Env files and secrets readable", OK: true})
		}
	}
	desired := stack.FromManifest(m, st.Options(m))
	ictx, cancel := context.WithTimeout(ctx, validateListTimeout)
	missing, err := t.Engine.MissingImages(ictx, desired.Images())
	cancel()
	if err != nil {
		return append(out, api.Check{Name: "Docker image found", Detail: err.Error()})
	}
	if len(missing) > 0 {
		out = append(out, api.Check{Name: "Docker image found", Detail: "not found locally: " + strings.Join(missing, ", ")},
			t.checkPullCredentials(m, missing))
	} else {
		out = append(out, api.Check{Name: "Docker image found", OK: true})
	}
	return append(out, t.checkNginxAccepted(ctx, desired))
}

// checkNginxAccepted runs `nginx -t` on the candidate configuration inside
// the project's running nginx container (docker exec), so that validate
// creates, starts and removes nothing: no container outside a plan, and
// no image that has not been through a deploy's gates. With no nginx
// running yet (nothing deployed), nginx -t is not run, and the check says
// so.
func (t *Target) checkNginxAccepted(ctx context.Context, desired stack.Stack) api.Check {
	c := api.Check{Name: "Nginx config valid"}
	lctx, cancel := context.WithTimeout(ctx, validateListTimeout)
	ngx, err := t.runningNginx(lctx, desired)
	cancel()
	switch {
	case err != nil:
		c.Detail = "not checked: " + err.Error()
		return c
	case ngx == nil:
		c.Detail = "not checked: no nginx container of project " + desired.Project + " runs (no deploy has been applied yet, or it is down); validate runs nginx -t only inside the running nginx and never starts a container for it (deploy, then validate)"
		return c
	}
	c = t.checkNginx(ctx, *ngx, desired)
	if named := desired.Nginx.Image; named != ngx.Image {
		note := fmt.Sprintf("checked with the running nginx image %s, not with %s, which runs only once a deploy accepts it", ngx.Image, named)
		if c.Detail != "" {
			note = c.Detail + " (" + note + ")"
		}
		c.Detail = note
	}
	return c
}

// Timeouts of validate's engine calls: validate waits for no rollout, and
// a hung engine must not hang the caller.
const (
	validateListTimeout = 10 * time.Second
	validateExecTimeout = 20 * time.Second
)

// runningNginx is the project's running nginx container (the desired
// one's name first), or nil when none runs.
func (t *Target) runningNginx(ctx context.Context, desired stack.Stack) (*engine.Container, error) {
	cs, err := t.Engine.ListContainers(ctx, desired.Project, "")
	if err != nil {
		return nil, fmt.Errorf("list containers of project %s: %w", desired.Project, err)
	}
	var found *engine.Container
	for i, c := range cs {
		if c.Role != stack.RoleNginx || !c.Running() {
			continue
		}
		if found == nil || c.Name == desired.Nginx.Name {
			found = &cs[i]
		}
	}
	return found, nil
}

// checkNginx runs `nginx -t` on the rendered config inside the running
// nginx ngx. The candidate is written to a file of its own in the
// configuration directory nginx already mounts (never the live file nor
// the reconciler's staged one), and removed afterwards. Its upstream
// hosts are loopback addresses: the containers the candidate would start
// do not exist yet, and nginx -t resolves every upstream name.
func (t *Target) checkNginx(ctx context.Context, ngx engine.Container, desired stack.Stack) api.Check {
	c := api.Check{Name: "Nginx config valid"}
	conf, err := renderNginx(desired)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	conf = loopbackUpstreams(conf, desired.Apps())
	dir := t.Rec.ConfigDir
	t.removeStaleCandidates(dir)
	var id [6]byte
	_, _ = rand.Read(id[:])
	name := validatePrefix + hex.EncodeToString(id[:]) + ".conf"
	path := filepath.Join(dir, name)
	// 0644: nginx reads it as its own (unprivileged) user.
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		c.Detail = fmt.Sprintf("write candidate config %s: %v", path, err)
		return c
	}
	defer os.Remove(path)
	ectx, cancel := context.WithTimeout(ctx, validateExecTimeout)
	defer cancel()
	code, out, err := t.Engine.Exec(ectx, ngx.Name, []string{"nginx", "-t", "-q", "-c", stack.ConfigDir + "/" + name})
	if (err != nil || code != 0) && t.nginxGone(ctx, desired.Project, ngx, err) {
		// Validate takes no run lock: a deploy may have stopped or
		// replaced this nginx during the exec, which then says nothing of
		// the candidate.
		c.Detail = "not checked: nginx container " + ngx.Name + " stopped or was replaced while nginx -t ran in it (a deploy under way?); validate again once it is done"
		return c
	}
	switch {
	case err != nil:
		c.Detail = fmt.Sprintf("nginx -t in %s: %v", ngx.Name, err)
	case code != 0:
		c.Detail = strings.TrimSpace(out)
	default:
		c.OK = true
	}
	return c
}

// nginxGone tells whether the nginx container ngx validate ran nginx -t
// in no longer runs: the exec failed with execErr saying so (no such
// container, or not running), or ngx, by its ID, is no longer among the
// project's running containers.
func (t *Target) nginxGone(ctx context.Context, project string, ngx engine.Container, execErr error) bool {
	if execErr != nil && (errdefs.IsNotFound(execErr) || errdefs.IsConflict(execErr)) {
		return true
	}
	lctx, cancel := context.WithTimeout(ctx, validateListTimeout)
	defer cancel()
	cs, err := t.Engine.ListContainers(lctx, project, "")
	if err != nil {
		return false // cannot tell: the exec's own answer stands
	}
	for _, c := range cs {
		if c.ID == ngx.ID && c.Running() {
			return false
		}
	}
	return true
}

// validatePrefix names validate's candidate files in the configuration
// directory.
const validatePrefix = "validate-"

// staleCandidate is how long a candidate file may stay before a later
// validate removes it as the leftover of a validate that crashed (one
// takes a second or two).
const staleCandidate = 2 * time.Minute

// removeStaleCandidates removes what validates that crashed left in dir:
// files only validate writes, never anything nginx serves from.
func (t *Target) removeStaleCandidates(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, validatePrefix+"*.conf"))
	for _, p := range old {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > staleCandidate {
			_ = os.Remove(p)
		}
	}
}

// loopbackUpstreams points every app container's upstream server line of
// conf at a loopback address of its own (127.0.0.1, 127.0.0.2, ...), as
// the throwaway validate container's extra hosts once did: nginx -t then
// checks everything but name resolution, for containers that may not run
// yet. It rewrites the address of each `server` directive, whatever
// follows it (parameters, or the `;` right after), not one exact layout of
// the template; comments and everything else are left alone.
func loopbackUpstreams(conf []byte, apps []stack.App) []byte {
	to := make(map[string]string, len(apps))
	for i, a := range apps {
		to[a.Addr()] = fmt.Sprintf("127.0.%d.%d:%d", i/250, i%250+1, a.Port)
	}
	return upstreamServer.ReplaceAllFunc(conf, func(line []byte) []byte {
		sub := upstreamServer.FindSubmatch(line)
		if ip, ok := to[string(sub[2])]; ok {
			return append(append([]byte{}, sub[1]...), ip...)
		}
		return line
	})
}

// upstreamServer is a server directive of an upstream block up to its
// address: the leading text and the address.
var upstreamServer = regexp.MustCompile(`(?m)^([ \t]*server[ \t]+)([^\s;]+)`)

// RoleValidate labels the throwaway containers the validate of daemons
// before this one ran nginx -t in (this one runs none): neither app nor
// nginx, so the event watch and status pass them over, and down's
// teardown removes a leftover.
const RoleValidate = "validate"

func renderNginx(s stack.Stack) ([]byte, error) {
	b, err := render.Nginx(s)
	if err != nil {
		return nil, fmt.Errorf("render nginx config: %w", err)
	}
	return b, nil
}

// checkPullCredentials reads, for validate, the credentials the pulls of
// the missing images would send: where they come from, or why they cannot
// be read (a missing registries file, a malformed config.json, a failing
// credential helper). It never says what they are.
func (t *Target) checkPullCredentials(m *manifest.Manifest, missing []string) api.Check {
	c := api.Check{Name: "Registry credentials readable", OK: true}
	src := t.Registries(m)
	var notes []string
	seen := map[string]bool{}
	for _, ref := range missing {
		a, err := src.For(ref)
		if err != nil {
			c.OK, c.Detail = false, err.Error()
			return c
		}
		if note := a.String(); !seen[note] {
			seen[note] = true
			notes = append(notes, note)
		}
	}
	c.Detail = strings.Join(notes, "; ")
	return c
}
