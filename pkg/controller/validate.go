package controller

import (
	"context"
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
)

func renderNginx(s stack.Stack) ([]byte, error) {
	b, err := render.Nginx(s)
	if err != nil {
		return nil, fmt.Errorf("render nginx config: %w", err)
	}
	return b, nil
}

// Validate runs the article's checks on the manifest as it is on disk
// now, without changing anything: it parses, its images exist, and the
// nginx config it renders passes a real `nginx -t`.
func (d *Daemon) Validate(ctx context.Context) api.Validation {
	var v api.Validation
	data, err := os.ReadFile(d.cfg.ManifestPath)
	var m *manifest.Manifest
	if err == nil {
		m, err = accept(data, filepath.Base(d.dir))
	}
	if err != nil {
		v.Checks = append(v.Checks, api.Check{Name: "Manifest valid", Detail: err.Error()})
		return v
	}
	v.Checks = append(v.Checks, api.Check{Name: "Manifest valid", OK: true})
	d.mu.Lock()
	st := d.state
	d.mu.Unlock()
	v.Checks = append(v.Checks, d.target.Check(ctx, m, st)...)
	return v
}

// Check is validate on the Docker host: the images exist locally and
// nginx accepts the configuration the manifest renders.
func (t dockerTarget) Check(ctx context.Context, m *manifest.Manifest, st State) []api.Check {
	var out []api.Check
	if s := &m.Services; len(s.EnvFile) > 0 || len(s.Secrets) > 0 {
		// Read as a deploy reads them; the check names the field and the
		// file, never the content.
		withFiles, err := t.d.withFiles(m)
		if err != nil {
			out = append(out, api.Check{Name: "Env files and secrets readable", Detail: err.Error()})
		} else {
			m = withFiles
			out = append(out, api.Check{Name: "Env files and secrets readable", OK: true})
		}
	}
	desired := stack.FromManifest(m, st.options(m))
	missing, err := t.d.eng.MissingImages(ctx, desired.Images())
	if err != nil {
		return append(out, api.Check{Name: "Docker image found", Detail: err.Error()})
	}
	if len(missing) > 0 {
		out = append(out, api.Check{Name: "Docker image found", Detail: "not found locally: " + strings.Join(missing, ", ")},
			t.d.checkPullCredentials(m, missing))
	} else {
		out = append(out, api.Check{Name: "Docker image found", OK: true})
	}
	return append(out, t.d.checkNginxAccepted(ctx, desired))
}

// checkNginxAccepted runs checkNginx in the nginx image of the stack a
// deploy last applied, never in an image only named on disk: the file has
// been through no gate, and validate must not be a way to make the daemon
// run any local image. With nothing applied yet, nginx -t is not run.
func (d *Daemon) checkNginxAccepted(ctx context.Context, desired stack.Stack) api.Check {
	applied := d.rec.AppliedStack()
	if applied == nil || applied.Nginx.Image == "" {
		return api.Check{Name: "Nginx config valid", Detail: "not checked: no deploy has been applied yet, and nginx -t runs only in the nginx image of an applied deploy (deploy, then validate)"}
	}
	named := desired.Nginx.Image
	desired.Nginx.Image = applied.Nginx.Image
	c := d.checkNginx(ctx, desired)
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
func (d *Daemon) checkNginx(ctx context.Context, desired stack.Stack) api.Check {
	c := api.Check{Name: "Nginx config valid"}
	conf, err := renderNginx(desired)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	dir, err := os.MkdirTemp(d.stateDir, "validate-")
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
	d.removeStaleValidators(ctx, desired.Project)
	binds := []engine.Bind{
		{Source: dir, Target: stack.ConfigDir, ReadOnly: true},
		{Source: run, Target: stack.NginxRunDir}, // nginx -t needs its run directory
	}
	if t := desired.Nginx.TLS; t != nil && t.Cert != "" {
		// The certificate the config names, from the store, where nginx
		// reads it.
		binds = append(binds, engine.Bind{Source: d.certs.Store.Dir, Target: stack.ConfigDir + "/" + stack.TLSDir, ReadOnly: true})
	}
	name := desired.Project + "-nginx-validate-" + newID()
	d.validating.Store(name, true)
	defer d.validating.Delete(name)
	code, out, err := d.eng.RunOnce(ctx, engine.Spec{
		Name:       name,
		Image:      desired.Nginx.Image,
		Cmd:        []string{"nginx", "-t", "-q", "-c", stack.ConfigDir + "/nginx.conf"},
		Labels:     map[string]string{stack.LabelProject: desired.Project, stack.LabelRole: roleValidate},
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

func (d *Daemon) removeStaleValidators(ctx context.Context, project string) {
	cs, err := d.eng.ListContainers(ctx, project, "")
	if err != nil {
		return
	}
	for _, c := range cs {
		// Finished ones, or old ones, but none of a validate of this
		// process still under way: one that has exited may not have had
		// its output read yet (seen: "No such container" reading it).
		if _, busy := d.validating.Load(c.Name); busy {
			continue
		}
		if c.Role == roleValidate && (c.State == "exited" || c.State == "dead" || time.Since(c.Created) > staleValidator) {
			_ = d.eng.Remove(ctx, c.ID, 0)
		}
	}
}

const roleValidate = "validate"
