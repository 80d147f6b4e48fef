package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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

// eventDown journals `swiftctl down`.
const eventDown = "down"

func renderNginx(s stack.Stack) ([]byte, error) {
	b, err := render.Nginx(s)
	if err != nil {
		return nil, fmt.Errorf("render nginx config: %w", err)
	}
	return b, nil
}

// handleValidate runs the article's checks on the manifest as it is on
// disk now: it parses, its images exist, and the nginx config it renders
// passes a real `nginx -t`.
func (d *Daemon) handleValidate(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, d.Validate(r.Context()))
}

// Validate checks the manifest on disk without changing anything.
func (d *Daemon) Validate(ctx context.Context) api.Validation {
	var v api.Validation
	m, err := manifest.Load(d.cfg.ManifestPath)
	if err != nil {
		v.Checks = append(v.Checks, api.Check{Name: "Manifest valid", Detail: err.Error()})
		return v
	}
	v.Checks = append(v.Checks, api.Check{Name: "Manifest valid", OK: true})
	desired := stack.FromManifest(m, d.stackOptions(m))
	missing, err := d.eng.MissingImages(ctx, desired.Images())
	if err != nil {
		v.Checks = append(v.Checks, api.Check{Name: "Docker image found", Detail: err.Error()})
		return v
	}
	if len(missing) > 0 {
		v.Checks = append(v.Checks, api.Check{Name: "Docker image found", Detail: "not found locally: " + strings.Join(missing, ", ")})
	} else {
		v.Checks = append(v.Checks, api.Check{Name: "Docker image found", OK: true})
	}
	v.Checks = append(v.Checks, d.checkNginx(ctx, desired))
	return v
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
	var hosts []string
	for _, a := range desired.Apps() {
		hosts = append(hosts, a.Name+":127.0.0.1")
	}
	code, out, err := d.eng.RunOnce(ctx, engine.Spec{
		Name:       desired.Project + "-nginx-validate",
		Image:      desired.Nginx.Image,
		Cmd:        []string{"nginx", "-t", "-q", "-c", stack.ConfigDir + "/nginx.conf"},
		Labels:     map[string]string{stack.LabelProject: desired.Project, stack.LabelRole: "validate"},
		Binds:      []engine.Bind{{Source: dir, Target: stack.ConfigDir, ReadOnly: true}},
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

// handleDown removes everything the project owns and pauses reconciling
// until the next deploy.
func (d *Daemon) handleDown(w http.ResponseWriter, r *http.Request) {
	user := userOf(r)
	st := newStreamer(w)
	m := d.readManifest()
	d.mu.Lock()
	d.state.Down = true
	err := d.saveStateLocked()
	d.mu.Unlock()
	if err != nil {
		st.finish(err)
		return
	}
	if m == nil {
		st.finish(errors.New("no manifest loaded: nothing to remove"))
		return
	}
	err = d.down(r.Context(), m, st.line)
	if err == nil {
		d.event(eventDown, "removed every container and network of project "+m.Project, user, nil)
	}
	st.finish(err)
}

func (d *Daemon) down(ctx context.Context, m *manifest.Manifest, say func(string)) error {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	cs, err := d.eng.ListContainers(ctx, m.Project, m.Network.Name)
	if err != nil {
		return err
	}
	// nginx first, so no request reaches an app container being removed.
	for _, role := range []string{stack.RoleNginx, stack.RoleApp, ""} {
		for _, c := range cs {
			known := c.Role == stack.RoleNginx || c.Role == stack.RoleApp
			if (role == "" && known) || (role != "" && c.Role != role) {
				continue // each container is removed in exactly one pass
			}
			if err := d.eng.Remove(ctx, c.ID, 10*time.Second); err != nil {
				return err
			}
			say("Removed " + c.Name)
		}
	}
	n, err := d.eng.FindNetwork(ctx, m.Network.Name, m.Project)
	if err != nil {
		return err
	}
	if n != nil && n.Owned {
		if err := d.eng.RemoveNetwork(ctx, n.ID); err != nil {
			return err
		}
		say("Removed network " + n.Name)
	}
	d.mu.Lock()
	d.observed = nil
	d.mu.Unlock()
	return nil
}
