package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/engine"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
	"github.com/swiftdeploy/swiftdeploy/pkg/render"
	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
	"github.com/swiftdeploy/swiftdeploy/pkg/targets"
)

// Check is validate on the Docker host: the images exist locally and
// nginx accepts the configuration the manifest renders.
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
	missing, err := t.Engine.MissingImages(ctx, desired.Images())
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

// checkNginxAccepted runs checkNginx in the nginx image of the stack a
// deploy last applied, never in an image only named on disk: the file has
// been through no gate, and validate must not be a way to make the daemon
// run any local image. With nothing applied yet, nginx -t is not run.
func (t *Target) checkNginxAccepted(ctx context.Context, desired stack.Stack) api.Check {
	applied := t.Rec.AppliedStack()
	if applied == nil || applied.Nginx.Image == "" {
		return api.Check{Name: "Nginx config valid", Detail: "not checked: no deploy has been applied yet, and nginx -t runs only in the nginx image of an applied deploy (deploy, then validate)"}
	}
	named := desired.Nginx.Image
	desired.Nginx.Image = applied.Nginx.Image
	c := t.checkNginx(ctx, desired)
	if named != applied.Nginx.Image {
		note := fmt.Sprintf("checked with the applied nginx image %s, not with %s, which runs only once a deploy accepts it", applied.Nginx.Image, named)
		if c.Detail != "" {
			note = c.Detail + " (" + note + ")"
		}
		c.Detail = note
	}
	return c
}

// checkNginx runs `nginx -t` on the rendered config in a throwaway
// container where every upstream name resolves.
func (t *Target) checkNginx(ctx context.Context, desired stack.Stack) api.Check {
	c := api.Check{Name: "Nginx config valid"}
	conf, err := renderNginx(desired)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	dir, err := os.MkdirTemp(t.StateDir, "validate-")
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		c.Detail = err.Error()
		return c
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), conf, 0o644); err != nil {
		c.Detail = err.Error()
		return c
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		c.Detail = err.Error()
		return c
	}
	var hosts []string
	for _, a := range desired.Apps() {
		hosts = append(hosts, a.Name+":127.0.0.1")
	}
	// A unique name: two validates may run at once, and a leftover of a
	// crashed one must not block the next.
	t.removeStaleValidators(ctx, desired.Project)
	binds := []engine.Bind{
		{Source: dir, Target: stack.ConfigDir, ReadOnly: true},
		{Source: run, Target: stack.NginxRunDir}, // nginx -t needs its run directory
	}
	if tls := desired.Nginx.TLS; tls != nil && tls.Cert != "" {
		// The certificate the config names, from the store, where nginx
		// reads it.
		binds = append(binds, engine.Bind{Source: t.CertDir, Target: stack.ConfigDir + "/" + stack.TLSDir, ReadOnly: true})
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	name := desired.Project + "-nginx-validate-" + hex.EncodeToString(id[:])
	t.validating.Store(name, true)
	defer t.validating.Delete(name)
	code, out, err := t.Engine.RunOnce(ctx, engine.Spec{
		Name:       name,
		Image:      desired.Nginx.Image,
		Cmd:        []string{"nginx", "-t", "-q", "-c", stack.ConfigDir + "/nginx.conf"},
		Labels:     map[string]string{stack.LabelProject: desired.Project, stack.LabelRole: RoleValidate},
		Binds:      binds,
		ExtraHosts: hosts,
	})
	switch {
	case err != nil:
		c.Detail = err.Error()
	case code != 0:
		c.Detail = strings.TrimSpace(out)
	default:
		c.OK = true
	}
	return c
}

// staleValidator is how long a validate container may live before a later
// validate removes it as a leftover (a validate takes a second or two).
const staleValidator = 2 * time.Minute

func (t *Target) removeStaleValidators(ctx context.Context, project string) {
	cs, err := t.Engine.ListContainers(ctx, project, "")
	if err != nil {
		return
	}
	for _, c := range cs {
		// Finished ones, or old ones, but none of a validate of this
		// process still under way: one that has exited may not have had
		// its output read yet (seen: "No such container" reading it).
		if _, busy := t.validating.Load(c.Name); busy {
			continue
		}
		if c.Role == RoleValidate && (c.State == "exited" || c.State == "dead" || time.Since(c.Created) > staleValidator) {
			_ = t.Engine.Remove(ctx, c.ID, 0)
		}
	}
}

// RoleValidate labels the throwaway containers validate runs nginx -t in:
// neither app nor nginx, so the event watch and status pass them over.
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
