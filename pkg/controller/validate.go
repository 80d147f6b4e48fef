package controller

import (
	"context"
	"net/http"
	"os"
	"path/filepath"

	"github.com/swiftdeploy/swiftdeploy/pkg/api"
	"github.com/swiftdeploy/swiftdeploy/pkg/manifest"
)

// handleValidate runs the article's checks on the manifest as it is on
// disk now: it parses, its images exist, and the nginx config it renders
// passes a real `nginx -t`.
func (d *Daemon) handleValidate(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, d.Validate(r.Context()))
}

// Validate checks the manifest on disk without changing anything.
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
